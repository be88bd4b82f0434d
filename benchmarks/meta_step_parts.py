"""Where a meta-step's time goes, part by part, against the floors beneath it.

    python benchmarks/meta_step_parts.py catch|big_dense_long [--agents 64] [--rounds 5]
                                         [--fractions 1 0.5 0.25 0.125 0.0625]

For the CLI's meta-training recipe on the environment (Optim4RL, single-env A2C agents,
K = 4), times one task's meta-gradient estimate, jitted, on the same agents, interleaved
round by round (medians; `benchmarks/_timing.py`), next to what it cannot go below:

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

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

import l2orl
from _timing import interleaved

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
    config = l2orl.MetaTrainConfig().with_values(
        {
            "tasks[0].env": ENVS[args.config],
            "algorithm.pipeline.agents": args.agents,
            "algorithm.schedule": {"name": "constant", "unroll": K},
        }
    )
    training = config.make_algorithm()
    optimizer, task = training.optimizer, training.tasks[0]
    loop = training.inner_loop(0, K)
    agents = training.init(jax.random.key(0)).agents[0]
    keys = jax.random.split(jax.random.key(1), args.agents)
    n_params = sum(
        x.size // args.agents for x in jax.tree.leaves(task.learner.params(agents.learner))
    )

    @eqx.filter_jit
    def adam_inner_loop(agents, keys):
        adam = optax.adam(1e-3)

        def one(learner, age, key):
            agent = l2orl.AgentsState(learner, adam.init(task.learner.params(learner)), age)
            after, metrics, active, k_loss = loop.updates(adam, agent, key)
            return loop.score(after.learner, metrics, active, k_loss)[0]

        return jax.vmap(one)(agents.learner, agents.age, keys)

    m_cell, v_cell = optimizer.m_branch.cell, optimizer.v_branch.cell
    own = loop.optimizer_state(agents.opt_state)
    hidden = (own.m.hidden, own.v.hidden)
    flat_hidden = jax.tree.map(lambda h: jnp.moveaxis(h, 0, -2).reshape(h.shape[1], -1), hidden)
    g = 0.01 * jnp.cos(jnp.arange(flat_hidden[0].shape[-1], dtype=jnp.float32))

    @jax.jit
    def two_gru_floor(g, hidden):
        def body(hidden, _):
            (m_out, m_hidden), (v_out, v_hidden) = (
                m_cell.rows(g[None], hidden[0]),
                v_cell.rows(jnp.square(g)[None], hidden[1]),
            )
            step = jnp.sign(g) * jnp.exp(m_out[0] - 0.5 * v_out[0])
            return (m_hidden, v_hidden), jnp.sum(step)

        return jax.lax.scan(body, hidden, None, length=K)

    @eqx.filter_jit
    def forward(agents, keys):
        return jax.vmap(lambda agent, key: loop.unroll(optimizer, agent, key)[0])(agents, keys)

    def estimator(estimator):
        @eqx.filter_jit
        def run(agents, keys):
            return estimator.estimate(
                loop=loop, optimizer=optimizer, agents=agents, state=None, key=keys[0]
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
    timings = interleaved(parts, rounds=args.rounds)
    env_steps = args.agents * (K + 1) * loop.env_steps_per_update()
    updates = args.agents * K * n_params
    print(
        f"{args.config}: {args.agents} agents x {n_params:,} parameters, K = {K}, "
        f"{env_steps:,} env-steps per meta-step; medians of {args.rounds} rounds"
    )
    for name in parts:
        seconds = timings[name].median
        print(
            f"{name:>16}: {seconds:7.3f} s  {env_steps / seconds:>9,.0f} env-steps/s  "
            f"{seconds / updates * 1e9:6.1f} ns per coordinate-update",
            flush=True,
        )


if __name__ == "__main__":
    main()
