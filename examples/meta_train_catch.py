"""Meta-train Optim4RL on Catch with pipeline training, then test it from scratch against Adam.

    python examples/meta_train_catch.py [--seeds 3] [--out out/meta_train_catch] [--smoke]

The reference's setting (docs/reference.md, "Meta-training settings"): 64 single-env A2C
agents, K = 4 inner updates per meta-step, reset interval 32, 78 meta-steps, meta-Adam 1e-3
with element-wise clip 1; the meta-gradient is truncated BPTT by coordinates, back-propagated
through a sampled 1/16 of them (the CLI's default). The learned optimizer is then used from
scratch by A2C agents with 64 envs for 5e5 steps. `--smoke` runs a tiny version for CI."""

import argparse
from pathlib import Path

import jax
import optax

import l2orl
import l2orl.rl as rl


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("out/meta_train_catch"))
    parser.add_argument("--smoke", action="store_true", help="a tiny run for CI")
    args = parser.parse_args()
    agents, interval, steps, test_updates = (2, 2, 2, 3) if args.smoke else (64, 32, 78, 390)

    env = rl.make("Catch")
    task = l2orl.MetaTask("catch", rl.default_learner("Catch", n_envs=1), env)
    algorithm = l2orl.TruncatedTraining(
        l2orl.optim4rl(step_size=1e-3, key=jax.random.key(0)),
        (task,),
        l2orl.Pipeline(agents, interval),
        estimator=l2orl.TruncatedBPTT(coordinate_fraction=1 / 16),
        schedule=l2orl.ConstantTruncation(4 if not args.smoke else 1),
        meta_optimizer=optax.chain(optax.clip(1.0), optax.adam(1e-3)),
    )
    state = l2orl.meta_train(algorithm, steps, args.out / "run", progress=not args.smoke)
    learned = algorithm.optimizer_at(state)

    result = rl.compare(
        {"meta-trained Optim4RL": learned},
        "Catch",
        test_updates,
        baselines=("adam",),
        env=env,
        seeds=args.seeds,
    )
    print(result.table())
    png, data = result.plot(args.out / "catch.png"), result.to_json(args.out / "catch.json")
    print(f"wrote {png} and {data}")


if __name__ == "__main__":
    main()
