import math
from typing import Any

import equinox as eqx
import jax

from .._cells import MLPCell
from .._custom_types import Params, PRNGKey, Updates
from .._heads import DirectionMagnitudeHead
from .._preprocess import (
    AdafacFeatures,
    Concatenate,
    Identity,
    ParamValue,
    RMSNormalize,
    TimeFeatures,
)
from ._base import AbstractLearnedOptimizer, check_params, check_positive, prepare_inputs
from ._branch import Branch, BranchState


class STAR(AbstractLearnedOptimizer):
    """STAR (Harrison et al., 2022): learned_optimization's `MLPNomLOpt`, written natively.

    Per coordinate, the features are `[g, θ]` and the 26 accumulator features of
    [`l2orl.AdafacFeatures`][], normalised per tensor by [`l2orl.RMSNormalize`][] (ε = 1e-5),
    then 11 un-normalised time features `tanh(t/τ - 1)`, τ ∈ {1, 3, 10, …, 1e5}: 39 inputs. An
    MLP (two hidden layers of 4, ReLU) gives `(d, s, ·, ·)` and the update is

    `Δθ = -α·d·exp(0.001·s) - α_nom·exp(0.001)·mean_i(m_i·rsqrt(rms + 1e-6))`,

    the second term a fixed nominal Adam-AggMo step (α_nom = 1e-3 as the reference, whatever α
    is). Meta-parameters: the MLP (200) and the 7 decay offsets of the accumulators: 207.

    **Arguments:** `step_size` α (default 1e-3), `nominal_step_size` (default 1e-3),
    `hidden_widths` (default `(4, 4)`), `stop_gradient_inputs` (default True), `key`
    (default `jax.random.key(0)`).
    """

    branch: Branch
    step_size: float = eqx.field(static=True)
    nominal_step_size: float = eqx.field(static=True)
    stop_gradient_inputs: bool = eqx.field(static=True)

    def __init__(
        self,
        step_size: float = 1e-3,
        nominal_step_size: float = 1e-3,
        hidden_widths: tuple[int, ...] = (4, 4),
        *,
        stop_gradient_inputs: bool = True,
        key: PRNGKey | None = None,
    ):
        preprocessor = Concatenate(
            RMSNormalize(Concatenate(Identity(), ParamValue(), AdafacFeatures())),
            TimeFeatures(offset=1.0),
        )
        cell = MLPCell(
            preprocessor.n_features, hidden_widths, n_out=4, activation="relu",
            key=jax.random.key(0) if key is None else key,
        )  # fmt: skip
        self.branch = Branch(preprocessor, cell, DirectionMagnitudeHead(exp_mult=0.001, n_in=4))
        self.step_size, self.nominal_step_size = step_size, nominal_step_size
        self.stop_gradient_inputs = stop_gradient_inputs

    def __check_init__(self):
        check_positive("step_size", self.step_size)
        if not self.nominal_step_size >= 0:
            raise ValueError(f"nominal_step_size must be ≥ 0, got {self.nominal_step_size!r}")

    @property
    def accumulators(self) -> AdafacFeatures:
        """The accumulator preprocessor (its decay offsets are meta-parameters)."""
        return self.branch.preprocessor.parts[0].inner.parts[2]

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
            raise ValueError("STAR reads the parameter values: call update(grads, state, params)")
        grads, params = prepare_inputs(updates, params, self.stop_gradient_inputs)
        directions, state = self.branch(grads, state, params)
        nominal = self.accumulators.nominal_direction(state.preprocessor[0][2])
        scale = self.nominal_step_size * math.exp(0.001)
        new = jax.tree.map(
            lambda d, n, u: (-self.step_size * d - scale * n).astype(u.dtype),
            directions, nominal, updates,
        )  # fmt: skip
        return new, state
