import equinox as eqx
from jaxtyping import Array, Float, PyTree

from .._cells import AbstractCell
from .._context import UpdateContext
from .._custom_types import Params, Updates
from .._heads import AbstractHead
from .._preprocess import AbstractPreprocessor
from .._utils import check_positive
from ._base import AbstractCoordinatewiseOptimizer, check_params, ravel
from ._branch import Branch, BranchState


class PerCoordinateOptimizer(AbstractCoordinatewiseOptimizer):
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

    @property
    def input_parts(self) -> tuple[eqx.Module, ...]:
        return (self.branch.preprocessor,)

    def coordinate_inputs(
        self, grads: Updates, state: BranchState, params: Params | None, context: UpdateContext
    ) -> tuple[tuple[Float[Array, " n"], Float[Array, "n_features n"]], BranchState]:
        features, pre_state = self.branch.features(grads, state, params, context)
        return (ravel(grads), features), BranchState(pre_state, state.hidden)

    def coordinate_step(
        self, inputs: tuple[Float[Array, " n"], Float[Array, "n_features n"]], hidden: PyTree
    ) -> tuple[Float[Array, " n"], PyTree]:
        grads, features = inputs
        directions, hidden = self.branch.step(features, grads, hidden)
        return -self.step_size * directions, hidden

    def hidden(self, state: BranchState) -> PyTree:
        return state.hidden

    def with_hidden(self, state: BranchState, hidden: PyTree) -> BranchState:
        return BranchState(state.preprocessor, hidden)
