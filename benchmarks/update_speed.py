"""The learned optimizers' update against `optax.adam` and the fused floor of Optim4RL's GRUs.

    python benchmarks/update_speed.py [--sizes 1k 10k 100k 1M] [--optimizers adam Optim4RL ...]
                                      [--rounds 7] [--updates 20] [--per-call]

For MLP-shaped pytrees of about 1k, 10k, 100k and 1M parameters (`--sizes`), times
`--updates` updates of each of `--optimizers` (default: `adam`, the presets `Optim4RL`,
`L2LGD2`, `LinearOptim`, `STAR`, and `floor`):

- `adam`: `optax.adam(1e-3)`; a preset: its whole optax update on the pytree;
- `floor`, the **fused floor** of Optim4RL: the same arithmetic with nothing around it, both
  GRUs (`GRUCell.rows`, one fused elementwise pass each) and the update rule on one
  pre-raveled float32 gradient vector, its hidden states carried as flat arrays.

By default the updates run in one `lax.scan` (the way training loops call an optimizer: no
per-call dispatch), carrying the optimizer state and the parameters, and the figures are ns
per coordinate and update; with `--per-call`, each update is its own jitted call
(`jax.jit` of `tx.update`, dispatch included) and the figures are ms per call. Rounds are
interleaved so that machine noise hits all alike (`benchmarks/_timing.py`); figures are
medians over rounds, with each one's ratio to Adam and Optim4RL's to the floor measured in
the same run, and the compile time (the first call).
"""

import argparse
import itertools

import jax
import jax.numpy as jnp
import optax

import l2orl
from _timing import interleaved

SIZES = {  # an MLP's widths (weights and biases): about 1k, 10k, 100k, 1M parameters
    "1k": (8, 32, 16, 4),
    "10k": (16, 64, 64, 64, 8),
    "100k": (256, 256, 128, 12),
    "1M": (512, 1024, 512, 18),
}
PRESETS = ("Optim4RL", "L2LGD2", "LinearOptim", "STAR")


def mlp(widths: tuple[int, ...]) -> dict:
    keys = jax.random.split(jax.random.key(0), len(widths))
    params = {}
    for i, (a, b) in enumerate(itertools.pairwise(widths)):
        params[f"w{i}"] = 0.05 * jax.random.normal(keys[i], (a, b))
        params[f"b{i}"] = jnp.zeros((b,))
    return params


def scanned(update, updates: int):
    """`updates` calls of `update(grads, state, params) -> (delta, state)`, params moved each
    time."""

    @jax.jit
    def run(grads, state, params):
        def body(carry, _):
            state, params = carry
            delta, state = update(grads, state, params)
            return (state, jax.tree.map(jnp.add, params, delta)), None

        return jax.lax.scan(body, (state, params), None, length=updates)[0]

    return run


def fused_floor(optim4rl: l2orl.MomentRatioOptimizer):
    """Optim4RL's two GRUs and its update rule on one raveled gradient vector."""
    m_cell, v_cell = optim4rl.m_branch.cell, optim4rl.v_branch.cell

    def floor(g, hidden, params=None):
        (m_out, m_hidden), (v_out, v_hidden) = (
            m_cell.rows(g[None], hidden[0]),
            v_cell.rows(jnp.square(g)[None], hidden[1]),
        )
        step = jnp.sign(g) * jnp.exp(m_out[0]) * jax.lax.rsqrt(jnp.exp(v_out[0]) + 1e-8)
        return -1e-3 * step, (m_hidden, v_hidden)

    return floor


def calls_for(name: str, params, grads, updates: int, per_call: bool) -> tuple:
    """`(fn, args)` running `updates` updates of optimizer `name` (`fn` called once per round,
    or `updates` times with `per_call`)."""
    if name == "floor":
        optim4rl = l2orl.optim4rl()
        state = optim4rl.init(params)
        flat = jnp.concatenate([g.ravel() for g in jax.tree.leaves(grads)])
        hidden = (state.m.hidden, state.v.hidden)
        floor = fused_floor(optim4rl)
        if per_call:
            return jax.jit(floor), (flat, hidden)
        return scanned(floor, updates), (flat, hidden, jnp.zeros_like(flat))
    tx = optax.adam(1e-3) if name == "adam" else l2orl.PRESETS[name]().as_optax()
    state = tx.init(params)
    if per_call:
        return jax.jit(lambda g, s, p: tx.update(g, s, p)), (grads, state, params)
    return scanned(tx.update, updates), (grads, state, params)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", choices=list(SIZES), default=list(SIZES))
    parser.add_argument(
        "--optimizers",
        nargs="+",
        choices=["adam", *PRESETS, "floor"],
        default=["adam", *PRESETS, "floor"],
    )
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--updates", type=int, default=20)
    parser.add_argument("--per-call", action="store_true", help="one jitted call per update")
    args = parser.parse_args()
    names = ["adam", *(n for n in args.optimizers if n != "adam")]  # Adam: the ratios' unit
    unit = "ms per call" if args.per_call else "ns per coordinate-update"
    how = "jitted calls" if args.per_call else "updates in one lax.scan"
    print(
        f"jax {jax.__version__}; {unit}, medians of {args.rounds} rounds of {args.updates} {how}"
    )
    print(
        f"{'size':>6} {'params':>10} {'optimizer':<12} {'time':>9} {'x adam':>7} {'compile s':>10}"
    )
    for size in args.sizes:
        params = mlp(SIZES[size])
        grads = jax.tree.map(lambda p: 0.01 * jnp.cos(p * 100.0 + 1.0), params)
        n = sum(p.size for p in jax.tree.leaves(params))
        calls = {
            name: calls_for(name, params, grads, args.updates, args.per_call) for name in names
        }
        timings = interleaved(
            calls, rounds=args.rounds, number=args.updates if args.per_call else 1
        )
        scale = 1e3 if args.per_call else 1e9 / (args.updates * n)
        figure = {name: t.median * scale for name, t in timings.items()}
        for name in names:
            print(
                f"{size:>6} {n:>10,} {name:<12} {figure[name]:>9.3f} "
                f"{figure[name] / figure['adam']:>6.1f}x {timings[name].first:>10.2f}"
            )
        if {"Optim4RL", "floor"} <= set(figure):
            print(
                f"{size:>6} {n:>10,} Optim4RL / floor: {figure['Optim4RL'] / figure['floor']:.2f}"
            )
        print(flush=True)


if __name__ == "__main__":
    main()
