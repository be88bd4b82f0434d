"""The validation protocol: a learned optimizer against Adam and its own initialisation.

    python examples/validate.py --optimizer OPT [--init PRESET --init-seed S] [--suite validation]
                                [--tasks ...] [--out out/validate] [--smoke]

Every candidate is chosen on the validation suite, whose tasks and seeds no reported test
uses; the test suite (`--suite test`: the five tasks the results page reports, seeds from
root 0) is run once, on what validation chose. Per task, the candidate (a preset, shipped
optimizer or `.l2o` file), its untrained initialisation (read from the `.l2o` file's
meta-training config, or `--init`/`--init-seed`) and Adam train the same seeds from scratch.
Printed: each one's final return (mean of the last 10 % of updates, 95 % bootstrap CI over
seeds), the paired difference candidate − untrained with its CI, and the verdict.

The rule, fixed before any candidate was scored: a candidate **beats its initialisation on
the suite** when its mean is above the untrained one's on a majority of the tasks, the CI of
the difference is above zero on at least one, and below zero on none.
Writes `<out>/<suite>.json` and one plot per task.
"""

import argparse
import dataclasses
import json
import time
from pathlib import Path

import jax
import numpy as np
import optax

import l2orl
import l2orl.rl as rl
from transfer import Transfer, transfer_tasks


def suites() -> dict[str, dict[str, tuple[Transfer, int]]]:
    """Each suite's tasks, with the seeds' root key. Validation: Catch and small_dense_short
    (A2C, the CLI's `evaluate` settings) and the transfer test's CartPole-v1 and brax
    inverted_pendulum PPO settings on other seeds. Test: the five tasks of the results page."""
    ppo = transfer_tasks()
    a2c = {
        "Catch": Transfer({}, rl.default_learner("Catch"), 1e-3, None, 390, 0.9),
        "small_dense_short": Transfer(
            {}, rl.default_learner("small_dense_short", n_envs=64), 3e-3, optax.clip(1.0), 300, 0.0
        ),
        "small_dense_long": Transfer(
            {}, rl.default_learner("small_dense_long"), 3e-3, optax.clip(1.0), 488, 0.0
        ),
    }
    validation = ("Catch", "small_dense_short", "CartPole-v1", "brax:inverted_pendulum")
    test = ("CartPole-v1", "Breakout-MinAtar", "brax:inverted_pendulum", "brax:hopper")
    tasks = {**ppo, **a2c}
    return {
        "validation": {name: (tasks[name], 100) for name in validation},
        "test": {name: (tasks[name], 0) for name in (*test, "small_dense_long")},
    }


def untrained(spec: str, init: str | None, seed: int | None) -> l2orl.AbstractLearnedOptimizer:
    """The candidate's initialisation: `init`/`seed`, or its `.l2o` file's meta-training config."""
    if init is None and spec in l2orl.PRESETS:  # an untrained preset against itself
        init = spec
    elif init is None and (spec in l2orl.PRETRAINED or Path(spec).is_file()):
        manifest = (
            l2orl.pretrained_manifest(spec)
            if spec in l2orl.PRETRAINED
            else l2orl.read_manifest(spec)
        )
        config = manifest.get("metadata", manifest).get("config", {})
        settings = config.get("settings", config)  # a run's optimizer.l2o, or a package's
        init = settings.get("optimizer")
        seed = settings.get("seed") if seed is None else seed
    if init is None:
        raise SystemExit(
            f"error: {spec!r} records no initialisation; name it with --init and --init-seed"
        )
    if init not in l2orl.PRESETS:
        raise SystemExit(f"error: --init {init!r} is not a preset {sorted(l2orl.PRESETS)}")
    return l2orl.PRESETS[init](key=jax.random.key(0 if seed is None else seed))


def paired_difference(a: np.ndarray, b: np.ndarray) -> tuple[float, list[float]]:
    """Mean of `a - b` over seeds (the same seeds in both) and its 95 % bootstrap CI."""
    diff = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    low, high = rl.bootstrap_ci(diff)
    return float(np.mean(diff)), [low, high]


