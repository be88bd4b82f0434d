from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PyTree

from .._context import UpdateContext
from .._custom_types import Params, Updates
from .._utils import check_positive
from ._base import AbstractCoordinatewiseOptimizer, check_params, ravel
from ._branch import Branch, BranchState


class MomentRatioState(NamedTuple):
    """The states of the two branches of a [`l2orl.MomentRatioOptimizer`][] (a NamedTuple of
    arrays, as optax's states)."""

    m: BranchState
    v: BranchState


class MomentRatioInputs(eqx.Module):
    """What a [`l2orl.MomentRatioOptimizer`][]'s cells and heads read, per coordinate
    (coordinates on the last axis): the gradients and each branch's features."""

    grads: Float[Array, " n"]
    m_features: Float[Array, "n_m n"]
    v_features: Float[Array, "n_v n"]


class MomentRatioOptimizer(AbstractCoordinatewiseOptimizer):
    """The Optim4RL structure: `Δθ = -α·m·rsqrt(v + ε)`, `m` and `v` learned per coordinate.

    Each of `m` and `v` is its own [`l2orl.Branch`][]. With a `SignExpHead` on `m` and an
    `ExpHead` on `v` the update is `-α·sign(g)·exp(o1 - o2/2)` (for `ε ≪ v`): the direction is
    fixed to `-sign(g)` and the networks choose only the step size, an Adam-like bias.

    With `max_step`, each coordinate's step is at most `max_step·α`:
    `Δθ = -α·clip(m·rsqrt(v + ε), ±max_step)` (Adam's steps are bounded by about `α` too), so
    meta-training shapes the response below that bound and cannot inflate the global step.

    **Arguments:** `m_branch`, `v_branch`, `step_size` `α > 0` (default 1e-3), `eps`
    (default 1e-8), `stop_gradient_inputs` (default True), `max_step` (default None: no bound).
    """

    m_branch: Branch
    v_branch: Branch
    step_size: float = eqx.field(static=True, default=1e-3)
    eps: float = eqx.field(static=True, default=1e-8)
    stop_gradient_inputs: bool = eqx.field(static=True, default=True)
    max_step: float | None = eqx.field(static=True, default=None)

    def __check_init__(self):
        check_positive("step_size", self.step_size)
        check_positive("eps", self.eps)
        check_positive("max_step", self.max_step, optional=True)

    def init(self, params: Params) -> MomentRatioState:
        check_params(params)
        return MomentRatioState(self.m_branch.init(params), self.v_branch.init(params))

    @property
    def input_parts(self) -> tuple[eqx.Module, ...]:
        return (self.m_branch.preprocessor, self.v_branch.preprocessor)

    def coordinate_inputs(
        self,
        grads: Updates,
        state: MomentRatioState,
        params: Params | None,
        context: UpdateContext,
    ) -> tuple[MomentRatioInputs, MomentRatioState]:
        m_features, m_pre = self.m_branch.features(grads, state.m, params, context)
        v_features, v_pre = self.v_branch.features(grads, state.v, params, context)
        state = MomentRatioState(
            BranchState(m_pre, state.m.hidden),
            BranchState(v_pre, state.v.hidden),
        )
        return MomentRatioInputs(ravel(grads), m_features, v_features), state

    def coordinate_step(
        self, inputs: MomentRatioInputs, hidden: tuple[PyTree, PyTree]
    ) -> tuple[Float[Array, " n"], tuple[PyTree, PyTree]]:
        m, m_hidden = self.m_branch.step(inputs.m_features, inputs.grads, hidden[0])
        v, v_hidden = self.v_branch.step(inputs.v_features, inputs.grads, hidden[1])
        ratio = m * jax.lax.rsqrt(v + self.eps)
        if self.max_step is not None:
            ratio = jnp.clip(ratio, -self.max_step, self.max_step)
        return -self.step_size * ratio, (m_hidden, v_hidden)

    def hidden(self, state: MomentRatioState) -> tuple[PyTree, PyTree]:
        return state.m.hidden, state.v.hidden

    def with_hidden(
        self, state: MomentRatioState, hidden: tuple[PyTree, PyTree]
    ) -> MomentRatioState:
        return MomentRatioState(
            BranchState(state.m.preprocessor, hidden[0]),
            BranchState(state.v.preprocessor, hidden[1]),
        )
