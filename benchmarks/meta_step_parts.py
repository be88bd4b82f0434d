"""Where a meta-step's time goes, part by part, against the floors beneath it.

    python benchmarks/meta_step_parts.py catch|big_dense_long [--agents 64] [--rounds 5]
                                         [--fractions 1 0.5 0.25 0.125 0.0625]

For the CLI's meta-training recipe on the environment (Optim4RL, single-env A2C agents,
K = 4), times one task's meta-gradient estimate, jitted, on the same agents, interleaved
round by round (medians), next to what it cannot go below:

- `adam inner loop`: the K inner updates and the meta-loss rollout of every agent with
  `optax.adam` (the learner's own cost: rollouts, the agents' backward passes);
- `two-GRU floor`: the cells' arithmetic alone for the same coordinate-updates (agents × K
  × parameters), both GRUs as fused elementwise passes over pre-raveled arrays, in a scan;
- `forward`: the K inner updates and the meta-loss with Optim4RL, no meta-gradient: the
  floor of any estimator that runs the agents;
- `autodiff`: `TruncatedBPTT()`, autodiff through the unroll;
- `p = …`: `TruncatedBPTT(coordinate_fraction=p)`.

Each line gives the seconds per meta-step and the env-steps/s it implies (agents × (K + 1)
rollouts of the learner's env-steps, as `l2orl meta-train` counts them).
"""

import argparse
import statistics
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

import l2orl
from l2orl._cells._recurrent import gru_rows
from l2orl._meta._unroll import inner_updates, unroll

ENVS = {"catch": "Catch", "big_dense_long": "big_dense_long"}
K = 4


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", choices=sorted(ENVS))
    parser.add_argument("--agents", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--fractions", type=float, nargs="+", default=[1.0, 0.5, 0.25, 0.125, 0.0625]
    )
    args = parser.parse_args()
    config = l2orl.MetaTrainConfig(env=(ENVS[args.config],), agents=args.agents)
    optimizer = config.make_optimizer()
    (task,) = config.make_tasks()
    agents = l2orl.MetaTrainer(optimizer, (task,)).init(jax.random.key(0)).agents[0]
    keys = jax.random.split(jax.random.key(1), args.agents)
    n_params = sum(
        x.size // args.agents for x in jax.tree.leaves(task.learner.params(agents.learner))
    )
    meta_loss = l2orl.AgentLoss()

    @eqx.filter_jit
    def adam_inner_loop(agents, keys):
        adam = optax.adam(1e-3)

        def one(learner, key):
            state, _, metrics, active, k_loss = inner_updates(
                task, adam, learner, adam.init(task.learner.params(learner)), K, K, key
            )
            return meta_loss(task.learner, task.env, state, metrics, active, k_loss)[0]

        return jax.vmap(one)(agents.learner, keys)

    m_cell, v_cell = optimizer.m_branch.cell, optimizer.v_branch.cell
    hidden = (agents.opt_state.m.hidden, agents.opt_state.v.hidden)
    flat_hidden = jax.tree.map(lambda h: jnp.moveaxis(h, 0, -2).reshape(h.shape[1], -1), hidden)
    g = 0.01 * jnp.cos(jnp.arange(flat_hidden[0].shape[-1], dtype=jnp.float32))

    @jax.jit
    def two_gru_floor(g, hidden):
        def body(hidden, _):
            (m_out, m_hidden), (v_out, v_hidden) = (
                gru_rows(m_cell, g[None], hidden[0]),
                gru_rows(v_cell, jnp.square(g)[None], hidden[1]),
            )
            step = jnp.sign(g) * jnp.exp(m_out[0] - 0.5 * v_out[0])
            return (m_hidden, v_hidden), jnp.sum(step)

        return jax.lax.scan(body, hidden, None, length=K)

    @eqx.filter_jit
    def forward(agents, keys):
        def one(learner, opt_state, key):
            return unroll(optimizer, task, meta_loss, learner, opt_state, K, K, key)[0]

        return jax.vmap(one)(agents.learner, agents.opt_state, keys)

    def estimator(estimator):
        @eqx.filter_jit
        def run(agents, keys):
            return estimator.estimate(
                optimizer=optimizer,
                task=task,
                meta_loss=meta_loss,
                agents=agents,
                state=None,
                length=K,
                max_length=K,
                key=keys[0],
            )[0]

        return run

    parts = {
        "adam inner loop": (adam_inner_loop, (agents, keys)),
        "two-GRU floor": (two_gru_floor, (g, flat_hidden)),
        "forward": (forward, (agents, keys)),
        "autodiff": (estimator(l2orl.TruncatedBPTT()), (agents, keys)),
    }
    for p in args.fractions:
        parts[f"p = {p:g}"] = (
            estimator(l2orl.TruncatedBPTT(coordinate_fraction=p)),
            (agents, keys),
        )
    for run, inputs in parts.values():
        jax.block_until_ready(run(*inputs))
    times = {name: [] for name in parts}
    for _ in range(args.rounds):
        for name, (run, inputs) in parts.items():
            start = time.perf_counter()
            jax.block_until_ready(run(*inputs))
            times[name].append(time.perf_counter() - start)
    env_steps = args.agents * (K + 1) * task.env_steps_per_update()
    updates = args.agents * K * n_params
    print(
        f"{args.config}: {args.agents} agents x {n_params:,} parameters, K = {K}, "
        f"{env_steps:,} env-steps per meta-step; medians of {args.rounds} rounds"
    )
    for name in parts:
        seconds = statistics.median(times[name])
        print(
            f"{name:>16}: {seconds:7.3f} s  {env_steps / seconds:>9,.0f} env-steps/s  "
            f"{seconds / updates * 1e9:6.1f} ns per coordinate-update",
            flush=True,
        )


if __name__ == "__main__":
    main()
