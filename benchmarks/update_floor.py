"""Optim4RL's update against the fused floor of its two GRUs, from 1k to 1M parameters.

    python benchmarks/update_floor.py [--rounds 7] [--updates 20]

For MLP-shaped pytrees of about 1k, 10k, 100k and 1M parameters, times `--updates` updates in
one `lax.scan` (the way training loops call an optimizer: no per-call dispatch), carrying the
optimizer state and the parameters, of

- `optax.adam(1e-3)`;
- `l2orl.optim4rl()`, the whole optax update on the pytree;
- the **fused floor**: the same arithmetic with nothing around it: both GRUs
  (`gru_rows`, one fused elementwise pass each) and the update rule on one pre-raveled
  float32 gradient vector, its hidden states carried as flat arrays.

Rounds are interleaved so that machine noise hits all alike; figures are medians over rounds,
in ns per coordinate and update, and the ratio of Optim4RL's update to the floor measured in
the same run.
"""

import argparse
import itertools
import statistics
import time

import jax
import jax.numpy as jnp
import optax

import l2orl
from l2orl._cells._recurrent import gru_rows

SIZES = {  # an MLP's widths (weights and biases): about 1k, 10k, 100k, 1M parameters
    "1k": (8, 32, 16, 4),
    "10k": (16, 64, 64, 64, 8),
    "100k": (256, 256, 128, 12),
    "1M": (512, 1024, 512, 18),
}


def mlp(widths: tuple[int, ...]) -> dict:
    keys = jax.random.split(jax.random.key(0), len(widths))
    params = {}
    for i, (a, b) in enumerate(itertools.pairwise(widths)):
        params[f"w{i}"] = 0.05 * jax.random.normal(keys[i], (a, b))
        params[f"b{i}"] = jnp.zeros((b,))
    return params


def scanned(update, updates: int):
    """`updates` calls of `update(grads, state) -> (delta, state)`, params moved each time."""

    @jax.jit
    def run(grads, state, params):
        def body(carry, _):
            state, params = carry
            delta, state = update(grads, state)
            return (state, jax.tree.map(jnp.add, params, delta)), None

        return jax.lax.scan(body, (state, params), None, length=updates)[0]

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--updates", type=int, default=20)
    args = parser.parse_args()
    optim4rl = l2orl.optim4rl()
    m_cell, v_cell = optim4rl.m_branch.cell, optim4rl.v_branch.cell

    def floor(g, hidden):
        (m_out, m_hidden), (v_out, v_hidden) = (
            gru_rows(m_cell, g[None], hidden[0]),
            gru_rows(v_cell, jnp.square(g)[None], hidden[1]),
        )
        step = jnp.sign(g) * jnp.exp(m_out[0]) * jax.lax.rsqrt(jnp.exp(v_out[0]) + 1e-8)
        return -1e-3 * step, (m_hidden, v_hidden)

    print(f"jax {jax.__version__}; {args.rounds} rounds of {args.updates} scanned updates")
    columns = ("size", "params", "adam ns", "floor ns", "optim4rl ns", "x floor")
    print(" ".join(f"{c:>{w}}" for c, w in zip(columns, (6, 9, 8, 9, 12, 8), strict=True)))
    for name, widths in SIZES.items():
        params = mlp(widths)
        grads = jax.tree.map(lambda p: 0.01 * jnp.cos(p * 100.0 + 1.0), params)
        n = sum(p.size for p in jax.tree.leaves(params))
        flat = jnp.concatenate([g.ravel() for g in jax.tree.leaves(grads)])
        adam, state = optax.adam(1e-3), optim4rl.init(params)
        runs = {
            "adam": (scanned(adam.update, args.updates), (grads, adam.init(params), params)),
            "floor": (
                scanned(floor, args.updates),
                (flat, (state.m.hidden, state.v.hidden), jnp.zeros_like(flat)),
            ),
            "optim4rl": (
                scanned(lambda g, s: optim4rl.update(g, s), args.updates),
                (grads, state, params),
            ),
        }
        for run, inputs in runs.values():
            jax.block_until_ready(run(*inputs))
        times = {k: [] for k in runs}
        for _ in range(args.rounds):
            for key, (run, inputs) in runs.items():
                start = time.perf_counter()
                jax.block_until_ready(run(*inputs))
                times[key].append((time.perf_counter() - start) / (args.updates * n) * 1e9)
        adam_ns, floor_ns, ours_ns = (statistics.median(times[k]) for k in runs)
        print(
            f"{name:>6} {n:>9,} {adam_ns:>8.1f} {floor_ns:>9.1f} {ours_ns:>12.1f} "
            f"{ours_ns / floor_ns:>8.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
