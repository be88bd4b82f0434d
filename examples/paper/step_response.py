"""How a learned optimizer's step answers signal and noise: on synthetic gradients at several
scales, and on gradient streams recorded from the validation suite's agents.

    python examples/paper/step_response.py [OPTIMIZER ...] [--steps 1000]
                                           [--tasks TASK ...] [--context FACT=VALUE ...]
                                           [--out FILE]

Each OPTIMIZER (a preset, a shipped optimizer or an `.l2o` file; default: the untrained
`Optim4RL` and `Optim4RL-scale-free`) updates 4,096 coordinates for `--steps` steps: half
receive a constant gradient `+s` (signal), half a random sign `±s` (noise), for gradient
scales `s` from 1e-3 to 1. Printed: the mean step `|Δθ|` in units of the optimizer's `α` on
each half at the last step. Adam, for comparison, steps 1 on signal and ≈ 0.19 on noise
(its momentum averages random signs out), at every scale.

With `--tasks` (names of the validation suite's tasks, `l2orl.rl.SUITES["validation"]`), it
first records real gradients: an agent trains on each task with Adam at the task's learning
rate behind its clip (the suite's settings, one validation seed), and the clipped gradients of
4,096 random coordinates are kept at every optimizer update. Printed per task: the gradient
scale (the median and 90th percentile of `|g|` over the run) and, for each optimizer fed that
stream, its mean `|Δθ|/α` over the second half of the run: the step it would take on the
task's gradients, next to Adam's.

With `--context` (e.g. `training_proportion=1 batch_proportion=0.5`) every update carries
those facts of the RL loop, for optimizers that read them (`l2orl.ContextFeatures`);
without it they read 0.
"""

import argparse
import json
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

import l2orl
import l2orl.rl as rl

SCALES = (1e-3, 1e-2, 1e-1, 1.0)
N = 4096


def last_steps(tx: optax.GradientTransformation, scale: float, steps: int) -> tuple:
    """Mean |update| on the signal and the noise halves at the last of `steps` updates."""
    noise = jnp.sign(jax.random.normal(jax.random.key(0), (steps, N // 2)))
    grads = scale * jnp.concatenate([jnp.ones((steps, N // 2)), noise], axis=1)
    return mean_steps(tx, grads)[-1]


def mean_steps(tx: optax.GradientTransformation, grads: jax.Array) -> np.ndarray:
    """Mean |update| per step, `(steps, 2)` for the two halves of `grads` `(steps, n)`."""

    def body(state, g):
        updates, state = tx.update(g, state)
        return state, updates

    _, updates = jax.lax.scan(body, tx.init(jnp.zeros(grads.shape[1])), grads)
    half = grads.shape[1] // 2
    return np.stack(
        [np.mean(np.abs(updates[:, :half]), 1), np.mean(np.abs(updates[:, half:]), 1)], 1
    )


def record_stream(name: str) -> np.ndarray:
    """`(optimizer updates, N)` clipped gradients of N random coordinates of an agent trained
    on validation task `name` with Adam."""
    task = rl.SUITES["validation"][name]
    env, learner = task.make_env(), task.learner
    k_init, k_pick, k_run = jax.random.split(jax.random.key(task.key), 3)
    state = learner.init(env, k_init)
    n_params = sum(np.size(x) for x in jax.tree.leaves(learner.params(state)))
    coords = jax.random.choice(k_pick, n_params, (N,), replace=False)
    length = task.n_updates * learner.optimizer_updates_per_step()

    def keep(g, buffer):
        flat = jnp.concatenate([jnp.ravel(x) for x in jax.tree.leaves(g)])
        return buffer[0].at[buffer[1]].set(flat[coords], mode="drop"), buffer[1] + 1

    recorder = optax.GradientTransformation(
        lambda p: (jnp.zeros((length, N)), jnp.zeros((), jnp.int32)),
        lambda g, s, p=None: (g, keep(g, s)),
    )
    clip = task.clip_transform()
    parts = [optax.identity() if clip is None else clip, recorder, optax.adam(task.lr)]
    tx = optax.chain(*parts)

    @eqx.filter_jit
    def run(state, opt_state):
        def body(carry, k):
            s, o = carry
            s, o, _ = learner.step(env, s, tx, o, k)
            return (s, o), None

        return jax.lax.scan(body, (state, opt_state), jax.random.split(k_run, task.n_updates))[0]

    _, opt_state = run(state, tx.init(learner.params(state)))
    return np.asarray(opt_state[1][0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("optimizers", nargs="*", default=["Optim4RL", "Optim4RL-scale-free"])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument(
        "--tasks",
        nargs="*",
        default=[],
        choices=rl.SUITES["validation"].names,
        help="validation tasks to record",
    )
    parser.add_argument(
        "--context", nargs="*", default=[], metavar="FACT=VALUE", help="the loop's facts"
    )
    parser.add_argument("--out", help="write the figures as JSON")
    args = parser.parse_args()
    rows = {"adam": optax.adam(1.0)}
    for spec in args.optimizers:
        rows[spec] = l2orl.resolve_optimizer(spec, step_size=1.0).as_optax()
    try:
        pairs = [item.split("=", 1) for item in args.context]
        facts = {pair[0]: jnp.float32(pair[-1]) for pair in pairs if len(pair) == 2}
        if len(facts) < len(pairs):
            raise ValueError("expected FACT=VALUE pairs")
        rows = {name: l2orl.with_context(tx, **facts) for name, tx in rows.items()}
    except ValueError as error:
        parser.error(f"--context {' '.join(args.context)}: {error}")
    figures = {"synthetic": {}, "recorded": {}}
    print(f"|step| / α after {args.steps} steps: signal / noise coordinates")
    print(f"{'optimizer':<40}" + "".join(f"{f's = {s:g}':>16}" for s in SCALES))
    for name, tx in rows.items():
        cells = [last_steps(tx, s, args.steps) for s in SCALES]
        figures["synthetic"][name] = [list(map(float, c)) for c in cells]
        print(f"{name:<40}" + "".join(f"{a:>8.3f} /{b:>6.3f}" for a, b in cells))
    for task in args.tasks:
        grads = record_stream(task)
        scale = np.abs(grads[grads != 0])
        median, p90 = float(np.median(scale)), float(np.quantile(scale, 0.9))
        steps = {
            name: float(np.mean(mean_steps(tx, jnp.asarray(grads))[len(grads) // 2 :]))
            for name, tx in rows.items()
        }
        figures["recorded"][task] = {"median_abs_g": median, "p90_abs_g": p90, "steps": steps}
        print(f"\n{task}: {len(grads)} updates, |g| median {median:.2e}, 90th pct {p90:.2e}")
        for name, value in steps.items():
            print(f"  {name:<40} mean |step| / α {value:.3f}")
    if args.out:
        Path(args.out).write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
