"""How much of a meta-step the learned optimizer's own arithmetic takes, against the 5× target.

    python benchmarks/optimizer_share.py catch|big_dense_long [--agents-per-chunk C]

The same configuration as `meta_speed.py` (Optim4RL, TBPTT with K = 4, 64 single-env A2C
agents, reset interval 32, chunks of C agents). Measured in one process, each the median of
`--repeats` calls after a compiling one (`benchmarks/_timing.py`):

- the whole meta-step (`TruncatedTraining.step`, jitted);
- the optimizer alone: one inner update of C agents' real parameter trees through Optim4RL
  (`tx.update`, vmapped over the agents) and its VJP with respect to the meta-parameters and
  the hidden states — what the meta-step's forward and backward passes compute for it —
  timed and multiplied by the meta-step's `K · 64 / C` such updates;
- within that, its two GRU cells alone on the same coordinates: forward (`GRUCell.rows`)
  and VJP (`GRUCell.rows_vjp`, the hand-written product the meta-gradient uses).

Prints the three, the optimizer's share of the meta-step, and the optimizer's and the cells'
time against the meta-step time that 5× the reference's env-steps/s allows (docs/reference.md,
"Measured on the reference code": Catch 3,078, big_dense_long 867 env-steps/s): above 1, that
part alone misses the target.
"""

import argparse

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

import l2orl
import l2orl.rl as rl
from _timing import time_call

REFERENCE = {"catch": 3078.0, "big_dense_long": 867.0}


def median_seconds(fn, *args, repeats: int) -> float:
    """The median seconds of `repeats` calls of `fn(*args)`, after a compiling one."""
    return time_call(fn, *args, repeats=repeats).median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", choices=sorted(REFERENCE))
    parser.add_argument("--agents-per-chunk", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    env_name = "Catch" if args.config == "catch" else args.config
    chunk = args.agents_per_chunk or (4 if args.config == "catch" else 8)
    n_agents, k = 64, 4
    learner = rl.default_learner(env_name, n_envs=1)
    task = l2orl.MetaTask(args.config, learner, rl.make(env_name))
    trainer = l2orl.TruncatedTraining(
        l2orl.optim4rl(),
        (task,),
        l2orl.Pipeline(n_agents, 32),
        estimator=l2orl.TruncatedBPTT(False, chunk),
        schedule=l2orl.ConstantTruncation(k),
        meta_optimizer=optax.chain(optax.clip(1.0), optax.adam(1e-3)),
    )
    state = trainer.init(jax.random.key(0))
    dynamic, static = eqx.partition(trainer, eqx.is_array)
    step = jax.jit(lambda d, s: eqx.combine(d, static).step(s))  # all outputs: nothing pruned
    meta_step = median_seconds(step, dynamic, state, repeats=args.repeats)

    # One inner update of `chunk` agents through the optimizer, and its VJP.
    agents = jax.tree.map(lambda x: x[:chunk], state.agents[0])
    params = agents.learner.params
    grads = jax.tree.map(lambda p: 1e-2 * jax.random.normal(jax.random.key(1), p.shape), params)
    meta_params, opt_static = eqx.partition(trainer.optimizer, eqx.is_inexact_array)

    def update_and_vjp(meta_params, opt_state, grads, params):
        def update(meta_params, opt_state):
            tx = task.transform(eqx.combine(meta_params, opt_static))
            return jax.vmap(tx.update)(grads, opt_state, params)

        out, vjp = jax.vjp(update, meta_params, opt_state)
        return out, vjp(jax.tree.map(jnp.ones_like, out))

    per_update = median_seconds(
        jax.jit(update_and_vjp),
        meta_params,
        agents.opt_state,
        grads,
        params,
        repeats=args.repeats * 4,
    )
    optimizer = per_update * k * n_agents / chunk

    # Its two GRU cells alone on the same coordinates (no heads, no pytree layout): forward
    # and VJP, through the batched path the optimizer uses.
    cells = (trainer.optimizer.m_branch.cell, trainer.optimizer.v_branch.cell)
    inner = agents.opt_state[l2orl.OPTIMIZER_SLOT]
    hidden = (inner.m.hidden, inner.v.hidden)  # (chunk, 8, n) each
    flat = jnp.concatenate([g.reshape(chunk, -1) for g in jax.tree.leaves(grads)], axis=1)

    def cells_and_vjp(cells, hidden, flat):
        def one(cell, features, hidden):  # one agent's coordinates, coordinate axis last
            out, new_hidden = cell.rows(features, hidden)
            d_cell, _, d_hidden = cell.rows_vjp(
                features, hidden, jnp.ones_like(out), jnp.ones_like(new_hidden)
            )
            return out, new_hidden, d_cell, d_hidden

        results = []
        for cell, features, h in zip(cells, (flat, flat * flat), hidden, strict=True):
            out, new_hidden, d_cell, d_hidden = jax.vmap(one, in_axes=(None, 0, 0))(
                cell, features[:, None], h
            )
            d_cell = jax.tree.map(lambda d: d.sum(0), d_cell)  # over agents, as a VJP sums
            results.append((out, new_hidden, d_cell, d_hidden))
        return results

    per_cells = median_seconds(
        eqx.filter_jit(cells_and_vjp), cells, hidden, flat, repeats=args.repeats * 4
    )
    gru = per_cells * k * n_agents / chunk
    coordinates = sum(x.size for x in jax.tree.leaves(state.agents[0].learner.params))
    ns_per_coordinate = 1e9 * n_agents / (coordinates * chunk)  # seconds per update -> ns
    env_steps = (k + 1) * n_agents * learner.env_steps_per_update()  # the meta-loss rollout too
    budget = env_steps / (5 * REFERENCE[args.config])
    print(f"{args.config}: {coordinates:,} agent parameters, K = {k}, chunks of {chunk} agents")
    print(f"meta-step: {meta_step * 1e3:,.0f} ms ({env_steps / meta_step:,.0f} env-steps/s)")
    print(
        f"optimizer update + VJP alone: {optimizer * 1e3:,.0f} ms per meta-step "
        f"({per_update * ns_per_coordinate:.1f} ns per coordinate and update) = "
        f"{optimizer / meta_step:.2f} of the meta-step"
    )
    print(
        f"its two GRU cells alone: {gru * 1e3:,.0f} ms per meta-step "
        f"({per_cells * ns_per_coordinate:.1f} ns per coordinate and update)"
    )
    print(
        f"5x the reference allows {budget * 1e3:,.0f} ms per meta-step: "
        f"optimizer alone / budget = {optimizer / budget:.2f}, GRU cells alone / budget = "
        f"{gru / budget:.2f}"
    )


if __name__ == "__main__":
    main()
