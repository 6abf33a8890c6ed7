"""Training with Lightning: the thin module, the shard data module, callbacks and the CLI.

module.py (LitLM: loss, manual optimizer step, non-finite guard, resumable state),
datamodule.py (byte or token windows, bytes-matched window lengths), optim.py (AdamW + WSD),
callbacks.py (sealed step checkpoints, stop signals, run files, progress bar, run clock),
csv_logger.py (metrics.csv), report.py (start lines, MFU ceilings), arguments.py (the command
line before LightningCLI: order, one-line parse errors, help), cli.py (`bytelm train`),
bench.py (`bytelm bench train`). File names and atomic writes of a run dir: bytelm/run_dir.py.
"""
