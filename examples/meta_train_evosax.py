"""Meta-train Optim4RL on Catch with an evosax strategy over whole lifetimes, then test it.

    python examples/meta_train_evosax.py [--strategy SNES] [--seeds 3]
                                         [--out out/meta_train_evosax] [--smoke]

`l2orl.LifetimeTraining` with an `l2orl.EvosaxStrategy` of population 16 (`--strategy`: Open_ES,
SNES, CMA_ES or another distribution-based evosax strategy), one fresh A2C agent per member (8
envs, 20-step rollouts, an MLP of 64 ReLU units), trained for a lifetime of 80 updates and scored
by the return of its last 10 %, for 25 generations from a search scale of 0.03 (OpenES steps with
Adam 0.05). The strategy's mean is the learned optimizer: it then trains A2C agents from scratch on
Catch for the same lifetime, against Adam 3e-3 and the untrained Optim4RL, on `--seeds` seeds.
Writes the run's folder, catch.png and catch.json. `--smoke` runs a tiny version for CI."""

import argparse
from pathlib import Path

import jax
import optax

import l2orl
import l2orl.rl as rl


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strategy", default="SNES")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("out/meta_train_evosax"))
    parser.add_argument("--smoke", action="store_true", help="a tiny run for CI")
    args = parser.parse_args()
    population, lifetime, generations = (4, 5, 2) if args.smoke else (16, 80, 25)

    learner = rl.A2C(n_envs=8, rollout_length=20, network=rl.NetworkSpec("mlp", (64,), "relu"))
    env = rl.make("Catch")
    task = l2orl.MetaTask("catch", learner, env)
    initial = l2orl.optim4rl(step_size=3e-3, key=jax.random.key(0))
    strategy = l2orl.EvosaxStrategy(
        args.strategy,
        population_size=population,
        std=0.03,
        options={"optimizer": optax.adam(0.05)} if args.strategy == "Open_ES" else {},
    )
    es = l2orl.LifetimeTraining(
        initial,
        (task,),
        lifetime=lifetime,
        strategy=strategy,
        meta_loss=l2orl.LifetimeReturn(0.1),
    )
    state = l2orl.meta_train(es, generations, args.out / "run", progress=not args.smoke)
    print(f"{generations} generations, {int(state.skipped)} skipped")

    result = rl.compare(
        {f"{args.strategy} Optim4RL": es.optimizer_at(state), "untrained Optim4RL": initial},
        "Catch",
        lifetime,
        lr=3e-3,
        baselines=("adam",),
        learner=learner,
        env=env,
        seeds=args.seeds,
        progress=not args.smoke,
    )
    print(result.table())
    png, data = result.plot(args.out / "catch.png"), result.to_json(args.out / "catch.json")
    print(f"wrote {png} and {data}")


if __name__ == "__main__":
    main()
