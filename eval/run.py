"""Run lm-eval tasks in-process, and the whole evaluation of one model into a folder of JSON.

`evaluate_all(loaded, out)` writes what `bytelm report` reads:

    out/model.json       name, kind, path, params, params_non_embedding, flops_per_byte,
                         bytes_seen, seed, train_length, harness_max_length
    out/bpb.json         `bytelm.eval.bpb.evaluate_bpb` (corpus, split, bytes, ids, bpb, ...)
    out/harness.json     {"limits": {group: n}, "tasks": {task: {metric: value,
                         metric_stderr: value, "n": docs}}, "truncated": {group: requests},
                         "seconds": {group: wall-clock s}}
    out/robustness.json  {"bpb": {clean/perturbation: {bpb, bytes, delta}},
                         "hellaswag": {perturbation: {acc, acc_norm, n, delta_acc,
                         delta_acc_norm}}} (deltas against clean HellaSwag on the same documents)
    out/recall.json      {"max_length", "chance", "fits": {length: bool},
                         "acc": {kind: {length: acc}}, "stderr": {kind: {length: stderr}}}

`--limit` caps the documents of every lm-eval task (lm-eval's own `limit`: the first N of each
task's test split); the per-group limits override it.
"""

from __future__ import annotations

import logging
import math
import os
import time
from pathlib import Path

from bytelm.errors import BytelmError
from bytelm.eval.loading import harness_max_length, model_name, train_bytes, train_length
from bytelm.eval.perturb import PERTURBATIONS
from bytelm.run_dir import write_json_atomic

GROUPS = ("bytelm_zeroshot", "bytelm_chars", "bytelm_recall")
TASKS_DIR = Path(__file__).resolve().parent / "tasks"
BOOTSTRAP_ITERS = 100


def write_json(path: Path, data: dict) -> None:
    """Write `data` atomically (temporary name, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, data, default=_plain)


def _plain(value):
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def _drop_custom_dataset_hint(record: logging.LogRecord) -> bool:
    """lm-eval warns on every task with a Python dataset loader, as all of bytelm's have."""
    return "Custom kwargs can be passed" not in record.getMessage()


def task_manager(corpus: str = "gutenberg"):
    """lm-eval's TaskManager over bytelm's tasks only (offline, fast to index)."""
    task_logger = logging.getLogger("lm_eval.api.task")
    if _drop_custom_dataset_hint not in task_logger.filters:
        task_logger.addFilter(_drop_custom_dataset_hint)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    from lm_eval.tasks import TaskManager

    return TaskManager(
        include_path=str(TASKS_DIR), include_defaults=False, metadata={"corpus": corpus}
    )


def run_tasks(
    lm,
    tasks: list[str],
    limit: int | None = None,
    corpus: str = "gutenberg",
    num_fewshot: int | None = None,
) -> dict:
    """lm-eval `simple_evaluate` on `tasks` -> {task: {metric: value, metric_stderr: value, n}}.

    Metric names lose lm-eval's ",none" filter suffix; stderr "N/A" becomes None.
    """
    from lm_eval import simple_evaluate

    manager = task_manager(corpus)
    unknown = [t for t in tasks if t not in manager.all_tasks]
    if unknown:
        raise BytelmError(
            f"--tasks {unknown[0]}: no such task or group (groups: bytelm_zeroshot, "
            "bytelm_chars, bytelm_recall; eval/tasks/README.md lists every task)"
        )
    raw = simple_evaluate(
        model=lm,
        tasks=tasks,
        task_manager=manager,
        limit=limit,
        num_fewshot=num_fewshot,
        bootstrap_iters=BOOTSTRAP_ITERS,
        log_samples=False,
    )
    return flatten_results(raw)


def flatten_results(raw: dict) -> dict:
    out: dict[str, dict] = {}
    for task, metrics in raw["results"].items():
        row: dict = {}
        for key, value in metrics.items():
            if "," not in key or key.startswith(("alias", "name")):
                continue
            name = key.split(",")[0]
            row[name] = _number(value)
        if any(not k.endswith("_stderr") for k in row):
            row["n"] = int(raw.get("n-samples", {}).get(task, {}).get("effective", 0))
            out[task] = row
    return out


def _number(value):
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def model_info(loaded) -> dict:
    meta = loaded.meta or {}
    model = loaded.model
    return {
        "name": model_name(loaded),
        "kind": model.config.kind,
        "path": str(loaded.path),
        "params": meta.get("params") or model.num_parameters(),
        "params_non_embedding": meta.get("params_non_embedding")
        or model.num_parameters(exclude_embeddings=True),
        "flops_per_byte": meta.get("flops_per_byte") or model.flops_per_byte(train_bytes(loaded)),
        "bytes_seen": meta.get("bytes_seen"),
        "seed": meta.get("seed"),
        "train_length": train_length(loaded),
        "harness_max_length": harness_max_length(loaded),
    }


