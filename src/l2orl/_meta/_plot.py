import json
import math
import os
from collections.abc import Sequence
from pathlib import Path


def plot_metrics(
    log: str | os.PathLike,
    keys: Sequence[str] | None = None,
    out: str | os.PathLike | None = None,
) -> Path:
    """Plot a meta-training metrics log (`metrics.jsonl`) against the meta-step, one panel per
    key, to a PNG.

    **Arguments:** `log`, `keys` (default: `meta_loss` and every task's `agent_return`),
    `out` (default: `log` with a `.png` suffix). **Returns** the PNG's path.

    **Raises:** `ValueError` for a missing, empty or malformed log, or keys not in it.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(log)
    if not path.is_file():
        raise ValueError(f"no metrics log at {path}")
    records = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        try:
            records += [json.loads(line)] if line.strip() else []
        except json.JSONDecodeError as error:
            raise ValueError(
                f"{path} is not a metrics log (one JSON object a line): line {number}: "
                f"{error.msg} at column {error.colno}"
            ) from None
    if not records:
        raise ValueError(f"{path} is empty")
    if keys is None:
        keys = ["meta_loss", *(k for k in records[0] if k.endswith("agent_return"))]
    missing = [k for k in keys if k not in records[0]]
    if missing:
        raise ValueError(f"{missing} not in the log; available: {sorted(records[0])}")
    fig, axes = plt.subplots(
        len(keys), 1, figsize=(6, 2.5 * len(keys)), sharex=True, squeeze=False
    )
    steps = [r["meta_step"] for r in records]
    for ax, key in zip(axes[:, 0], keys, strict=True):
        ax.plot(steps, [r.get(key, math.nan) for r in records])  # compile_seconds: once
        ax.set_ylabel(key)
    axes[-1, 0].set_xlabel("meta-step")
    fig.tight_layout()
    out = Path(out) if out is not None else path.with_suffix(".png")
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
