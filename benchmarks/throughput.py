"""Training throughput (env steps/s) of the RL learners, Adam vs an untrained Optim4RL.

    python benchmarks/throughput.py [--repeats 3]

For each workload one agent trains for a fixed number of updates inside `l2orl.rl.train` (one
jitted scan; compile excluded by a first call); the figure is env steps over the median wall
seconds of `--repeats` runs (`benchmarks/_timing.py`), and the ratio is Optim4RL's throughput
over Adam's on the same learner and environment, measured in the same process.
"""

import argparse

import jax
import optax

import l2orl
import l2orl.rl as rl
from _timing import time_call

WORKLOADS = {
    "A2C Catch, 64 envs": (
        lambda: rl.make("Catch"),
        rl.A2C(n_envs=64, network=rl.NetworkSpec("mlp", (256,), "relu")),
        200,
    ),
    # purejaxrl's CartPole PPO: 4 envs x 128 steps, 4 epochs x 4 minibatches, separate 64-64
    # tanh actor and critic, every update behind clip_by_global_norm(0.5)
    "PPO CartPole-v1, purejaxrl settings": (
        lambda: rl.make("CartPole-v1"),
        rl.PPO(
            n_envs=4,
            rollout_length=128,
            n_minibatches=4,
            n_epochs=4,
            network=rl.NetworkSpec("mlp", (64, 64), "tanh", (64, 64)),
        ),
        100,
    ),
    "A2C big_dense_long, 64 envs": (
        lambda: rl.make("big_dense_long"),
        rl.A2C(n_envs=64, network=rl.NetworkSpec("conv", (32,), "relu")),
        100,
    ),
    "PPO brax inverted_pendulum (spring), 64 envs": (
        lambda: rl.make("brax:inverted_pendulum", backend="spring"),
        rl.PPO(
            n_envs=64,
            rollout_length=32,
            network=rl.NetworkSpec("mlp", (32,) * 4, "swish", (256,) * 5),
        ),
        20,
    ),
}


def measure(learner, env, tx, n_updates: int, repeats: int) -> tuple[float, float]:
    """Env-steps/s (median over `repeats` trainings, compile excluded by a first one) and
    the first training's seconds (compile included)."""
    keys = jax.random.split(jax.random.key(0), 1)
    timing = time_call(
        lambda: rl.train(learner, env, tx, keys, n_updates).returns, repeats=repeats
    )
    env_steps = n_updates * learner.n_envs * learner.rollout_length
    return env_steps / timing.median, timing.first


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"jax {jax.__version__}, {jax.devices()[0].platform}, median of {args.repeats}")
    header = ("workload", "adam steps/s", "Optim4RL steps/s", "ratio", "compile s")
    print(f"{header[0]:<46} {header[1]:>13} {header[2]:>17} {header[3]:>6} {header[4]:>10}")
    for name, (make_env, learner, n_updates) in WORKLOADS.items():
        env = make_env()
        adam, lopt = optax.adam(1e-3), l2orl.optim4rl().as_optax()
        if "purejaxrl" in name:
            adam, lopt = (optax.chain(optax.clip_by_global_norm(0.5), t) for t in (adam, lopt))
        adam, c1 = measure(learner, env, adam, n_updates, args.repeats)
        lopt, c2 = measure(learner, env, lopt, n_updates, args.repeats)
        print(
            f"{name:<46} {adam:>13,.0f} {lopt:>17,.0f} {lopt / adam:>6.2f} {c1:>5.1f}/{c2:<4.1f}"
        )


if __name__ == "__main__":
    main()
