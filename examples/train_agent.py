"""Train A2C agents on Catch with Adam and with an untrained Optim4RL, and plot both.

    python examples/train_agent.py [--seeds 3] [--out out/train_agent] [--smoke]

Both optimizers are plain optax transforms to the learner; Optim4RL at initialisation behaves
like sign descent with step size α, so it learns too, more slowly than Adam. `--smoke` runs a
tiny version (seconds) for CI.
"""

import argparse
from pathlib import Path

import optax

import l2orl
import l2orl.rl as rl


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("out/train_agent"))
    parser.add_argument("--smoke", action="store_true", help="a tiny run for CI")
    args = parser.parse_args()

    n_envs, n_updates = (8, 6) if args.smoke else (64, 390)  # 390 × 64 × 20 = 5e5 steps
    learner = rl.A2C(
        n_envs=n_envs, rollout_length=20, network=rl.NetworkSpec("mlp", (256,), "relu")
    )
    optimizers = {
        "adam 1e-3": optax.adam(1e-3),
        "Optim4RL (untrained), α=1e-3": l2orl.optim4rl(1e-3),
    }
    result = rl.evaluate(
        optimizers, learner, rl.make("Catch"), n_updates=n_updates, seeds=args.seeds
    )
    print(result.table())
    args.out.mkdir(parents=True, exist_ok=True)
    png, data = result.plot(args.out / "catch.png"), result.to_json(args.out / "catch.json")
    print(f"wrote {png} and {data}")


if __name__ == "__main__":
    main()
