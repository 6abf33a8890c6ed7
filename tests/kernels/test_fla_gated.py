"""flash-linear-attention's chunk kernels (the CUDA path of g, d, w) against bytelm's
references: outputs, final states and every gradient in bf16 at model shapes, on a GPU with
`pip install 'bytelm[fla]'`; the references run in float64 on the same inputs."""

import pytest
import torch
import torch.nn.functional as F
from gated_checks import grads_of
from kernel_checks import assert_rms_close
from test_delta_rule_naive import delta_inputs
from test_gla_naive import gla_inputs
from test_rwkv7_naive import rwkv_inputs

from bytelm.kernels import dispatch
from bytelm.kernels.delta_rule import chunk_gated_delta_rule
from bytelm.kernels.delta_rule import naive as delta_naive
from bytelm.kernels.gla import chunk_gla
from bytelm.kernels.gla import naive as gla_naive
from bytelm.kernels.rwkv7 import chunk_rwkv7
from bytelm.kernels.rwkv7 import naive as rwkv_naive

SHAPES = [(2, 2048, 4, 64, 64), (1, 1001, 2, 128, 128)]  # B, T, H, K, V
IDS = ["B2-T2048-H4-K64", "B1-T1001-H2-K128"]


def on_gpu(inputs: dict) -> dict:
    """bf16 CUDA copies of the inputs (the initial state stays float32, as fla keeps it)."""
    return {n: x.to("cuda", torch.float32 if n == "initial_state" else torch.bfloat16) for n, x in inputs.items()}


def compare(op, reference, inputs: dict) -> None:
    if not dispatch.fla_available():
        pytest.skip("flash-linear-attention is not installed (pip install 'bytelm[fla]')")
    got_inputs = on_gpu(inputs)
    assert dispatch.use_fla(got_inputs["v"])
    (o, final), grads = grads_of(op, got_inputs)
    (o_ref, final_ref), grads_ref = grads_of(reference, {n: x.double() for n, x in got_inputs.items()})
    names = ["o", "final", *grads]
    got = [o, final, *grads.values()]
    want = [o_ref, final_ref, *grads_ref.values()]
    assert_rms_close([g.double().cpu() for g in got], [w.cpu() for w in want], 2e-2, names)


@pytest.mark.gpu
@pytest.mark.parametrize("b,t,h,k,v", SHAPES, ids=IDS)
def test_fla_gla_matches_reference(b, t, h, k, v):
    inputs = gla_inputs(b, t, h, k, v, seed=1)
    inputs["g"] = F.logsigmoid(torch.randn(b, t, h, k, dtype=torch.float64)) / 16
    compare(chunk_gla, gla_naive.chunk_gla, inputs)


@pytest.mark.gpu
@pytest.mark.parametrize("b,t,h,k,v", SHAPES, ids=IDS)
def test_fla_gated_delta_rule_matches_reference(b, t, h, k, v):
    compare(chunk_gated_delta_rule, delta_naive.chunk_gated_delta_rule, delta_inputs(b, t, h, k, v, seed=2))


@pytest.mark.gpu
@pytest.mark.parametrize("b,t,h,k,v", SHAPES, ids=IDS)
def test_fla_rwkv7_matches_reference(b, t, h, k, v):
    compare(chunk_rwkv7, rwkv_naive.chunk_rwkv7, rwkv_inputs(b, t, h, k, seed=3))
