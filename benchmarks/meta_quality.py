"""Meta-trained Optim4RL on Catch over meta-training seeds × test seeds (issue 4's protocol).

    python benchmarks/meta_quality.py [--meta-seeds 3] [--test-seeds 3] [--test-key 0]
                                      [--meta-lr 3e-3] [--reset-interval 32] [--meta-steps 78]

Meta-trains the README's default (Optim4RL, 64 single-env A2C agents with pipeline training,
TBPTT with K = 4, meta-Adam 3e-3 with element-wise clip 1) once per meta-training seed, then trains
A2C agents from scratch on Catch for 5e5 env-steps with each meta-trained optimizer on the same
test seeds (root `--test-key`: keep it apart from the seeds used to choose settings). A run's
score is its mean return over the last 5 % of updates. Prints per-seed finals and the pooled
mean, IQM and 95 % bootstrap CIs, and writes benchmarks/results/meta_quality*.json.
"""

import argparse
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
    parser.add_argument("--tag", default="")
    args = parser.parse_args()

    import l2orl.rl as rl
    from l2orl.cli import META_TRAIN_DEFAULTS, make_trainer

    finals, runs = [], []
    for seed in range(args.meta_seeds):
        settings = dict(
            META_TRAIN_DEFAULTS, seed=seed, meta_lr=args.meta_lr,
            reset_interval=args.reset_interval, meta_steps=args.meta_steps,
        )  # fmt: skip
        trainer = make_trainer(settings)
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as out_dir:
            state = trainer.run(args.meta_steps, out_dir, key=seed, progress=False)
        meta_seconds = time.perf_counter() - start
        result = rl.evaluate(
            {"meta-trained Optim4RL": trainer.optimizer_at(state)},
            rl.default_learner("Catch"), rl.make("Catch"), n_updates=390,
            seeds=args.test_seeds, key=args.test_key, final_fraction=0.05,
        )  # fmt: skip
        seed_finals = result.results["meta-trained Optim4RL"].final.tolist()
        finals += seed_finals
        runs.append({"meta_seed": seed, "meta_train_s": meta_seconds, "finals": seed_finals,
                     "skipped": int(state.skipped)})  # fmt: skip
        print(f"meta-seed {seed}: {meta_seconds:.0f} s meta-training, test finals "
              f"{', '.join(f'{f:.3f}' for f in seed_finals)}", flush=True)  # fmt: skip
    pooled = np.asarray(finals)
    summary = {
        "settings": vars(args),
        "runs": runs,
        "mean": float(pooled.mean()),
        "ci95": list(rl.bootstrap_ci(pooled)),
        "iqm": rl.iqm(pooled),
        "iqm_ci95": list(rl.bootstrap_ci(pooled, rl.iqm)),
    }
    print(f"{args.meta_seeds} meta-seeds x {args.test_seeds} test seeds: mean "
          f"{summary['mean']:.3f} [{summary['ci95'][0]:.3f}, {summary['ci95'][1]:.3f}], "
          f"IQM {summary['iqm']:.3f}")  # fmt: skip
    out = Path(__file__).parent / "results" / f"meta_quality{args.tag}.json"
    out.write_text(json.dumps(summary, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
