"""At the start of training, settle the entropy rule's threshold on the run's training bytes.

With `target_compression` and no threshold, the threshold is calibrated on windows of training
bytes (bytelm.models.entropy_model.calibrate); with a fixed threshold, the compression it gives
there is measured. Either way the record goes into the run's config (`entropy_calibration` in
`model_config.json`), so a loaded run chunks exactly as it trained and its planned FLOPs per
byte use a known compression. A resumed run calibrates again on the same bytes with the same
frozen LM, which gives the same threshold.
"""

from __future__ import annotations

import dataclasses
import sys

from lightning.pytorch.utilities import rank_zero_only


@rank_zero_only
def _say(line: str) -> None:
    print(f"bytelm train: {line}", file=sys.stderr)


def settle_entropy_threshold(module, dm) -> None:
    """Calibrate (or measure) the entropy stage of `module`'s model on `dm`'s train split and
    store the record in the model's config; nothing for other models."""
    cfg = module.model_config
    if getattr(cfg, "kind", None) != "hybrid" or "entropy" not in cfg.chunking:
        return
    if cfg.entropy_calibration is None:
        from bytelm.data.shards import load_shard
        from bytelm.models.entropy_model import calibrate

        data = load_shard(dm.folder, "train", "bytes")
        record = calibrate(cfg, module.model.backbone.router, data, dm.seq_len)
        cfg = dataclasses.replace(cfg, entropy_calibration=record)
        module.model_config = module.model.config = cfg
    record = cfg.entropy_calibration
    how = "fixed" if record["target"] is None else f"calibrated toward {record['target']:g} bytes per chunk"
    _say(
        f"entropy chunking ({cfg.entropy_mode}): threshold {record['threshold']:.4f} nats ({how}); "
        f"{record['train_compression']:.3f} bytes per chunk on {record['bytes']:,} training bytes"
    )
