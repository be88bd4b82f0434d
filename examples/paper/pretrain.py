"""Meta-train a shipped optimizer's recipe and package it with its evidence.

    python examples/paper/pretrain.py RECIPE [--out DIR] [--package FILE]
                                      [--validation FILE] [--smoke]

Recipes (their settings are the JSON files beside this script):

- `optim4rl-brax` (`pretrain_brax.json`): Optim4RL with scale-free inputs
  (`l2orl.optim4rl_scale_free`) meta-trained on brax's inverted_double_pendulum with PPO
  agents (one env each, α 3e-4, gradients clipped at 1), 32 agents in a staggered pipeline
  (reset interval 16), K = 4, the agents' own loss, 40 meta-steps, meta-training seed 1;
  22–29 min on two CPU cores. It passes the validation protocol with seeds 0 and 1; seed 1
  ships.
- `optim4rl-brax-adam` (`pretrain_brax_adam.json`): the same recipe for
  `Optim4RL-scale-free-Adam`, the scale-free Optim4RL stepping along Adam's direction (Adam
  untrained), meta-training seed 0; 21 min.
- `l2orl-rl` (`pretrain_rl.json`): Optim4RL with scale-free inputs
  (`l2orl.optim4rl_scale_free`) meta-trained on Catch and CartPole-v1 with A2C agents and on
  CartPole-v1 and Acrobot-v1 with PPO agents (each at its Adam learning rate relative to
  Catch's: `update_scale`), 128 agents per task in a staggered pipeline, K = 4, the meta-loss
  on a fresh 64-env rollout, each task's meta-gradient normalised to 0.5; about 11 min on two
  CPU cores.
- `optim4rl-gridworld` (`pretrain_gridworld.json`): the paper's recipe, Optim4RL on the six
  LPG gridworlds at once (docs/reference.md, "Multi-task gridworld meta-training"), with 16
  agents per task instead of the reference's 512; about an hour.

The brax recipes' optimizers pass the validation protocol and ship; the other two do not
(docs/results.md), and their packages are for `l2orl.load`.
A run resumes where it stopped. The package is the optimizer with a manifest: the recipe's
command, the run's configuration, the l2orl version, training figures (wall time, env-steps,
skipped meta-steps, each task's agent return early and late) and, with `--validation`, the
validation protocol's figures (`examples/paper/validate.py`'s JSON); plus a plot of the metrics
log, `<out>/training.png`.

    python examples/paper/pretrain.py optim4rl-brax
    python examples/paper/validate.py --optimizer runs/optim4rl-brax/optimizer.l2o \\
        --out runs/optim4rl-brax/validate
    python examples/paper/pretrain.py optim4rl-brax \\
        --validation runs/optim4rl-brax/validate/validation.json \\
        --package src/l2orl/pretrained/optim4rl-brax.l2o
"""

import argparse
import json
from pathlib import Path

import numpy as np

import l2orl

RECIPES = {
    "optim4rl-brax": Path(__file__).with_name("pretrain_brax.json"),
    "optim4rl-brax-adam": Path(__file__).with_name("pretrain_brax_adam.json"),
    "l2orl-rl": Path(__file__).with_name("pretrain_rl.json"),
    "optim4rl-gridworld": Path(__file__).with_name("pretrain_gridworld.json"),
}
SMOKE_TASKS = (("Catch", "default"), ("CartPole-v1", "ppo"))
"""`--smoke`'s tasks (env, learner), each with the settings of the recipe's first task."""
SMOKE = {
    "algorithm.pipeline.agents": 2,
    "algorithm.schedule.unroll": 1,
    "algorithm.pipeline.reset_interval": 2,
    "run.meta_steps": 2,
}
"""`--smoke`'s other settings, by JSON path: two agents per task, two meta-steps."""


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
    parser.add_argument("recipe", nargs="?", choices=sorted(RECIPES), default="l2orl-rl")
    parser.add_argument("--out", help="the run's folder (default: runs/<recipe>)")
    parser.add_argument("--package", help="where to write it (default: <out>/<recipe>.l2o)")
    parser.add_argument("--validation", help="validate.py's JSON for the manifest")
    parser.add_argument("--smoke", action="store_true", help="two small tasks, two meta-steps")
    args = parser.parse_args()

    out = Path(args.out or f"runs/{args.recipe}")
    config = l2orl.MetaTrainConfig.from_json(RECIPES[args.recipe]).with_value("run.out", str(out))
    if args.smoke:
        first = config.to_json()["tasks"][0]
        tasks = [
            {**first, "env": env, "learner": learner, "reward_scale": None, "update_scale": 1.0}
            for env, learner in SMOKE_TASKS
        ]
        config = config.with_values({"tasks": tasks, **SMOKE})
    envs = ", ".join(t.env for t in config.tasks)
    print(f"meta-training {config.optimizer.preset} on {envs} -> {config.run.out}")
    trainer, state = config.meta_train()
    package = Path(args.package) if args.package else out / f"{args.recipe}.l2o"
    package.parent.mkdir(parents=True, exist_ok=True)
    figures = training_figures(out / "metrics.jsonl", [t.name for t in trainer.tasks])
    command = f"python examples/paper/pretrain.py {args.recipe}" + (
        " --smoke" if args.smoke else ""
    )
    metadata = {
        "description": l2orl.PRETRAINED.get(args.recipe, args.recipe),
        "command": command,
        "config": json.loads((out / "config.json").read_text()),
        "training": figures,
    }
    if args.validation:
        metadata["validation"] = json.loads(Path(args.validation).read_text())
    l2orl.save(package, trainer.optimizer_at(state), metadata=metadata)
    print(json.dumps(figures, indent=1))
    print(f"wrote {package}")
    print(f"wrote {l2orl.plot_metrics(out / 'metrics.jsonl', out=out / 'training.png')}")


if __name__ == "__main__":
    main()
