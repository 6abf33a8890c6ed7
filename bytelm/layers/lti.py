"""A diagonal linear time-invariant SSM per channel, as a chunked causal convolution.

Per channel d and state index n, with decay, input and read-out that do not depend on the input:

    h_t[d, n] = exp(a[d, n]) h_{t-1}[d, n] + b[d, n] u_t[d]      (a < 0)
    y_t[d]    = sum_n c[d, n] h_t[d, n]

S4D's SSM (a = dt A, b = dt B) and Mega's damped EMA (a = log(1 - alpha delta), b = alpha beta,
c = eta / sqrt(h)) are both this. Being time-invariant, y is the causal convolution of u with the
kernel K[d, k] = sum_n c[d, n] b[d, n] exp(k a[d, n]) (S4D's own way of computing it), which
`lti_conv` evaluates in chunks of Q positions without looping over time:

1. inside a chunk, the [Q, Q] lower-triangular Toeplitz matrix of K[:, 0 .. Q-1] times u;
2. each chunk's contribution to the state at its end, sum_j exp((Q - 1 - j) a) b u_j;
3. the state entering every chunk, from the chunk contributions and the initial state with the
   chunk decays exp(Q a) (one product with a [chunks, chunks] decay matrix per (d, n));
4. that state decayed to each position of its chunk and read out through c.

The cost per position is O(Q D + D N), every product a batched matrix product. A general scan
with one scalar decay per head (`bytelm.kernels.ssd.chunk_scan`) would need a head per (d, n)
with [P, 1] states, whose per-head overhead dominates; here the N decays of a channel stay in
one contraction. `lti_step` is the same recurrence for one position, the specification the
chunked form is tested against.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from bytelm.layers.ssm import state_dtype


def _masked_exp(arg: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """exp(arg) where `keep`, exactly 0 (with a zero gradient) elsewhere."""
    return torch.exp(arg.masked_fill(~keep, float("-inf")))


def lti_conv(
    u: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    c: torch.Tensor,
    chunk_size: int,
    initial_state: torch.Tensor | None = None,
    lengths: torch.Tensor | None = None,
    return_final_state: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """u [B, T, D], log decay a, input b and read-out c [D, N], initial_state [B, D, N] -> y [B, T, D]
    (u's dtype) and, when asked, the final state [B, D, N] (float32, or float64 for float64 u).

    `lengths` [B]: the final state is the state after each row's first lengths[b] positions (the
    later ones are right padding, identity steps for the state); outputs at padded positions are
    not meaningful to the caller, and no earlier output depends on them.
    """
    bsz, seqlen, d = u.shape
    cdt = state_dtype(u.dtype)
    q = max(1, min(chunk_size, seqlen))
    pad = (-seqlen) % q
    nchunks = (seqlen + pad) // q
    a, b, c = a.to(cdt), b.to(cdt), c.to(cdt)  # [D, N]
    uc = F.pad(u.to(cdt), (0, 0, 0, pad)).view(bsz, nchunks, q, d)  # [B, C, Q, D]
    steps = torch.arange(q, device=u.device, dtype=cdt)
    powers = torch.exp(a[..., None] * steps)  # [D, N, Q]: exp(k a)

    # 1. Intra-chunk: the lower-triangular Toeplitz matrix of the kernel.
    kernel = ((b * c)[..., None] * powers).sum(1)  # [D, Q]
    lag = torch.arange(q, device=u.device)[:, None] - torch.arange(q, device=u.device)  # [Q(i), Q(j)]
    toeplitz = kernel[:, lag.clamp(min=0)] * (lag >= 0).to(cdt)  # [D, Q, Q]
    y = torch.einsum("dij,bcjd->bcid", toeplitz, uc)  # [B, C, Q, D]

    # 2. What each chunk adds to the state at its last position.
    to_end = b[..., None] * powers.flip(-1)  # [D, N, Q]: b exp((Q - 1 - j) a)
    adds = torch.einsum("bcjd,dnj->bcdn", uc, to_end)  # [B, C, D, N]

    # 3. State entering each chunk z: sum over chunks y < z of exp((z - 1 - y) Q a) adds[y].
    idx = torch.arange(nchunks, device=u.device)
    gap = (idx[:, None] - 1 - idx).to(cdt)  # [C(z), C(y)]
    passing = _masked_exp(q * a[..., None, None] * gap, idx[:, None] > idx)  # [D, N, C, C]
    entering = torch.einsum("dnzy,bydn->bzdn", passing, adds)  # [B, C, D, N]
    if initial_state is not None:
        entering = entering + torch.exp(q * a * idx[:, None, None].to(cdt)) * initial_state.to(cdt)[:, None]

    # 4. The entering state decayed to each position i of its chunk (i + 1 steps), read out.
    from_start = c[..., None] * powers * torch.exp(a)[..., None]  # [D, N, Q]: c exp((i + 1) a)
    y = y + torch.einsum("bcdn,dni->bcid", entering, from_start)
    y = y.reshape(bsz, nchunks * q, d)[:, :seqlen].to(u.dtype)
    if not return_final_state:
        return y

    # Final state: from the state entering the chunk of each row's last real position and the
    # r real positions of that chunk (r = 0 only for an empty row, whose state is the initial one).
    n = torch.full((bsz,), seqlen, device=u.device) if lengths is None else lengths.to(u.device)
    last = ((n - 1) // q).clamp(min=0)  # [B]
    r = n - last * q  # [B]
    rows = torch.arange(bsz, device=u.device)
    ahead = (r[:, None] - 1 - torch.arange(q, device=u.device)).to(cdt)  # [B, Q(j)]
    weight = _masked_exp(a * ahead[..., None, None], (ahead >= 0)[..., None, None])  # [B, Q, D, N]
    final = torch.exp(a * r[:, None, None].to(cdt)) * entering[rows, last]  # [B, D, N]
    final = final + torch.einsum("bjd,bjdn->bdn", uc[rows, last], weight) * b
    return y, final


def lti_step(
    u: torch.Tensor, state: torch.Tensor, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """One position of the recurrence: u [B, D], state [B, D, N] -> y [B, D] (u's dtype), new state."""
    sdt = state.dtype
    state = state * torch.exp(a.to(sdt)) + b.to(sdt) * u.to(sdt)[..., None]  # [B, D, N]
    return (state * c.to(sdt)).sum(-1).to(u.dtype), state
