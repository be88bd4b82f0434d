"""Learning results of the RL inner loop: does each learner learn, with seeds and CIs.

    python examples/paper/learning.py EXPERIMENT [--seeds N] [--out DIR]

EXPERIMENT: catch, cartpole, small_dense_long, big_dense_long, pendulum or hopper.

Each experiment trains every optimizer from scratch on the same seeds with `l2orl.rl.evaluate`,
prints a markdown table (final return = mean training return over the last 10 % of each run;
mean and IQM with 95 % percentile-bootstrap CIs over seeds) and writes `<name>.json` (curves
included) and `<name>.png` to `--out` (default examples/paper/results).
"""

import argparse
from pathlib import Path

import optax

import l2orl
import l2orl.rl as rl


def catch():
    """A2C on Catch, the reference settings: 64 envs, 20-step rollouts, 5e5 steps (390 updates)."""
    learner = rl.default_learner("Catch")
    optimizers = {
        "adam 1e-3": optax.adam(1e-3),
        "rmsprop 1e-3": optax.rmsprop(1e-3),
        "Optim4RL (untrained)": l2orl.optim4rl(step_size=1e-3).as_optax(),
        "clip(1) + Optim4RL (untrained)": optax.chain(
            optax.clip(1.0), l2orl.optim4rl().as_optax()
        ),
    }
    return [("catch", learner, rl.make("Catch"), optimizers, 390)]


def cartpole():
    """A2C on CartPole-v1: 128 envs, 20-step rollouts, λ = 1, no entropy bonus, 2.56e6 steps."""
    net = rl.NetworkSpec("mlp", (64, 64), "tanh", value_hidden_sizes=(64, 64))
    learner = rl.A2C(
        n_envs=128, rollout_length=20, gamma=0.99, lam=1.0, entropy_coef=0.0, network=net
    )
    tx = optax.chain(optax.clip_by_global_norm(0.5), optax.adam(1e-3))
    return [
        (
            "cartpole",
            learner,
            rl.make("CartPole-v1"),
            {"clip_by_global_norm(0.5) + adam 1e-3": tx},
            1000,
        )
    ]


def _gridworld(name: str, n_updates: int):
    learner = rl.default_learner(name)  # 512 envs, the reference's nets
    optimizers = {
        "clip(1) + adam 3e-3": optax.chain(optax.clip(1.0), optax.adam(3e-3)),
        "clip(1) + rmsprop 3e-3": optax.chain(optax.clip(1.0), optax.rmsprop(3e-3)),
    }
    return [(name, learner, rl.make(name), optimizers, n_updates)]


def small_dense_long():
    """A2C on small_dense_long with the reference's settings (docs/reference.md, "A2C
    settings"): 512 envs, 20-step rollouts, γ 0.995, λ 0.95, element-wise clip 1; 5e6 steps
    (488 updates) of the reference's 3e7, for this CPU."""
    return _gridworld("small_dense_long", 488)


def big_dense_long():
    """A2C on big_dense_long, the reference's settings as small_dense_long (conv net C16_D32);
    1e6 steps (98 updates) of the reference's 3e7: a conv A2C update over 10,240 transitions
    takes seconds on this CPU."""
    return _gridworld("big_dense_long", 98)


def pendulum():
    """PPO on brax inverted_pendulum (generalized backend)."""
    learner = rl.default_learner("brax:inverted_pendulum")  # brax's PPO settings, 64 envs
    env = rl.make("brax:inverted_pendulum", backend="generalized", episode_length=1000)
    return [("inverted_pendulum", learner, env, {"adam 3e-4": optax.adam(3e-4)}, 100)]


def hopper():
    """PPO on brax hopper (spring backend), 1e6+ steps."""
    learner = rl.default_learner("brax:hopper", n_envs=128)
    env = rl.make("brax:hopper", backend="spring", episode_length=1000)
    return [
        (
            "hopper",
            learner,
            env,
            {"clip(1) + adam 3e-4": optax.chain(optax.clip(1.0), optax.adam(3e-4))},
            250,
        )
    ]


EXPERIMENTS = {
    f.__name__: f for f in (catch, cartpole, small_dense_long, big_dense_long, pendulum, hopper)
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiment", choices=sorted(EXPERIMENTS))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    print(EXPERIMENTS[args.experiment].__doc__.strip())
    for name, learner, env, optimizers, n_updates in EXPERIMENTS[args.experiment]():
        result = rl.evaluate(optimizers, learner, env, n_updates=n_updates, seeds=args.seeds)
        steps = int(result.env_steps[-1])
        print(f"\n{name}: {n_updates} updates, {steps:,} env steps per run\n")
        print(result.table())
        result.to_json(args.out / f"{name}.json")
        result.plot(args.out / f"{name}.png")


if __name__ == "__main__":
    main()
