from typing import Any

import equinox as eqx
import jax

from .._cells import AbstractCell
from .._custom_types import Params, Updates
from .._heads import AbstractHead
from .._preprocess import AbstractPreprocessor
from .._utils import check_positive
from ._base import AbstractLearnedOptimizer, check_params, prepare_inputs
from ._branch import Branch, BranchState


class PerCoordinateOptimizer(AbstractLearnedOptimizer):
    """`Δθ = -α·head(cell(preprocessor(g)), g)`, one shared network over every coordinate.

    **Arguments:**

    - `preprocessor`, `cell`, `head`: the parts (see [`l2orl.Branch`][]).
    - `step_size`: `α > 0` (default 1e-3).
    - `stop_gradient_inputs`: stop gradients through the gradients and parameters the parts see
      (default True, as the reference: no second-order meta-gradient terms).
    """

    branch: Branch
    step_size: float = eqx.field(static=True)
    stop_gradient_inputs: bool = eqx.field(static=True)

    def __init__(
        self,
        preprocessor: AbstractPreprocessor,
        cell: AbstractCell,
        head: AbstractHead,
        step_size: float = 1e-3,
        *,
        stop_gradient_inputs: bool = True,
    ):
        self.branch = Branch(preprocessor, cell, head)
        self.step_size = float(step_size) if isinstance(step_size, int) else step_size
        self.stop_gradient_inputs = stop_gradient_inputs

    def __check_init__(self):
        check_positive("step_size", self.step_size)

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
        grads, params = prepare_inputs(updates, params, self.stop_gradient_inputs)
        directions, state = self.branch(grads, state, params)
        return jax.tree.map(
            lambda d, u: (-self.step_size * d).astype(u.dtype), directions, updates
        ), state
