"""What a byte model's chunker does on held-out bytes: bytes per chunk and word-start and
word-edge precision / recall at every stage.

The model's own auxiliary outputs are read (`out.aux["compression"]` and the keys of
`bytelm.layers.chunking.ALIGNMENT_KEYS`, one entry per stage), from windows of the model's
training length that tile the text without overlap, in batches of equal size; each figure is the mean over batches.
A token baseline has no chunker, so it gets None.
"""

from __future__ import annotations

import torch

from bytelm.eval.loading import is_byte_model, train_length
from bytelm.layers.chunking import ALIGNMENT_KEYS

BATCH = 8


@torch.no_grad()
def chunker_stats(loaded, data: bytes, batch: int = BATCH) -> dict | None:
    """{"compression" and the ALIGNMENT_KEYS (lists per stage),
    "windows", "window"} of `data` under a byte model; None for a model without a chunker."""
    if not is_byte_model(loaded):
        return None
    model = loaded.model
    window = train_length(loaded)
    count = len(data) // window
    if count == 0:
        return None
    device = next(model.parameters()).device
    ids = torch.tensor(list(data[: count * window]), device=device).view(count, window)  # [N, W]
    keys = ("compression", *ALIGNMENT_KEYS)
    sums: dict[str, list[float]] = {}
    batches = 0
    for start in range(0, count - batch + 1 if count >= batch else 1, batch):
        aux = model(ids[start : start + batch]).aux
        if "compression" not in aux:
            return None
        for key in keys:
            values = [float(v) for v in aux[key]]
            sums[key] = [s + v for s, v in zip(sums.get(key, [0.0] * len(values)), values)]
        batches += 1
    result = {key: [s / batches for s in sums[key]] for key in keys}
    return {**result, "windows": min(count, batches * batch), "window": window}
