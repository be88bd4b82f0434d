"""The validation protocol: a learned optimizer against Adam and its own initialisation.

    python examples/paper/validate.py --optimizer OPT [--init PRESET --init-seed S]
                                      [--suite validation] [--tasks ...]
                                      [--out out/validate] [--smoke]

Every candidate is chosen on the validation suite, whose tasks and seeds no reported test
uses; the test suite (`--suite test`: the five tasks the results page reports, seeds from
root 0) is run once, on what validation chose. The suites are `l2orl.rl.SUITES`; per task,
`l2orl.rl.evaluate_suite` trains the candidate (a preset, shipped optimizer or `.l2o` file),
its untrained initialisation (read from the `.l2o` file's meta-training config, or
`--init`/`--init-seed`) and Adam on the same seeds from scratch. Printed: each one's final
return (mean of the last `l2orl.rl.FINAL_FRACTION` = 10 % of updates, 95 % bootstrap CI over
seeds), the paired difference candidate − untrained with its CI, and the verdict.

The rule, fixed before any candidate was scored: a candidate **beats its initialisation on
the suite** when its mean is above the untrained one's on a majority of the tasks, the CI of
the difference is above zero on at least one, and below zero on none.
Writes `<out>/<suite>.json` and one plot per task.
"""

import argparse
import json
import time
from pathlib import Path

import jax

import l2orl
import l2orl.rl as rl


def untrained(spec: str, init: str | None, seed: int | None) -> l2orl.AbstractLearnedOptimizer:
    """The candidate's initialisation: `init`/`seed`, or its `.l2o` file's meta-training config
    (a run's recorded settings, nested or in the older flat form)."""
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
        optimizer = settings.get("optimizer")
        if isinstance(optimizer, dict):  # nested: {"optimizer": {"preset": ...}, "run": {...}}
            init = optimizer.get("preset")
            recorded_seed = settings.get("run", {}).get("seed")
        else:
            init, recorded_seed = optimizer, settings.get("seed")
        seed = recorded_seed if seed is None else seed
    if init is None:
        raise SystemExit(
            f"error: {spec!r} records no initialisation; name it with --init and --init-seed"
        )
    if init not in l2orl.PRESETS:
        raise SystemExit(f"error: --init {init!r} is not a preset {sorted(l2orl.PRESETS)}")
    return l2orl.PRESETS[init](key=jax.random.key(0 if seed is None else seed))


def verdict(differences: dict[str, rl.PairedDifference]) -> bool:
    """The module docstring's rule over a suite's paired differences candidate − untrained."""
    means = [d.mean for d in differences.values()]
    above = sum(d.ci[0] > 0 for d in differences.values())
    below = sum(d.ci[1] < 0 for d in differences.values())
    return sum(m > 0 for m in means) > len(means) / 2 and above >= 1 and below == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--optimizer", help="required, but for --smoke (a preset)")
    parser.add_argument("--init", help="the candidate's untrained preset (default: its manifest)")
    parser.add_argument("--init-seed", type=int)
    parser.add_argument("--suite", choices=sorted(rl.SUITES), default="validation")
    parser.add_argument("--tasks", nargs="+", help="a subset of the suite's tasks")
    parser.add_argument("--seeds", type=int, help="runs per optimizer (default: the suite's)")
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
    try:
        suite, names = rl.SUITES[args.suite], ["Catch"] if args.smoke else args.tasks
        suite = suite.select(names) if names else suite
        candidate = l2orl.resolve_optimizer(args.optimizer)
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
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
    differences = {
        name: rl.PairedDifference(t["candidate_minus_untrained"]["mean"],
                                  tuple(t["candidate_minus_untrained"]["ci95"]))
        for name, t in report["tasks"].items()
    }  # fmt: skip
    for task in suite:
        start = time.perf_counter()
        scored = rl.evaluate_suite(
            candidate,
            rl.Suite(suite.name, (task,)),
            baselines={"untrained": init},
            alpha_scale=args.alpha_scale,
            seeds=args.seeds,
            n_updates=2 if args.smoke else None,
        ).tasks[task.name]
        scored.evaluation.plot(args.out / f"{args.suite}_{task.name.replace(':', '_')}.png")
        ours, base, adam = scored.candidate, scored.evaluation.results["untrained"], scored.adam
        difference = differences[task.name] = scored.differences["untrained"]
        figures = scored.to_dict()
        report["tasks"][task.name] = {
            **{k: figures[k] for k in ("key", "seeds", "n_updates", "env_steps", "final")},
            "candidate_minus_untrained": {"mean": difference.mean, "ci95": list(difference.ci)},
            "within_adam_ci_or_better": scored.within_adam_ci_or_better,
            "seconds": round(time.perf_counter() - start, 1),
        }
        print(
            f"{task.name:<24} candidate {ours.mean:8.2f} [{ours.mean_ci[0]:.2f}, "
            f"{ours.mean_ci[1]:.2f}]  untrained {base.mean:8.2f}  adam {adam.mean:8.2f}  "
            f"diff {difference.mean:+.2f} [{difference.ci[0]:+.2f}, {difference.ci[1]:+.2f}]  "
            f"({time.perf_counter() - start:.0f} s)",
            flush=True,
        )
    report["beats_initialisation"] = verdict(differences)
    print(f"beats its initialisation on the {args.suite} suite: {report['beats_initialisation']}")
    path.write_text(json.dumps(report, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
