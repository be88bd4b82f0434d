"""Steady-state time of one jitted `update` of each preset vs `optax.adam`, on ~100k parameters.

    python benchmarks/update_speed.py [--rounds 7] [--calls 20]

Every optimizer is timed in the same process, interleaved round by round so that machine noise
hits all of them alike; the figure per optimizer is the median over rounds of the mean time per
call, and the ratio is against Adam's median. Compile time (first call) is reported separately.
"""

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import optax

import l2orl


def params_100k() -> dict:
    """An MLP-shaped pytree: 256→256→128→12 weights and biases, 100,236 parameters."""
    shapes = {
        "w1": (256, 256),
        "b1": (256,),
        "w2": (256, 128),
        "b2": (128,),
        "w3": (128, 12),
        "b3": (12,),
    }
    keys = jax.random.split(jax.random.key(0), len(shapes))
    return {
        n: 0.05 * jax.random.normal(k, s) for (n, s), k in zip(shapes.items(), keys, strict=True)
    }


def make_step(tx: optax.GradientTransformation):
    @jax.jit
    def step(grads, state, params):
        return tx.update(grads, state, params)

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=20)
    args = parser.parse_args()

    params = params_100k()
    grads = jax.tree.map(lambda p: 0.01 * jnp.cos(p * 100.0), params)
    n_params = sum(p.size for p in jax.tree.leaves(params))
    optimizers = {
        "adam": optax.adam(1e-3),
        "Optim4RL": l2orl.optim4rl().as_optax(),
        "L2LGD2": l2orl.l2lgd2().as_optax(),
        "LinearOptim": l2orl.linear_optim().as_optax(),
        "STAR": l2orl.star().as_optax(),
    }
    steps, states, compile_s = {}, {}, {}
    for name, tx in optimizers.items():
        steps[name], states[name] = make_step(tx), tx.init(params)
        start = time.perf_counter()
        jax.block_until_ready(steps[name](grads, states[name], params))
        compile_s[name] = time.perf_counter() - start

    per_call = {name: [] for name in optimizers}
    for _ in range(args.rounds):
        for name in optimizers:
            step, state = steps[name], states[name]
            start = time.perf_counter()
            for _ in range(args.calls):
                out = step(grads, state, params)
            jax.block_until_ready(out)
            per_call[name].append((time.perf_counter() - start) / args.calls)

    adam = statistics.median(per_call["adam"])
    print(f"{n_params:,} params, {args.rounds} rounds x {args.calls} calls, jax {jax.__version__}")
    print(f"{'optimizer':<12} {'median ms':>10} {'min ms':>8} {'vs adam':>8} {'compile s':>10}")
    for name in optimizers:
        med = statistics.median(per_call[name])
        print(
            f"{name:<12} {1e3 * med:>10.3f} {1e3 * min(per_call[name]):>8.3f} "
            f"{med / adam:>7.1f}x {compile_s[name]:>10.2f}"
        )


if __name__ == "__main__":
    main()
