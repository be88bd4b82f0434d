from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PyTree

from .._cells import AbstractCell
from .._context import context_of
from .._custom_types import Params, PreprocessorState, PRNGKey, Updates
from .._nn import lecun_normal
from .._preprocess import AbstractPreprocessor
from .._utils import check_positive, check_positive_int
from ._base import AbstractLearnedOptimizer, check_params, prepare_inputs


class HypernetworkState(NamedTuple):
    """A [`l2orl.HypernetworkOptimizer`][]'s state: its preprocessor's state and the per-tensor
    cell's hidden state for every parameter leaf (arrays `(*h, n_tensors)`)."""

    preprocessor: PreprocessorState
    hidden: PyTree


class HypernetworkOptimizer(AbstractLearnedOptimizer):
    """VeLO's shape (Metz et al., 2022): a per-tensor recurrent network writes the weights of
    the per-coordinate MLP that updates that tensor.

    Per parameter leaf, with `x` the preprocessor's `n_f` features of each coordinate:

    1. tensor statistics `s = [log rms(x_1), …, log rms(x_{n_f}), training proportion]` (the
       RMS over the leaf's coordinates; the proportion from the update's
       [`l2orl.UpdateContext`][], 0 without one);
    2. `(a, λ), h = tensor_cell(s, h)`: the cell (one per leaf, shared weights) gives mixture
       logits `a` over a bank of `bank_size` MLPs and a log step scale `λ`;
    3. the leaf's MLP has the weights `Σ_b softmax(a)_b·W_b`; on each coordinate's normalised
       features `x / rms(x)` it gives `(d, m)` = `W2·relu(W1·x̂ + b1) + b2 + S·x̂`;
    4. `Δθ = -α·exp(λ)·d·exp(exp_mult·m)`.

    `W2` starts at zero and the skip weights `S` at `d = ĝ` (the first feature): with a zeroed
    cell readout the untrained optimizer is per-tensor normalised gradient descent,
    `Δθ = -α·g / rms(g)`.

    The per-tensor state couples a leaf's coordinates, so the coordinate route of
    [`l2orl.TruncatedBPTT`][] (`coordinate_fraction`) refuses it; autodiff TBPTT and every ES
    estimator train it.

    **Arguments:** `preprocessor` (its first feature must be the gradient, e.g.
    `Concatenate(Identity(), …)`), `tensor_cell` (`n_features = preprocessor.n_features + 1`,
    `n_out = bank_size + 1`), `bank_size`, `mlp_width`, `step_size` α (default 1e-3),
    `exp_mult` (default 0.1), `stop_gradient_inputs` (default True), `key`.
    """

    preprocessor: AbstractPreprocessor
    tensor_cell: AbstractCell
    w1: Float[Array, "bank n_f width"]
    b1: Float[Array, "bank width"]
    w2: Float[Array, "bank width 2"]
    b2: Float[Array, "bank 2"]
    skip: Float[Array, "bank n_f 2"]
    step_size: float = eqx.field(static=True)
    exp_mult: float = eqx.field(static=True)
    stop_gradient_inputs: bool = eqx.field(static=True)

    def __init__(
        self,
        preprocessor: AbstractPreprocessor,
        tensor_cell: AbstractCell,
        bank_size: int = 8,
        mlp_width: int = 8,
        step_size: float = 1e-3,
        exp_mult: float = 0.1,
        *,
        stop_gradient_inputs: bool = True,
        key: PRNGKey,
    ):
        check_positive_int("bank_size", bank_size)
        check_positive_int("mlp_width", mlp_width)
        n_f = preprocessor.n_features
        if tensor_cell.n_features != n_f + 1 or tensor_cell.n_out != bank_size + 1:
            raise ValueError(
                f"the tensor cell must read n_features={n_f + 1} statistics (the "
                f"preprocessor's {n_f} features and the training proportion) and give "
                f"n_out={bank_size + 1} (bank logits and a log step scale); got "
                f"n_features={tensor_cell.n_features}, n_out={tensor_cell.n_out}"
            )
        self.preprocessor, self.tensor_cell = preprocessor, tensor_cell
        self.w1 = lecun_normal(key, (bank_size, n_f, mlp_width), n_f)
        self.b1 = jnp.zeros((bank_size, mlp_width), jnp.float32)
        self.w2 = jnp.zeros((bank_size, mlp_width, 2), jnp.float32)
        self.b2 = jnp.zeros((bank_size, 2), jnp.float32)
        self.skip = jnp.zeros((bank_size, n_f, 2), jnp.float32).at[:, 0, 0].set(1.0)
        self.step_size = float(step_size)
        self.exp_mult = float(exp_mult)
        self.stop_gradient_inputs = stop_gradient_inputs

    def __check_init__(self):
        check_positive("step_size", self.step_size)

    def init(self, params: Params) -> HypernetworkState:
        check_params(params)
        n = len(jax.tree.leaves(params))
        hidden = jax.tree.map(
            lambda h: jnp.broadcast_to(h[..., None], (*h.shape, n)),
            self.tensor_cell.init_hidden(),
        )
        return HypernetworkState(self.preprocessor.init(params), hidden)

    def update(
        self,
        updates: Updates,
        state: HypernetworkState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, HypernetworkState]:
        context = context_of(extra_args)
        grads, params = prepare_inputs(updates, params, self.stop_gradient_inputs)
        features, pre_state = self.preprocessor(grads, state.preprocessor, params, context)
        leaves, treedef = jax.tree.flatten(updates)
        if not leaves:
            return updates, HypernetworkState(pre_state, state.hidden)
        n_f = self.preprocessor.n_features
        flat = [f.reshape(-1, n_f).astype(jnp.float32) for f in treedef.flatten_up_to(features)]
        rms = [jnp.sqrt(jnp.mean(x**2, axis=0) + 1e-12) for x in flat]
        proportion = context.scalar("training_proportion")[None]
        stats = jnp.stack([jnp.concatenate([jnp.log(r), proportion]) for r in rms], axis=-1)
        out, hidden = self.tensor_cell.rows(stats, state.hidden)
        mixtures = jax.nn.softmax(out[:-1], axis=0)
        new = []
        for i, (x, r, leaf) in enumerate(zip(flat, rms, leaves, strict=True)):
            w1, b1, w2, b2, skip = (
                jnp.tensordot(mixtures[:, i], w, axes=1)
                for w in (self.w1, self.b1, self.w2, self.b2, self.skip)
            )
            x = x / r
            d, m = (jax.nn.relu(x @ w1 + b1) @ w2 + b2 + x @ skip).T
            delta = -self.step_size * jnp.exp(out[-1, i]) * d * jnp.exp(self.exp_mult * m)
            new.append(delta.reshape(jnp.shape(leaf)).astype(leaf.dtype))
        return treedef.unflatten(new), HypernetworkState(pre_state, hidden)
