"""How a learned optimizer's step answers signal and noise, at several gradient scales.

    python benchmarks/step_response.py [OPTIMIZER ...] [--steps 1000]

Each OPTIMIZER (a preset, a shipped optimizer or an `.l2o` file; default: the untrained
`Optim4RL` and `optim4rl-gridworld`) updates 4,096 coordinates for `--steps` steps: half
receive a constant gradient `+s` (signal), half a random sign `±s` (noise), for gradient
scales `s` from 1e-3 to 1. Printed: the mean step `|Δθ|` in units of the optimizer's `α` on
each half at the last step. Adam, for comparison, steps 1 on signal and ≈ 0.19 on noise
(its momentum averages random signs out), at every scale.
"""

import argparse

import jax
import jax.numpy as jnp
import optax

import l2orl

SCALES = (1e-3, 1e-2, 1e-1, 1.0)
N = 4096


def last_steps(tx: optax.GradientTransformation, scale: float, steps: int) -> tuple:
    """Mean |update| on the signal and the noise halves at the last of `steps` updates."""
    noise = jnp.sign(jax.random.normal(jax.random.key(0), (steps, N // 2)))
    grads = scale * jnp.concatenate([jnp.ones((steps, N // 2)), noise], axis=1)

    def body(state, g):
        updates, state = tx.update(g, state)
        return state, updates

    _, updates = jax.lax.scan(body, tx.init(jnp.zeros(N)), grads)
    last = jnp.abs(updates[-1])
    return float(jnp.mean(last[: N // 2])), float(jnp.mean(last[N // 2 :]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("optimizers", nargs="*", default=["Optim4RL", "optim4rl-gridworld"])
    parser.add_argument("--steps", type=int, default=1000)
    args = parser.parse_args()
    rows = {"adam": optax.adam(1.0)}
    for spec in args.optimizers:
        rows[spec] = l2orl.resolve_optimizer(spec, step_size=1.0).as_optax()
    print(f"|step| / α after {args.steps} steps: signal / noise coordinates")
    print(f"{'optimizer':<40}" + "".join(f"{f's = {s:g}':>16}" for s in SCALES))
    for name, tx in rows.items():
        cells = [last_steps(tx, s, args.steps) for s in SCALES]
        print(f"{name:<40}" + "".join(f"{a:>8.3f} /{b:>6.3f}" for a, b in cells))


if __name__ == "__main__":
    main()
