"""Meta-train the shipped `l2orl.pretrained("optim4rl-gridworld")` and package it.

Optim4RL meta-trained on the six LPG gridworlds at once (docs/reference.md, "Multi-task
gridworld meta-training": the same tasks, per-task reward scales and step sizes, agent
gradients clipped element-wise at 1, each task's meta-gradient normalised to norm 0.5 before
the mean over tasks, staggered pipeline resets), with 16 agents per task instead of the
reference's 512 so that it fits in about an hour on a 2-core CPU. The settings are
`pretrain_gridworld.json` beside this file.

    python examples/pretrain_gridworld.py        # ≈ 1 h; resumes an interrupted run
    python examples/pretrain_gridworld.py --package src/l2orl/pretrained/optim4rl-gridworld.l2o
    python examples/pretrain_gridworld.py --smoke

The package is the optimizer with a manifest: the run's configuration, the l2orl version,
the command and training figures (wall time, env-steps, skipped meta-steps, each task's
agent return early and late in meta-training), and a plot of the
metrics log, `<out>/training.png`.
"""

import argparse
import json
from pathlib import Path

import numpy as np

import l2orl

CONFIG = Path(__file__).with_name("pretrain_gridworld.json")
SMOKE = {
    "env": ["small_dense_short", "big_dense_short"],
    "reward_scale": [100, 10],
    "update_scale": [3, 3],
    "agents": 2,
    "unroll": 1,
    "reset_interval": 2,
    "meta_steps": 2,
}
NAME = "optim4rl-gridworld"


def training_figures(metrics_path: Path, tasks: list[str]) -> dict:
    """Totals of a metrics log, and each task's agent return over its first and last tenth."""
    records = [json.loads(line) for line in metrics_path.read_text().splitlines()]
    tenth = max(len(records) // 10, 1)

    def mean(key: str, part: list[dict]) -> float:
        values = [r[key] for r in part if np.isfinite(r[key])]
        return float(np.mean(values)) if values else float("nan")

    return {
        "meta_steps": records[-1]["meta_step"],
        "skipped": int(records[-1]["skipped"]),
        "env_steps": int(sum(r["env_steps"] for r in records)),
        "wall_seconds": round(sum(r.get("seconds", 0.0) for r in records), 1),
        "agent_return_first_tenth": {t: mean(f"{t}/agent_return", records[:tenth]) for t in tasks},
        "agent_return_last_tenth": {t: mean(f"{t}/agent_return", records[-tenth:]) for t in tasks},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="runs/optim4rl-gridworld")
    parser.add_argument(
        "--package", help=f"where to write the packaged optimizer (default: <out>/{NAME}.l2o)"
    )
    parser.add_argument("--smoke", action="store_true", help="two small tasks, two meta-steps")
    args = parser.parse_args()

    config = l2orl.MetaTrainConfig.from_json(CONFIG).replace(out=args.out)
    if args.smoke:
        config = config.replace(**SMOKE)
    print(f"meta-training {config.optimizer} on {', '.join(config.env)} -> {config.out}")
    trainer, state = config.run()
    out = Path(args.out)
    package = Path(args.package) if args.package else out / f"{NAME}.l2o"
    package.parent.mkdir(parents=True, exist_ok=True)
    figures = training_figures(out / "metrics.jsonl", list(config.env))
    metadata = {
        "description": l2orl.PRETRAINED[NAME],
        "command": "python examples/pretrain_gridworld.py" + (" --smoke" if args.smoke else ""),
        "config": json.loads((out / "config.json").read_text()),
        "training": figures,
    }
    l2orl.save(package, trainer.optimizer_at(state), metadata=metadata)
    print(json.dumps(figures, indent=1))
    print(f"wrote {package}")
    print(f"wrote {l2orl.plot_metrics(out / 'metrics.jsonl', out=out / 'training.png')}")


if __name__ == "__main__":
    main()