def hellaswag_robustness(tasks: dict, clean: dict | None) -> dict:
    """Perturbed HellaSwag accuracies with deltas from `clean` (the same documents unperturbed)."""
    out = {}
    for name in PERTURBATIONS:
        row = tasks.get(f"bytelm_hellaswag_{name}")
        if row is None:
            continue
        entry = {"acc": row.get("acc"), "acc_norm": row.get("acc_norm"), "n": row.get("n")}
        if clean is not None and clean.get("n") == row.get("n"):
            for metric in ("acc", "acc_norm"):
                if row.get(metric) is not None and clean.get(metric) is not None:
                    entry[f"delta_{metric}"] = row[metric] - clean[metric]
        out[name] = entry
    return out


def clean_hellaswag(lm, tasks: dict, limits: dict, corpus: str) -> dict | None:
    """Clean HellaSwag on the documents the perturbed tasks saw (rerun if the limits differ)."""
    if "bytelm_chars" not in limits:
        return None
    if "bytelm_hellaswag" in tasks and limits.get("bytelm_zeroshot") == limits["bytelm_chars"]:
        return tasks["bytelm_hellaswag"]
    return run_tasks(lm, ["bytelm_hellaswag"], limits["bytelm_chars"], corpus)["bytelm_hellaswag"]


def recall_table(tasks: dict, loaded, max_length: int) -> dict:
    from bytelm.eval.recall import CHANCE, KINDS, LENGTHS, fits

    acc: dict[str, dict] = {}
    err: dict[str, dict] = {}
    for kind in KINDS:
        for length in LENGTHS:
            row = tasks.get(f"bytelm_recall_{kind}_{length}")
            if row is not None:
                acc.setdefault(kind, {})[length] = row.get("acc")
                err.setdefault(kind, {})[length] = row.get("acc_stderr")
    return {
        "max_length": max_length,
        "chance": CHANCE,
        "lengths": {k: v for k, v in LENGTHS.items()},
        "fits": fits(loaded.codec, max_length),
        "acc": acc,
        "stderr": err,
    }


def group_tasks(group: str, recall_lengths: list[str] | None = None) -> list[str]:
    """The lm-eval names to run for a group: the group itself, or chosen recall lengths."""
    from bytelm.eval.recall import KINDS, LENGTHS

    if group != "bytelm_recall" or recall_lengths is None:
        return [group]
    unknown = [n for n in recall_lengths if n not in LENGTHS]
    if unknown:
        raise BytelmError(
            f"unknown recall length {unknown[0]!r} (choose from {', '.join(LENGTHS)})"
        )
    return [f"bytelm_recall_{kind}_{n}" for kind in KINDS for n in recall_lengths]


def evaluate_all(
    loaded,
    out: str | Path,
    limit: int | None = 20,
    group_limits: dict[str, int | None] | None = None,
    corpus: str = "gutenberg",
    bpb_bytes: int | None = 200_000,
    robust_bytes: int = 20_000,
    groups: tuple[str, ...] = GROUPS,
    recall_lengths: list[str] | None = None,
) -> dict:
    """bpb + the lm-eval groups + robustness + recall for one model, as JSON files in `out`.

    limit: documents per lm-eval task (group_limits overrides it per group name);
    bpb_bytes / robust_bytes: test-split bytes for bpb and for each perturbed bpb;
    recall_lengths: keys of `bytelm.eval.recall.LENGTHS` to run (default all).
    """
    from bytelm.eval.bpb import evaluate_bpb, make_scorer, split_bytes, utf8_slice
    from bytelm.eval.lm import BytelmLM
    from bytelm.eval.robustness import perturbed_bpb

    out = Path(out)
    names = {group: group_tasks(group, recall_lengths) for group in groups}  # checked up front
    info = model_info(loaded)
    write_json(out / "model.json", info)
    start = time.perf_counter()
    bpb = evaluate_bpb(loaded, corpus=corpus, split="test", max_bytes=bpb_bytes)
    write_json(out / "bpb.json", {**bpb, "seconds": time.perf_counter() - start})

    lm = BytelmLM(loaded=loaded)
    limits = {g: (group_limits or {}).get(g, limit) for g in groups}
    tasks: dict[str, dict] = {}
    truncated: dict[str, int] = {}
    seconds: dict[str, float] = {}
    for group in groups:
        before, start = lm.scorer.truncated, time.perf_counter()
        tasks.update(run_tasks(lm, names[group], limits[group], corpus))
        truncated[group] = lm.scorer.truncated - before
        seconds[group] = time.perf_counter() - start
    write_json(
        out / "harness.json",
        {"limits": limits, "tasks": tasks, "truncated": truncated, "seconds": seconds},
    )

    text = utf8_slice(bytes(split_bytes(corpus, "test")[:robust_bytes]))
    robust = {
        "bpb": perturbed_bpb(make_scorer(loaded), text.decode("utf-8")),
        "hellaswag": hellaswag_robustness(tasks, clean_hellaswag(lm, tasks, limits, corpus)),
    }
    write_json(out / "robustness.json", robust)
    recall = recall_table(tasks, loaded, lm.max_length)
    write_json(out / "recall.json", recall)
    return {"model": info, "bpb": bpb, "tasks": tasks, "robustness": robust, "recall": recall}
