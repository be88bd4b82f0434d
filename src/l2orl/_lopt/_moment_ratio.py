from typing import Any

import equinox as eqx
import jax

from .._custom_types import Params, Updates
from .._utils import check_positive
from ._base import AbstractLearnedOptimizer, check_params, prepare_inputs
from ._branch import Branch, BranchState


class MomentRatioState(eqx.Module):
    """The states of the two branches of a [`l2orl.MomentRatioOptimizer`][]."""

    m: BranchState
    v: BranchState


class MomentRatioOptimizer(AbstractLearnedOptimizer):
    """The Optim4RL structure: `Δθ = -α·m·rsqrt(v + ε)`, `m` and `v` learned per coordinate.

    Each of `m` and `v` is its own [`l2orl.Branch`][]. With a `SignExpHead` on `m` and an
    `ExpHead` on `v` the update is `-α·sign(g)·exp(o1 - o2/2)` (for `ε ≪ v`): the direction is
    fixed to `-sign(g)` and the networks choose only the step size, an Adam-like bias.

    **Arguments:** `m_branch`, `v_branch`, `step_size` `α > 0` (default 1e-3), `eps`
    (default 1e-8), `stop_gradient_inputs` (default True).
    """

    m_branch: Branch
    v_branch: Branch
    step_size: float = eqx.field(static=True, default=1e-3)
    eps: float = eqx.field(static=True, default=1e-8)
    stop_gradient_inputs: bool = eqx.field(static=True, default=True)

    def __check_init__(self):
        check_positive("step_size", self.step_size)
        check_positive("eps", self.eps)

    def init(self, params: Params) -> MomentRatioState:
        check_params(params)
        return MomentRatioState(self.m_branch.init(params), self.v_branch.init(params))

    def update(
        self,
        updates: Updates,
        state: MomentRatioState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, MomentRatioState]:
        grads, params = prepare_inputs(updates, params, self.stop_gradient_inputs)
        m, m_state = self.m_branch(grads, state.m, params)
        v, v_state = self.v_branch(grads, state.v, params)
        new = jax.tree.map(
            lambda m, v, u: (-self.step_size * m * jax.lax.rsqrt(v + self.eps)).astype(u.dtype),
            m,
            v,
            updates,
        )
        return new, MomentRatioState(m_state, v_state)
