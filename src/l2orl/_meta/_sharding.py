"""Where meta-training state lives when there are several devices, on one process or on
several (`jax.distributed`): each task's agents split over all of them (`jax.devices()`),
everything else replicated; and moving that state between the devices and one host."""

import dataclasses

import jax
import numpy as np
from jax.experimental import multihost_utils
from jaxtyping import PyTree


def agent_devices(n_agents: int) -> int:
    """How many devices (of all processes) a task's `n_agents` are sharded over: all of them
    when there are several and they divide `n_agents`, else 1."""
    count = jax.device_count()
    return count if count > 1 and n_agents % count == 0 else 1


def agents_sharding(n_agents: int | None) -> jax.sharding.NamedSharding | None:
    """With several devices: a leading agent axis of `n_agents` split over all of them when
    they divide it, anything else (`n_agents=None`) replicated on each. `None` with one
    device."""
    devices = jax.devices()
    if len(devices) == 1:
        return None
    split = n_agents is not None and agent_devices(n_agents) > 1
    spec = jax.sharding.PartitionSpec("agents") if split else jax.sharding.PartitionSpec()
    return jax.sharding.NamedSharding(jax.sharding.Mesh(devices, ("agents",)), spec)


def state_shardings(state: PyTree, n_agents: tuple[int, ...]) -> PyTree | None:
    """Every leaf's sharding for a meta-state (`None` with one device): task `i`'s entries of
    its per-agent fields (`AGENT_FIELDS`) split over its `n_agents[i]`, the rest replicated."""
    replicated = agents_sharding(None)
    if replicated is None:
        return None

    def split(tree, n):
        sharding = agents_sharding(n)
        return jax.tree.map(lambda _: sharding, tree)

    per_agent = {
        name: tuple(map(split, getattr(state, name), n_agents))
        for name in AGENT_FIELDS
        if hasattr(state, name)
    }
    return dataclasses.replace(jax.tree.map(lambda _: replicated, state), **per_agent)


AGENT_FIELDS = ("agents", "offsets", "estimator_states")
"""A meta-state's fields that hold one entry per task, each with a leading agent axis."""


def place(state: PyTree, n_agents: tuple[int, ...]) -> PyTree:
    """`state` on the devices as `state_shardings` says (unchanged with one device). With
    several processes, each passes the same `state` (held whole, e.g. made from the same
    seed) and keeps the shards on its own devices."""
    shardings = state_shardings(state, n_agents)
    if shardings is None:
        return state
    if jax.process_count() == 1:
        return jax.device_put(state, shardings)
    return jax.tree.map(_across_processes, state, shardings)


def _across_processes(x: jax.Array, sharding: jax.sharding.Sharding) -> jax.Array:
    """`x`, whole on this process and the same on every process, as one array over all
    processes' devices laid out by `sharding`."""
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        return jax.device_put(x, sharding)  # already spans the processes: a reshard
    if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
        data = _across_processes(jax.random.key_data(x), sharding)
        return jax.random.wrap_key_data(data, impl=jax.random.key_impl(x))
    host = np.asarray(x)
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


def gather(tree: PyTree) -> PyTree:
    """`tree` whole on this process: the shards of every leaf that spans several processes
    from all of them (unchanged with one process). Every process must call it: it is a
    collective."""
    if jax.process_count() == 1:
        return tree
    data, impls = _key_data(tree)
    leaves, treedef = jax.tree.flatten(data)
    spread = [
        i
        for i, x in enumerate(leaves)
        if isinstance(x, jax.Array) and not (x.is_fully_addressable or x.is_fully_replicated)
    ]
    whole = multihost_utils.process_allgather([leaves[i] for i in spread], tiled=True)
    for i, x in zip(spread, whole, strict=True):
        leaves[i] = x
    leaves = [  # the rest spans the processes replicated: this process holds it whole
        x.addressable_data(0) if isinstance(x, jax.Array) and not x.is_fully_addressable else x
        for x in leaves
    ]
    return _wrap_keys(treedef.unflatten(leaves), impls)


def broadcast(tree: PyTree) -> PyTree:
    """Process 0's `tree` on every process (unchanged with one process); the others pass a
    tree of the same structure, shapes and dtypes, held whole. A collective."""
    if jax.process_count() == 1:
        return tree
    data, impls = _key_data(tree)
    return _wrap_keys(multihost_utils.broadcast_one_to_all(data), impls)


def _key_data(tree: PyTree) -> tuple[PyTree, list]:
    """`tree` with its PRNG keys as their raw data, and each leaf's key implementation (None
    for other leaves)."""
    leaves, treedef = jax.tree.flatten(tree)
    is_key = [
        isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)
        for x in leaves
    ]
    impls = [jax.random.key_impl(x) if k else None for x, k in zip(leaves, is_key, strict=True)]
    data = [jax.random.key_data(x) if k else x for x, k in zip(leaves, is_key, strict=True)]
    return treedef.unflatten(data), impls


def _wrap_keys(tree: PyTree, impls: list) -> PyTree:
    """The inverse of `_key_data`, on this process's default device."""
    leaves, treedef = jax.tree.flatten(tree)
    return treedef.unflatten(
        [
            x if impl is None else jax.random.wrap_key_data(np.asarray(x), impl=impl)
            for x, impl in zip(leaves, impls, strict=True)
        ]
    )


def with_shapes(shapes: PyTree, n_agents: tuple[int, ...]) -> PyTree:
    """`jax.ShapeDtypeStruct`s of a meta-state with the shardings `place` gives it."""
    shardings = state_shardings(shapes, n_agents)
    if shardings is None:
        return shapes
    return jax.tree.map(
        lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s, weak_type=x.weak_type),
        shapes,
        shardings,
    )
