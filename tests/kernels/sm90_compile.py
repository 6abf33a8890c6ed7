"""Compile every Triton kernel for sm_90 without a GPU (run as a script, outside the interpreter).

The interpreter cannot tell whether a kernel compiles: loop-carried types, constexpr branches,
dot shapes and shared-memory use are checked only by the real compiler. This script runs the
whole pipeline down to a cubin with Triton's bundled ptxas, for the bf16 model shapes with
sequence ids, and prints one line per kernel. Exit status 0 means all compiled.
"""

import sys

import triton
import triton.language as tl
from triton.backends.compiler import GPUTarget
from triton.runtime.jit import JITFunction

from bytelm.kernels.ssd import chunk_kernels as chunk
from bytelm.kernels.swa import flash_kernels as flash

TARGET = GPUTarget("cuda", 90, 32)


def compile_kernel(kernel, types: dict, consts: dict) -> None:
    """Compile one kernel: `types` gives the runtime arguments' types, `consts` the rest."""
    fn = kernel
    while not isinstance(fn, JITFunction):  # unwrap autotuner / heuristics
        fn = fn.fn
    signature = {name: "constexpr" if name in consts else types[name] for name in fn.arg_names}
    source = triton.compiler.ASTSource(fn=fn, signature=signature, constexprs=consts)
    compiled = triton.compile(source, target=TARGET, options={"num_warps": 8, "num_stages": 2})
    print(f"{fn.__name__}: shared {compiled.metadata.shared} bytes", flush=True)


def ssd_kernels() -> None:
    """The scan at d_state 128, headdim 64, time block 64, with sequence ids and D."""
    p, n, bt = 64, 128, 64
    common = dict(H=8, G=1, P=p, N=n, HAS_SEQ=True, BT=bt, BP=p, BN=64, DOT=tl.bfloat16, IEEE=False)
    types = dict(
        x="*bf16",
        dt="*fp32",
        A="*fp32",
        Bm="*bf16",
        Cm="*bf16",
        seg="*i32",
        out="*fp32",
        T="i32",
        NC="i32",
        Hin="*fp32",
        D="*fp32",
        y="*bf16",
        dS="*fp32",
        gate="*fp32",
        dy="*bf16",
        dx="*bf16",
        ddt="*fp32",
        dB="*fp32",
        dC="*fp32",
        dA="*fp32",
        dD="*fp32",
    )
    compile_kernel(chunk.chunk_states_kernel, types, dict(common, FROM_START=False))
    compile_kernel(chunk.chunk_output_kernel, types, dict(common, HAS_D=True))
    compile_kernel(chunk.chunk_bwd_kernel, types, dict(common, HAS_D=True))
    passing = dict(S="*fp32", gate="*fp32", init="*fp32", out="*fp32", final="*fp32", NC="i32")
    compile_kernel(
        chunk.state_passing_kernel,
        passing,
        dict(H=8, PN=p * n, HAS_INIT=True, REVERSE=True, BLOCK=1024),
    )


def swa_kernels() -> None:
    """Attention at head dim 64, blocks of 64, grouped KV heads, with sequence ids."""
    common = dict(H=8, HKV=2, D=64, HAS_SEQ=True, BM=64, BN=64, BD=64, DOT=tl.bfloat16, IEEE=False)
    types = dict(
        q="*bf16",
        k="*bf16",
        v="*bf16",
        start="*i32",
        seg_end="*i32",
        o="*bf16",
        lse="*fp32",
        do="*bf16",
        delta="*fp32",
        dq="*bf16",
        dk="*bf16",
        dv="*bf16",
        T="i32",
        W="i32",
        S="i32",
        qk_scale="fp32",
        sm_scale="fp32",
    )
    for kernel in (flash.swa_fwd_kernel, flash.swa_bwd_dq_kernel, flash.swa_bwd_dkv_kernel):
        compile_kernel(kernel, types, common)


if __name__ == "__main__":
    ssd_kernels()
    swa_kernels()
    sys.exit(0)
