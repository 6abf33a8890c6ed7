"""Decode steps compiled ahead of time: torch.export + AOTInductor, for both model kinds.

At one position per call, `torch.compile`'s per-call machinery is a large part of a step: on 2
CPU cores dynamo's guard evaluation and cache lookup plus the compiled region's wrapper cost
about 55 us of the hybrid's 160 us outer graph (README, Benchmarks). An AOTInductor artifact is
generated C++ over a flat list of tensors, called without guards. So what the guards checked is
checked here instead, once for each state this step did not make itself: the state's structure,
every leaf's shape, dtype and device, and the ids' shape and dtype pick the artifacts (compiled
when first met); a state the step returned is known by its identity and not checked again.

- `TreeCodec`: a state tree's structure, to flatten trees to tensor leaves and build them back,
  with generated code (no walk over the tree on every call).
- `export_program`, `aot_compile`: a module over flat tensors exported, then compiled and loaded.
- `ExportedHybridStep`: the hybrid's two graphs (`HybridLM._step_outer`, `_step_inner`) with the
  chunk-start check between them, as `models.stage.step_skipping` runs them compiled by dynamo;
  the masked inner graph (rows of a batch disagree) is compiled when first needed.
- `ExportedBaselineStep`: the baseline's step, one artifact whose position (the KV cache's fill)
  is a dynamic size, given as the length of a view of a preallocated marker tensor; its
  in-place cache writes stay in place.

Artifacts are compiled for contiguous inputs (they read their inputs as laid out when compiled)
and return contiguous outputs, so a state made elsewhere (a prefill's, a copy) is made contiguous
when adopted, and the ids on every call. Built on the decode options of
`models.compiled` (Inductor's `decompose_mm_pass`), so the two ways compile the same code.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from bytelm.layers.state import tree_map
from bytelm.models.compiled import DECODE_INDUCTOR_OPTIONS

Runner = Callable[..., list[torch.Tensor]]


class TreeCodec:
    """One tree's structure (dataclasses, lists, tuples, tensors; any other value is a constant
    of the structure), to flatten trees of it to their tensor leaves and to build them back.
    Both directions are Python generated once from the example, attribute reads and constructor
    calls only, since a decode step pays for them on every call. `key` is the structure itself
    (two trees with equal keys flatten alike)."""

    def __init__(self, example: Any) -> None:
        self._namespace: dict[str, Any] = {}
        self._constants: list[Any] = []
        reads: list[str] = []
        build = self._emit(example, "tree", reads)
        source = f"def flatten(tree):\n    return [{', '.join(reads)}]\n\ndef unflatten(leaves):\n    return {build}\n"
        exec(compile(source, "<TreeCodec>", "exec"), self._namespace)
        self.flatten: Callable[[Any], list[torch.Tensor]] = self._namespace["flatten"]
        self.unflatten: Callable[[Any], Any] = self._namespace["unflatten"]
        self.size = len(reads)
        self.key = (source, tuple(self._constants))

    def _constant(self, value: Any) -> str:
        self._constants.append(value)
        name = f"c{len(self._constants)}"
        self._namespace[name] = value
        return name

    def _emit(self, node: Any, path: str, reads: list[str]) -> str:
        if isinstance(node, torch.Tensor):
            reads.append(path)
            return f"leaves[{len(reads) - 1}]"
        if dataclasses.is_dataclass(node) and not isinstance(node, type):
            args = (f"{f.name}={self._emit(getattr(node, f.name), f'{path}.{f.name}', reads)}"
                    for f in dataclasses.fields(node))
            return f"{self._constant(type(node))}({', '.join(args)})"
        if type(node) in (list, tuple):
            items = "".join(f"{self._emit(x, f'{path}[{i}]', reads)}, " for i, x in enumerate(node))
            return f"[{items}]" if isinstance(node, list) else f"({items})"
        return self._constant(node)


def signature(leaves: list[torch.Tensor]) -> tuple:
    """What an artifact assumes of its tensor inputs: shape, dtype, device, contiguity."""
    return tuple((t.shape, t.dtype, t.device, t.is_contiguous()) for t in leaves)


def contiguous(tree: Any) -> Any:
    """The tree with every leaf contiguous (leaves that are stay the same tensors)."""
    return tree_map(lambda t: t.contiguous(), tree)


def export_program(module: nn.Module, args: tuple, dynamic_shapes: Any = None) -> torch.export.ExportedProgram:
    """`module(*args)` (tensors in, a tuple of tensors out) traced by torch.export. Tracing needs
    tensors made outside inference mode, so the examples are copied first."""
    with torch.inference_mode(False), torch.no_grad():
        args = tuple(a.clone() if isinstance(a, torch.Tensor) else a for a in args)
        return torch.export.export(module, args, dynamic_shapes=dynamic_shapes, strict=False)


def aot_compile(program: torch.export.ExportedProgram) -> Runner:
    """The program compiled by AOTInductor and loaded: called like the exported module with
    tensors shaped as its examples, it returns a list."""
    with tempfile.TemporaryDirectory() as folder:
        package = torch._inductor.aoti_compile_and_package(
            program, package_path=os.path.join(folder, "step.pt2"), inductor_configs=DECODE_INDUCTOR_OPTIONS
        )
        return torch._inductor.aoti_load_package(package)


class _FlatCall(nn.Module):
    """`model.<name>(*args)` as a module over the arguments' flat leaves (what torch.export
    takes): the leaves are built back into the arguments, the outputs flattened, contiguous."""

    def __init__(self, model: nn.Module, name: str, inputs: TreeCodec, outputs: TreeCodec) -> None:
        super().__init__()
        self.model, self.name, self.inputs, self.outputs = model, name, inputs, outputs

    def forward(self, *leaves: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = getattr(self.model, self.name)(*self.inputs.unflatten(leaves))
        return tuple(t.contiguous() for t in self.outputs.flatten(out))


def export_call(model: nn.Module, name: str, args: tuple, example: Any) -> torch.export.ExportedProgram:
    """`model.<name>` exported for arguments like `args` (their structure and leaf shapes),
    `example` being its outputs on them: a program over the flat leaves."""
    inputs = TreeCodec(args)
    return export_program(_FlatCall(model, name, inputs, TreeCodec(example)), tuple(inputs.flatten(args)))


def keeps_shapes(program: torch.export.ExportedProgram, leaves: list[torch.Tensor], state_in: int, state_out: int) -> bool:
    """Whether the program, run once on `leaves`, returns the state (its leaves from `state_in`
    on among the inputs, from `state_out` on among the outputs) with the shapes it came in: then
    the state an artifact returns fits that artifact again. The exported graph is what runs, so
    an inner stage's level, which always runs there, shows a growing state even where the eager
    step would skip it."""
    with torch.no_grad():
        out = program.module()(*leaves)
    return [t.shape for t in out[state_out:]] == [t.shape for t in leaves[state_in:]]


@dataclass
class _HybridGraphs:
    """The artifacts for one state signature, and where things sit in their flat outputs."""

    state: TreeCodec
    outer: Runner  # (ids, *state) -> (*entry, logits, *state after, no chunk start)
    inner: Runner | None  # (*entry, ids, *state) -> (logits, *state after); None: no stages
    entry_size: int
    b_index: int  # the chunk-start decision's place among the entry's leaves
    example: tuple  # (ids, state, entry, inner outputs): what the masked inner graph is compiled from
    masked: Runner | None = None  # (*entry, ids, *state, commit) -> (logits, *state after)


class ExportedHybridStep:
    """The hybrid's step ahead of time: ids [B] and a state -> logits [B, V] and the state after.

    A staged layout runs `_step_outer`, and `_step_inner` only when a row starts a chunk (masked
    when rows disagree), as `step_skipping` does with dynamo's graphs; a layout without stages
    runs `step` as one artifact."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self._graphs: dict[tuple, _HybridGraphs] = {}
        self._made: Any = None  # the state this step returned last
        self._current: _HybridGraphs | None = None
        self._ids: tuple = ()
        self._jit: Callable | None = None  # the state grows: dynamo's graphs instead

    def __call__(self, ids: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        if self._jit is not None:
            return self._jit(ids, state)
        ids, g = ids.contiguous(), self._current  # a column of a batch of prompts is strided
        if state is not self._made or (ids.shape, ids.dtype) != self._ids:
            state, g = self._adopt(ids, state)
            if g is None:
                return self._jit(ids, state)
        leaves = g.state.flatten(state)
        out = g.outer(ids, *leaves)
        if g.inner is None:
            logits, after = out[0], out[1:]
        else:
            entry, b = out[: g.entry_size], out[g.b_index]
            if not bool(b.any()):
                logits, after = out[g.entry_size], out[g.entry_size + 1 :]
            elif bool(b.all()):
                out = g.inner(*entry, ids, *leaves)
                logits, after = out[0], out[1:]
            else:
                out = self._masked(g)(*entry, ids, *leaves, b)
                logits, after = out[0], out[1:]
        self._made = g.state.unflatten(after)
        return logits, self._made

    def _adopt(self, ids: torch.Tensor, state: Any) -> tuple[Any, _HybridGraphs | None]:
        """A state this step did not make: contiguous, and the artifacts for its signature
        (None when the state grows, and dynamo's graphs take over)."""
        state = contiguous(state)
        codec = TreeCodec(state)
        key = (codec.key, signature(codec.flatten(state)), ids.shape, ids.dtype, ids.device)
        if key not in self._graphs:
            self._graphs[key] = self._build(ids, state, codec)
        self._current, self._ids = self._graphs[key], (ids.shape, ids.dtype)
        return state, self._current

    def _build(self, ids: torch.Tensor, state: Any, codec: TreeCodec) -> _HybridGraphs | None:
        model, leaves = self.model, codec.flatten(state)
        with torch.no_grad():
            if not model.config.n_stages:
                program = export_call(model, "step", (ids, state), model.step(ids, state))
                if not keeps_shapes(program, [ids, *leaves], 1, 1):  # (ids, *state) -> (logits, *state)
                    return self._grows()
                return _HybridGraphs(codec, aot_compile(program), None, 0, 0, ())
            outer_out = model._step_outer(ids, state)
            entry = contiguous(outer_out[0])
            inner_args = (entry, ids, state, None)
            inner_out = model._step_inner(*inner_args)
        entry_leaves = TreeCodec(entry).flatten(entry)
        n = len(entry_leaves)
        b_index = next(i for i, t in enumerate(entry_leaves) if t is entry.b)
        outer = export_call(model, "_step_outer", (ids, state), outer_out)  # (*entry, logits, *state)
        inner = export_call(model, "_step_inner", inner_args, inner_out)  # (logits, *state)
        if not (keeps_shapes(outer, [ids, *leaves], 1, n + 1) and keeps_shapes(inner, [*entry_leaves, ids, *leaves], n + 1, 1)):
            return self._grows()
        return _HybridGraphs(codec, aot_compile(outer), aot_compile(inner), n, b_index, (ids, state, entry, inner_out))

    def _grows(self) -> None:
        """The state grows (global attention's cache), which would need an artifact per length:
        dynamo's graphs decode it instead, with a note."""
        if self._jit is None:
            print("ahead-of-time step: this layout's decoding state grows (global attention); "
                  "decoding with torch.compile's graphs", file=sys.stderr)
            self._jit = self.model.compiled_step()

    def _masked(self, g: _HybridGraphs) -> Runner:
        if g.masked is None:
            ids, state, entry, out = g.example
            args = (entry, ids, state, torch.ones_like(entry.b))
            g.masked = aot_compile(export_call(self.model, "_step_inner", args, out))
        return g.masked


class _PositionedStep(nn.Module):
    """The baseline's step with its position taken from `marker`'s length, so that torch.export
    sees the KV cache's fill as a dynamic size: (ids, marker, *keys, *values) -> (logits,)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, ids: torch.Tensor, marker: torch.Tensor, *caches: torch.Tensor) -> tuple[torch.Tensor]:
        from bytelm.models.baseline import BaselineState

        n = len(caches) // 2
        state = BaselineState(list(caches[:n]), list(caches[n:]), marker.shape[0])
        return (self.model.step(ids, state)[0],)


class ExportedBaselineStep:
    """The baseline's step ahead of time: one artifact per cache signature, for positions 2 ..
    max_len - 2 (export specializes sizes 0 and 1, and the last slot); the eager step takes the
    positions outside (where the context-full error also comes from)."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self._runners: dict[tuple, Runner] = {}
        self._made: Any = None
        self._runner: Runner | None = None
        self._ids: tuple = ()
        self._marker = torch.zeros(0, dtype=torch.int8)

    def __call__(self, ids: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        ids = ids.contiguous()
        if state is not self._made or (ids.shape, ids.dtype) != self._ids:
            state = self._adopt(ids, state)
        if not 2 <= state.pos <= state.max_len - 2:
            return self.model.step(ids, state)
        logits = self._runner(ids, self._marker[: state.pos], *state.keys, *state.values)[0]
        state.pos += 1
        return logits, state

    def _adopt(self, ids: torch.Tensor, state: Any) -> Any:
        state = contiguous(state)  # the same cache tensors where they are contiguous already
        key = (signature(state.keys + state.values), ids.shape, ids.dtype, ids.device)
        if key not in self._runners:
            marker = torch.zeros(max(state.pos, 2), dtype=torch.int8, device=ids.device)
            size = torch.export.Dim("position", min=2, max=state.max_len - 2)
            shapes = {"ids": None, "marker": {0: size}, "caches": (None,) * (2 * len(state.keys))}
            program = export_program(_PositionedStep(self.model), (ids, marker, *state.keys, *state.values), shapes)
            self._runners[key] = aot_compile(program)
        if self._marker.numel() < state.max_len or self._marker.device != ids.device:
            self._marker = torch.zeros(state.max_len, dtype=torch.int8, device=ids.device)
        self._runner, self._ids, self._made = self._runners[key], (ids.shape, ids.dtype), state
        return state


__all__ = [
    "ExportedBaselineStep", "ExportedHybridStep", "TreeCodec", "aot_compile", "export_call", "export_program",
    "keeps_shapes", "signature",
]
