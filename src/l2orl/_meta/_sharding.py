"""Where meta-training state lives when there are several local devices: each task's agents
split over the devices, everything else replicated."""

import dataclasses

import jax
from jaxtyping import PyTree


def agent_devices(n_agents: int) -> int:
    """How many local devices a task's `n_agents` are sharded over: all of them when there are
    several and they divide `n_agents`, else 1."""
    count = len(jax.local_devices())
    return count if count > 1 and n_agents % count == 0 else 1


def agents_sharding(n_agents: int | None) -> jax.sharding.NamedSharding | None:
    """With several local devices: a leading agent axis of `n_agents` split over them when
    they divide it, anything else (`n_agents=None`) replicated on each. `None` with one
    device."""
    devices = jax.local_devices()
    if len(devices) == 1:
        return None
    split = n_agents is not None and agent_devices(n_agents) > 1
    spec = jax.sharding.PartitionSpec("agents") if split else jax.sharding.PartitionSpec()
    return jax.sharding.NamedSharding(jax.sharding.Mesh(devices, ("agents",)), spec)


def state_shardings(state: PyTree, n_agents: tuple[int, ...]) -> PyTree | None:
    """Every leaf's sharding for a `MetaState` (`None` with one local device): task `i`'s
    agents and estimator state split over its `n_agents[i]`, the rest replicated."""
    replicated = agents_sharding(None)
    if replicated is None:
        return None

    def split(tree, n):
        sharding = agents_sharding(n)
        return jax.tree.map(lambda _: sharding, tree)

    return dataclasses.replace(
        jax.tree.map(lambda _: replicated, state),
        agents=tuple(map(split, state.agents, n_agents)),
        estimator_states=tuple(map(split, state.estimator_states, n_agents)),
    )


def place(state: PyTree, n_agents: tuple[int, ...]) -> PyTree:
    """`state` on the local devices as `state_shardings` says (unchanged with one device)."""
    shardings = state_shardings(state, n_agents)
    return state if shardings is None else jax.device_put(state, shardings)


def with_shapes(shapes: PyTree, n_agents: tuple[int, ...]) -> PyTree:
    """`jax.ShapeDtypeStruct`s of a `MetaState` with the shardings `place` gives it."""
    shardings = state_shardings(shapes, n_agents)
    if shardings is None:
        return shapes
    return jax.tree.map(
        lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s, weak_type=x.weak_type),
        shapes,
        shardings,
    )
