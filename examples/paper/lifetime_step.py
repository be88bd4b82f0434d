"""A learned optimizer's global step, judged on whole agent lifetimes: its final return at
multiples of its `α`.

    python examples/paper/lifetime_step.py --optimizer OPT [--env brax:inverted_double_pendulum]
                                           [--lr 3e-4] [--clip 1] [--scales 0.5 0.71 1 1.41 2]
                                           [--updates 300] [--seeds 3] [--key 200] [--out FILE]

A truncated meta-gradient sees `K` updates of an agent's life; what a step does hundreds of
updates later it cannot see. This trains agents from scratch for `--updates` updates with the
optimizer (a preset, shipped optimizer or `.l2o` file) at `α = c·lr` for each `c` of
`--scales`, and with Adam at `lr`, all behind an element-wise clip (`--clip`, 0 for none) and
on the same seeds (root `--key`; the default is neither the validation nor the test suite's).
Printed: each row's final return (mean of the last 10 % of updates, 95 % bootstrap CI over
seeds) and the multiple with the highest mean. The default env is the one the shipped brax
optimizers were meta-trained on, with its default learner (brax's PPO settings).
"""

import argparse
import json
import time
from pathlib import Path

import optax

import l2orl
import l2orl.rl as rl


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--optimizer", required=True)
    parser.add_argument("--env", default="brax:inverted_double_pendulum")
    parser.add_argument("--lr", type=float, default=3e-4, help="Adam's lr, and α's unit")
    parser.add_argument("--clip", type=float, default=1.0, help="element-wise; 0: none")
    parser.add_argument("--scales", type=float, nargs="+", default=[0.5, 0.71, 1.0, 1.41, 2.0])
    parser.add_argument("--updates", type=int, default=300)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--key", type=int, default=200)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    for name in ("lr", "updates", "seeds"):
        if not getattr(args, name) > 0:
            parser.error(f"--{name} must be positive, got {getattr(args, name)}")
    if args.clip < 0 or any(c <= 0 for c in args.scales):
        parser.error(f"--clip must be ≥ 0 and --scales positive, got {args.clip}, {args.scales}")
    try:
        rows = {
            f"×{c:g}": l2orl.resolve_optimizer(args.optimizer, c * args.lr) for c in args.scales
        }
        env = rl.make(args.env)
    except ValueError as error:
        parser.error(str(error))
    start = time.perf_counter()
    result = rl.compare(
        rows,
        args.env,
        args.updates,
        lr=args.lr,
        baselines=("adam",),
        clip=optax.clip(args.clip) if args.clip else None,
        learner=rl.default_learner(args.env),
        env=env,
        seeds=args.seeds,
        key=args.key,
        final_fraction=0.1,
    )
    print(result.table())
    means = {name: result.results[name].mean for name in rows}
    best = max(means, key=means.get)
    print(
        f"{args.env}: {args.updates} updates, {int(result.env_steps[-1]):,} env-steps per run, "
        f"{time.perf_counter() - start:.0f} s; highest mean at α {best}"
    )
    if args.out:
        report = {
            "optimizer": args.optimizer,
            "env": args.env,
            "updates": args.updates,
            "key": args.key,
            "best": best,
            "final": {
                name: {"mean": r.mean, "ci95": list(r.mean_ci), "per_seed": r.final.tolist()}
                for name, r in result.results.items()
            },
        }
        args.out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
