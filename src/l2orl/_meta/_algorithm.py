"""The meta-algorithm protocol: what [`l2orl.meta_train`][] runs."""

import abc

import equinox as eqx
from jaxtyping import Array, Int

from .._custom_types import Metrics, PRNGKey
from .._lopt import AbstractLearnedOptimizer


class AbstractMetaState(eqx.Module):
    """Everything a meta-algorithm carries between meta-steps; a checkpoint saves all of it.

    **Attributes:** `meta_step` (meta-steps done), `skipped` (meta-steps whose update was
    not applied because it was non-finite) and whatever the algorithm adds.
    """

    meta_step: eqx.AbstractVar[Int[Array, ""]]
    skipped: eqx.AbstractVar[Int[Array, ""]]


class AbstractMetaAlgorithm(eqx.Module):
    """A way to meta-train a learned optimizer, in the style of optimistix's
    `AbstractIterativeSolver`: `init` makes the state, `step` advances it by one meta-step
    and reports typed metrics, `optimizer_at` reads the learned optimizer off a state.
    [`l2orl.meta_train`][] owns the loop, the logs, checkpoints, lock, signals, resume and
    devices for every algorithm.

    [`l2orl.TruncatedTraining`][] (truncated unrolls of a pipeline of persistent agents) and
    [`l2orl.LifetimeTraining`][] (whole lifetimes scored, searched by a strategy) are the
    library's two; a new one is one final subclass.

    **Attributes:** `optimizer` (the initial learned optimizer).
    """

    optimizer: eqx.AbstractVar[AbstractLearnedOptimizer]

    @abc.abstractmethod
    def init(self, key: PRNGKey) -> AbstractMetaState:
        """The state at meta-step 0, placed on the devices. A function of `key` alone: with
        several processes each calls it with the same key and holds its shards."""

    @abc.abstractmethod
    def step(self, state: AbstractMetaState) -> tuple[AbstractMetaState, Metrics]:
        """One meta-step, pure (the run entry jits it). **Returns:** `(state, metrics)`, the
        metrics a dict of float32 scalars that holds at least `meta_loss`, `env_steps` and
        `skipped`."""

    @abc.abstractmethod
    def optimizer_at(self, state: AbstractMetaState) -> AbstractLearnedOptimizer:
        """The learned optimizer that `state` holds."""

    @abc.abstractmethod
    def state_shapes(self, key: PRNGKey) -> AbstractMetaState:
        """The shapes, dtypes and shardings of `init(key)`'s state, without creating it."""

    @abc.abstractmethod
    def place(self, state: AbstractMetaState) -> AbstractMetaState:
        """A whole `state` (say, read from a checkpoint) placed on the devices as `init`
        places it."""

    @abc.abstractmethod
    def config(self) -> dict:
        """The run's configuration as JSON: what a resumed run must match."""