def verdict(differences: dict[str, dict]) -> bool:
    """The module docstring's rule over a suite's paired differences."""
    means = [d["mean"] for d in differences.values()]
    above = sum(d["ci95"][0] > 0 for d in differences.values())
    below = sum(d["ci95"][1] < 0 for d in differences.values())
    return sum(m > 0 for m in means) > len(means) / 2 and above >= 1 and below == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--optimizer", help="required, but for --smoke (a preset)")
    parser.add_argument("--init", help="the candidate's untrained preset (default: its manifest)")
    parser.add_argument("--init-seed", type=int)
    parser.add_argument("--suite", choices=("validation", "test"), default="validation")
    parser.add_argument("--tasks", nargs="+", help="a subset of the suite's tasks")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--alpha-scale", type=float, default=1.0, help="both learned α over Adam's lr (default 1)"
    )
    parser.add_argument("--out", type=Path, default=Path("out/validate"))
    parser.add_argument("--smoke", action="store_true", help="Catch, 2 updates, for CI")
    args = parser.parse_args()
    if args.smoke:
        args.optimizer = args.optimizer or "Optim4RL-scale-free"
    elif args.optimizer is None:
        raise SystemExit("error: --optimizer is required")
    suite = suites()[args.suite]
    names = ["Catch"] if args.smoke else (args.tasks or list(suite))
    unknown = sorted(set(names) - set(suite))
    if unknown:
        raise SystemExit(
            f"error: unknown tasks {unknown} in the {args.suite} suite: {list(suite)}"
        )
    init = untrained(args.optimizer, args.init, args.init_seed)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{args.suite}.json"  # tasks run separately are kept
    report = json.loads(path.read_text()) if path.exists() else {"tasks": {}}
    if (
        report.get("optimizer", args.optimizer) != args.optimizer
        or report.get("alpha_scale", args.alpha_scale) != args.alpha_scale
    ):
        raise SystemExit(f"error: {path} holds another candidate's results: use another --out")
    report.update(optimizer=args.optimizer, suite=args.suite, alpha_scale=args.alpha_scale)
    differences = {n: t["candidate_minus_untrained"] for n, t in report["tasks"].items()}
    for name in names:
        task, key = suite[name]
        n_updates = 2 if args.smoke else task.n_updates
        alpha = args.alpha_scale * task.lr
        rows = {
            "candidate": l2orl.resolve_optimizer(args.optimizer, alpha),
            "untrained": dataclasses.replace(init, step_size=alpha),
        }
        start = time.perf_counter()
        result = task.compare(name, rows, n_updates, args.seeds, key)
        result.plot(args.out / f"{args.suite}_{name.replace(':', '_')}.png")
        ours, base = result.results["candidate"], result.results["untrained"]
        adam = result.results[f"adam {task.lr:g}"]
        mean, ci = paired_difference(ours.final, base.final)
        differences[name] = {"mean": mean, "ci95": ci}
        report["tasks"][name] = {
            "key": key,
            "seeds": args.seeds,
            "n_updates": n_updates,
            "env_steps": int(result.env_steps[-1]),
            "final": {r: {"mean": x.mean, "ci95": list(x.mean_ci), "per_seed": x.final.tolist()}
                      for r, x in result.results.items()},
            "candidate_minus_untrained": differences[name],
            "within_adam_ci_or_better": bool(ours.mean >= adam.mean_ci[0]),
            "seconds": round(time.perf_counter() - start, 1),
        }  # fmt: skip
        print(
            f"{name:<24} candidate {ours.mean:8.2f} [{ours.mean_ci[0]:.2f}, "
            f"{ours.mean_ci[1]:.2f}]  untrained {base.mean:8.2f}  adam {adam.mean:8.2f}  "
            f"diff {mean:+.2f} [{ci[0]:+.2f}, {ci[1]:+.2f}]  "
            f"({time.perf_counter() - start:.0f} s)",
            flush=True,
        )
    report["beats_initialisation"] = verdict(differences)
    print(f"beats its initialisation on the {args.suite} suite: {report['beats_initialisation']}")
    path.write_text(json.dumps(report, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
