"""Meta-trained Optim4RL on Catch, scored over meta-training seeds × test seeds.

    python examples/paper/meta_quality.py [--meta-seeds 3] [--test-seeds 3] [--test-key 0]
                                          [--meta-lr 3e-3] [--reset-interval 32] [--meta-steps 78]
                                          [--step-size 1e-3] [--test-step-sizes 1e-3 ...]
                                          [--coordinate-fraction P|none]

Meta-trains the README's default (Optim4RL, 64 single-env A2C agents with pipeline training,
TBPTT with K = 4 by the config's default route or `--coordinate-fraction`, meta-Adam 3e-3 with
element-wise clip 1, α = `--step-size`) once per meta-training seed, then trains A2C agents
from scratch on Catch for 5e5 env-steps with each meta-trained optimizer, its α set to each of
`--test-step-sizes` (default: the meta-training α), on the same test seeds (root `--test-key`:
keep it apart from the seeds used to choose settings). Adam with each of those learning rates
runs on the same seeds as a baseline. A run's score is its mean return over the last 10 % of
updates. Prints per-seed finals and the pooled mean, IQM and 95 % bootstrap CIs, and writes
examples/paper/results/meta_quality*.json."""

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meta-seeds", type=int, default=3)
    parser.add_argument("--test-seeds", type=int, default=3)
    parser.add_argument("--test-key", type=int, default=0)
    parser.add_argument("--meta-lr", type=float, default=3e-3)
    parser.add_argument("--reset-interval", type=int, default=32)
    parser.add_argument("--meta-steps", type=int, default=78)
    parser.add_argument("--step-size", type=float, default=1e-3)
    parser.add_argument("--test-step-sizes", type=float, nargs="+", default=None)
    parser.add_argument(
        "--coordinate-fraction", default=None, help="TBPTT by coordinates (or 'none': autodiff)"
    )
    parser.add_argument("--tag", default="")
    args = parser.parse_args()
    test_step_sizes = args.test_step_sizes or [args.step_size]

    import l2orl
    import l2orl.rl as rl

    def evaluate(optimizers: dict, baselines=(), lr=1e-3) -> dict:
        return rl.compare(
            optimizers,
            "Catch",
            390,
            lr=lr,
            baselines=baselines,
            seeds=args.test_seeds,
            key=args.test_key,
        ).results

    finals = {alpha: [] for alpha in test_step_sizes}
    runs = []
    for seed in range(args.meta_seeds):
        with tempfile.TemporaryDirectory() as out_dir:
            changes = {
                "run.seed": seed,
                "algorithm.meta_optimizer.lr": args.meta_lr,
                "algorithm.pipeline.reset_interval": args.reset_interval,
                "run.meta_steps": args.meta_steps,
                "optimizer.step_size": args.step_size,
                "run.out": out_dir,
            }
            if args.coordinate_fraction is not None:
                fraction = args.coordinate_fraction
                changes["algorithm.estimator.coordinate_fraction"] = (
                    None if fraction == "none" else float(fraction)
                )
            config = l2orl.MetaTrainConfig().with_values(changes)
            start = time.perf_counter()
            trainer, state = config.meta_train(progress=False)
        meta_seconds = time.perf_counter() - start
        trained = trainer.optimizer_at(state)
        results = evaluate(
            {
                f"{alpha:g}": dataclasses.replace(trained, step_size=alpha)
                for alpha in test_step_sizes
            }
        )
        seed_finals = {alpha: results[f"{alpha:g}"].final.tolist() for alpha in test_step_sizes}
        for alpha, values in seed_finals.items():
            finals[alpha] += values
        runs.append(
            {
                "meta_seed": seed,
                "meta_train_s": meta_seconds,
                "skipped": int(state.skipped),
                "finals": {f"{a:g}": v for a, v in seed_finals.items()},
            }
        )
        for alpha, values in seed_finals.items():
            print(
                f"meta-seed {seed}: {meta_seconds:.0f} s meta-training, test α {alpha:g}: "
                f"finals {', '.join(f'{f:.3f}' for f in values)}",
                flush=True,
            )
    adam = {alpha: evaluate({}, ("adam",), alpha)[f"adam {alpha:g}"] for alpha in test_step_sizes}
    summary = {"settings": vars(args), "runs": runs, "test": {}}
    for alpha in test_step_sizes:
        pooled = np.asarray(finals[alpha])
        summary["test"][f"{alpha:g}"] = {
            "mean": float(pooled.mean()),
            "ci95": list(rl.bootstrap_ci(pooled)),
            "iqm": rl.iqm(pooled),
            "iqm_ci95": list(rl.bootstrap_ci(pooled, rl.iqm)),
            "adam": {
                "finals": adam[alpha].final.tolist(),
                "mean": adam[alpha].mean,
                "ci95": list(adam[alpha].mean_ci),
            },
        }
        s = summary["test"][f"{alpha:g}"]
        print(
            f"test α {alpha:g}, {args.meta_seeds} meta-seeds x {args.test_seeds} test seeds: "
            f"mean {s['mean']:.3f} [{s['ci95'][0]:.3f}, {s['ci95'][1]:.3f}], IQM "
            f"{s['iqm']:.3f}; adam {alpha:g} on the same seeds {s['adam']['mean']:.3f} "
            f"[{s['adam']['ci95'][0]:.3f}, {s['adam']['ci95'][1]:.3f}]"
        )
    out = Path(__file__).parent / "results" / f"meta_quality{args.tag}.json"
    out.write_text(json.dumps(summary, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
