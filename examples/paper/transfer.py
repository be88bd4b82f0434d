"""Zero-shot transfer: a meta-trained optimizer trains PPO agents on unseen envs, vs Adam.

    python examples/paper/transfer.py --optimizer OPT [--envs ...] [--seeds 3]
                                      [--key 0] [--alpha-scale 1] [--untrained]
                                      [--out out/transfer] [--smoke]

The optimizer (an `.l2o` file such as `examples/paper/pretrain.py optim4rl-gridworld`
writes, a shipped optimizer or a preset, as `l2orl evaluate` takes) trains PPO agents from
scratch on gymnax CartPole-v1 and Breakout-MinAtar and brax inverted_pendulum and hopper, the
test suite's PPO tasks (`l2orl.rl.SUITES["test"]`: learners, budgets, Adam settings,
targets). As in the paper's transfer tests, it takes each env's Adam learning rate as its
step size `α` (times `--alpha-scale`) and sees the same clipped gradients as Adam. Every
optimizer runs on the same seeds (root `--key`). Per env it reports the final return (mean of
the last `l2orl.rl.FINAL_FRACTION` = 10 % of updates, 95 % bootstrap CI over seeds), the
first env-step at which the seed-mean return curve reaches the task's target, and whether the
learned optimizer is within Adam's CI or better. Writes one plot and one JSON per env, and
adds the envs it ran to `<out>/results.json` (so envs can be run separately).
"""

import argparse
import json
import time
from pathlib import Path

import jax
import numpy as np

import l2orl
import l2orl.rl as rl

ENVS = ("CartPole-v1", "Breakout-MinAtar", "brax:inverted_pendulum", "brax:hopper")
"""The test suite's PPO tasks (`l2orl.rl.SUITES["test"]`): CPU-sized budgets, purejaxrl's
PPO settings on gymnax (fewer steps on MinAtar), brax's PPO settings on brax (the reference's
element-wise clip 1)."""


def steps_to(result, env_steps: np.ndarray, target: float) -> int | None:
    """The first env-step count at which the seed-mean return curve reaches `target`."""
    reached = np.flatnonzero(np.mean(result.curves, axis=0) >= target)
    return int(env_steps[reached[0]]) if reached.size else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--optimizer", help="required, but for --smoke (Optim4RL)")
    parser.add_argument("--envs", nargs="+", default=None, help="default: all four")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--key", type=int, default=0, help="the seeds' root (validation: 100)")
    parser.add_argument(
        "--alpha-scale", type=float, default=1.0, help="the learned α over Adam's lr (default 1)"
    )
    parser.add_argument("--out", type=Path, default=Path("out/transfer"))
    parser.add_argument(
        "--untrained", action="store_true", help="add Optim4RL before meta-training as a row"
    )
    parser.add_argument("--smoke", action="store_true", help="CartPole, 2 updates, for CI")
    args = parser.parse_args()
    if args.smoke:
        args.optimizer = args.optimizer or "Optim4RL"
    elif args.optimizer is None:
        raise SystemExit("error: --optimizer is required")
    try:
        tasks = rl.SUITES["test"].select(["CartPole-v1"] if args.smoke else (args.envs or ENVS))
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
    args.out.mkdir(parents=True, exist_ok=True)
    results_path = args.out / "results.json"  # runs on other envs are kept
    summary = json.loads(results_path.read_text()) if results_path.exists() else {"envs": {}}
    summary["optimizer"] = args.optimizer
    for task in tasks:
        name = task.name
        n_updates = 2 if args.smoke else task.n_updates
        alpha = args.alpha_scale * task.lr
        learned = l2orl.resolve_optimizer(args.optimizer, alpha)
        optimizers = {f"{args.optimizer} α {alpha:g}": learned}
        if args.untrained:  # the same structure before meta-training (the shipped one's init)
            untrained = l2orl.optim4rl(step_size=alpha, key=jax.random.key(0))
            optimizers[f"untrained Optim4RL α {alpha:g}"] = untrained
        start = time.perf_counter()
        result = task.compare(optimizers, seeds=args.seeds, key=args.key, n_updates=n_updates)
        print(
            f"\n{name}: {n_updates} updates, {int(result.env_steps[-1]):,} env-steps per run, "
            f"{time.perf_counter() - start:.0f} s\n{result.table()}"
        )
        stem = name.replace(":", "_")
        result.plot(args.out / f"{stem}.png")
        result.to_json(args.out / f"{stem}.json")
        rows = list(result.results.values())
        ours, adam = rows[0], result.results[f"adam {task.lr:g}"]
        summary["envs"][name] = {
            "seeds": args.seeds,
            "key": args.key,
            "alpha_scale": args.alpha_scale,
            "n_updates": n_updates,
            "env_steps": int(result.env_steps[-1]),
            "target": task.target,
            "steps_to_target": {r.name: steps_to(r, result.env_steps, task.target) for r in rows},
            "final": {r.name: {"mean": r.mean, "ci95": list(r.mean_ci)} for r in rows},
            "within_adam_ci_or_better": bool(ours.mean >= adam.mean_ci[0]),
            "seconds": {r.name: r.seconds for r in rows},
        }
        print(json.dumps(summary["envs"][name]["steps_to_target"]))
    results_path.write_text(json.dumps(summary, indent=1))
    print(f"wrote {results_path}")


if __name__ == "__main__":
    main()
