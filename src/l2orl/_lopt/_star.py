import math
from typing import Any

import equinox as eqx
import jax

from .._context import context_of
from .._custom_types import Params, Updates
from .._preprocess import AdafacFeatures, find_part
from .._utils import check_positive
from ._base import AbstractLearnedOptimizer, check_params, prepare_inputs
from ._branch import Branch, BranchState


class NominalStepOptimizer(AbstractLearnedOptimizer):
    """A learned per-coordinate step plus a fixed nominal one (STAR's structure):

    `Δθ = -α·branch(g, θ) - α_nom·exp(0.001)·mean_i(m_i·rsqrt(rms + 1e-6))`,

    the nominal term an Adam-AggMo direction read from the [`l2orl.AdafacFeatures`][]
    accumulators inside the branch's preprocessor (found by type, wherever they sit), at
    `α_nom` whatever `α` is. [`l2orl.star`][] builds the published configuration.

    **Arguments:** `branch` (its preprocessor must contain an `AdafacFeatures`), `step_size`
    α, `nominal_step_size` α_nom (≥ 0), `stop_gradient_inputs` (default True).
    """

    branch: Branch
    step_size: float = eqx.field(static=True)
    nominal_step_size: float = eqx.field(static=True)
    stop_gradient_inputs: bool = eqx.field(static=True, default=True)

    def __check_init__(self):
        check_positive("step_size", self.step_size)
        if not self.nominal_step_size >= 0:
            raise ValueError(f"nominal_step_size must be ≥ 0, got {self.nominal_step_size!r}")
        if find_part(self.branch.preprocessor, AdafacFeatures) is None:
            raise ValueError(
                "NominalStepOptimizer reads its nominal step from AdafacFeatures accumulators: "
                f"the branch's preprocessor {type(self.branch.preprocessor).__name__} has none"
            )

    def init(self, params: Params) -> BranchState:
        check_params(params)
        return self.branch.init(params)

    def update(
        self,
        updates: Updates,
        state: BranchState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, BranchState]:
        if params is None:
            raise ValueError(
                "NominalStepOptimizer reads the parameter values: call "
                "update(grads, state, params)"
            )
        grads, params = prepare_inputs(updates, params, self.stop_gradient_inputs)
        directions, state = self.branch(grads, state, params, context_of(extra_args))
        accumulators, accumulated = find_part(
            self.branch.preprocessor, AdafacFeatures, state.preprocessor
        )
        nominal = accumulators.nominal_direction(accumulated)
        scale = self.nominal_step_size * math.exp(0.001)
        new = jax.tree.map(
            lambda d, n, u: (-self.step_size * d - scale * n).astype(u.dtype),
            directions,
            nominal,
            updates,
        )
        return new, state
