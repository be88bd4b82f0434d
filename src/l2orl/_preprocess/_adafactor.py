from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PyTree

from .._context import UpdateContext
from .._custom_types import Features, Params, Updates
from ._base import AbstractPreprocessor


def _learned_decay(decay0: tuple[float, ...], offset: Float[Array, " n"]) -> Float[Array, " n"]:
    # learned_optimization's reparameterisation: 1 - exp(10·(log(1-β0)/10 + θ)); θ = 0 gives β0.
    base = jnp.log1p(-jnp.asarray(decay0, jnp.float32)) / 10.0
    return jnp.clip(1.0 - jnp.exp(10.0 * (base + offset)), 0.0, 1.0)


def _factored_dims(shape: tuple[int, ...]) -> tuple[int, int] | None:
    """`(d1, d0)`: the axes of the second-largest and largest dims, or None below 2-D."""
    if len(shape) < 2:
        return None
    order = sorted(range(len(shape)), key=lambda i: (shape[i], i))
    return order[-2], order[-1]


class AdafacState(NamedTuple):
    """State of [`l2orl.AdafacFeatures`][] for one parameter leaf of shape `shape`.

    `momentum`: `(*shape, n_m)`; `rms`: `(*shape, 1)`; `row`/`col`: the factored second
    moments `(*shape without the largest / second-largest axis, n_f)` for leaves of ≥ 2 axes,
    else `row` is the full `(*shape, n_f)` accumulator and `col` is `None`.
    """

    momentum: Float[Array, "*shape n_m"]
    rms: Float[Array, "*shape 1"]
    row: Float[Array, "..."]
    col: Float[Array, "..."] | None


class AdafacFeatures(AbstractPreprocessor):
    """STAR's accumulator features (learned_optimization's Adafactor-MLP inputs), 26 in all.

    With momenta `m_i` (decays `momentum_decays`), `rms` (decay `rms_decay`) and Adafactor
    accumulators (decays `adafactor_decays`) over `g² + 1e-30`, the features are, in order:
    `m` (3), `rms` (1), `m·rsqrt(rms+1e-6)` (3), `rsqrt(rms+1e-6)` (1), the Adafactor-normalised
    gradient (3), the row and column accumulators broadcast to the leaf (3 + 3), their
    `rsqrt(·+1e-8)` (3 + 3) and the factored momentum `m·row_factor·col_factor` (3). Leaves with
    fewer than 2 axes use the unfactored accumulator `v` for both row and column, as RMSProp.

    Every decay is a meta-parameter through a learned offset `θ` (zeros at init):
    `β = 1 - exp(10·(log(1-β0)/10 + θ))`.
    """

    momentum_decays: tuple[float, ...] = eqx.field(static=True)
    rms_decay: float = eqx.field(static=True)
    adafactor_decays: tuple[float, ...] = eqx.field(static=True)
    momentum_offset: Float[Array, " n_m"]
    rms_offset: Float[Array, " 1"]
    adafactor_offset: Float[Array, " n_f"]

    def __init__(
        self,
        momentum_decays: tuple[float, ...] = (0.9, 0.99, 0.999),
        rms_decay: float = 0.999,
        adafactor_decays: tuple[float, ...] = (0.9, 0.99, 0.999),
    ):
        self.momentum_decays, self.rms_decay = tuple(momentum_decays), rms_decay
        self.adafactor_decays = tuple(adafactor_decays)
        self.momentum_offset = jnp.zeros((len(self.momentum_decays),), jnp.float32)
        self.rms_offset = jnp.zeros((1,), jnp.float32)
        self.adafactor_offset = jnp.zeros((len(self.adafactor_decays),), jnp.float32)

    def __check_init__(self):
        decays = (*self.momentum_decays, self.rms_decay, *self.adafactor_decays)
        if any(not 0.0 <= d < 1.0 for d in decays):
            raise ValueError(f"AdafacFeatures decays must lie in [0, 1), got {decays}")
        if len(self.momentum_decays) != len(self.adafactor_decays):
            raise ValueError(
                "AdafacFeatures needs as many momentum as Adafactor decays (they pair up in the "
                f"factored momentum), got {self.momentum_decays} and {self.adafactor_decays}"
            )

    @property
    def n_features(self) -> int:
        return 6 * len(self.momentum_decays) + 2 + 2 * len(self.adafactor_decays)

    def init(self, params: Params) -> PyTree:
        n_m, n_f = len(self.momentum_decays), len(self.adafactor_decays)

        def leaf_state(p: Float[Array, "*shape"]) -> AdafacState:
            shape = jnp.shape(p)
            dims = _factored_dims(shape)
            zeros = lambda s: jnp.zeros(s, jnp.float32)  # noqa: E731
            if dims is None:
                return AdafacState(
                    zeros((*shape, n_m)), zeros((*shape, 1)), zeros((*shape, n_f)), None
                )
            d1, d0 = dims
            row_shape = tuple(n for i, n in enumerate(shape) if i != d0)
            col_shape = tuple(n for i, n in enumerate(shape) if i != d1)
            return AdafacState(
                zeros((*shape, n_m)),
                zeros((*shape, 1)),
                zeros((*row_shape, n_f)),
                zeros((*col_shape, n_f)),
            )

        return jax.tree.map(leaf_state, params)

    def __call__(
        self,
        grads: Updates,
        state: PyTree,
        params: Params | None,
        context: UpdateContext | None = None,
    ) -> tuple[Features, PyTree]:
        beta_m = _learned_decay(self.momentum_decays, self.momentum_offset)
        beta_r = _learned_decay((self.rms_decay,), self.rms_offset)
        beta_f = _learned_decay(self.adafactor_decays, self.adafactor_offset)

        def leaf(
            g: Float[Array, "*shape"], s: AdafacState
        ) -> tuple[Float[Array, "*shape n"], AdafacState]:
            g = g.astype(jnp.float32)[..., None]
            g2 = jnp.square(g) + 1e-30
            m = beta_m * s.momentum + (1.0 - beta_m) * g
            rms = beta_r * s.rms + (1.0 - beta_r) * jnp.square(g)
            rsqrt_rms = jax.lax.rsqrt(rms + 1e-6)
            dims = _factored_dims(g.shape[:-1])
            if dims is None:
                v = beta_f * s.row + (1.0 - beta_f) * g2
                row = col = v
                # Floored as the factored branch: rsqrt's derivative overflows at v ~ 1e-31
                # (a zero gradient), which made meta-gradients NaN.
                fac_g = g * jax.lax.rsqrt(jnp.maximum(v, 1e-9))
                fac_m = m * jax.lax.rsqrt(v + 1e-6)
                new = AdafacState(m, rms, v, None)
            else:
                d1, d0 = dims
                v_row = beta_f * s.row + (1.0 - beta_f) * jnp.mean(g2, axis=d0)
                v_col = beta_f * s.col + (1.0 - beta_f) * jnp.mean(g2, axis=d1)
                reduced_d1 = d1 - 1 if d1 > d0 else d1
                row_mean = jnp.mean(v_row, axis=reduced_d1, keepdims=True)
                row_factor = jnp.expand_dims(
                    jax.lax.rsqrt(jnp.maximum(v_row / (row_mean + 1e-9), 1e-9)), d0
                )
                col_factor = jnp.expand_dims(jax.lax.rsqrt(jnp.maximum(v_col, 1e-9)), d1)
                row = jnp.broadcast_to(jnp.expand_dims(v_row, d0), m.shape)
                col = jnp.broadcast_to(jnp.expand_dims(v_col, d1), m.shape)
                fac_g = g * row_factor * col_factor
                fac_m = m * row_factor * col_factor
                new = AdafacState(m, rms, v_row, v_col)
            features = jnp.concatenate(
                [
                    m,
                    rms,
                    m * rsqrt_rms,
                    rsqrt_rms,
                    fac_g,
                    row,
                    col,
                    jax.lax.rsqrt(row + 1e-8),
                    jax.lax.rsqrt(col + 1e-8),
                    fac_m,
                ],
                axis=-1,
            )
            return features, new

        leaves, treedef = jax.tree.flatten(grads)
        pairs = [leaf(g, s) for g, s in zip(leaves, treedef.flatten_up_to(state), strict=True)]
        features = treedef.unflatten([f for f, _ in pairs])
        return features, treedef.unflatten([s for _, s in pairs])

    def nominal_direction(self, state: PyTree) -> Updates:
        """STAR's nominal Adam-AggMo direction `mean_i(m_i·rsqrt(rms + 1e-6))`, per leaf."""
        return jax.tree.map(
            lambda s: jnp.mean(s.momentum * jax.lax.rsqrt(s.rms + 1e-6), axis=-1),
            state,
            is_leaf=lambda x: isinstance(x, AdafacState),
        )
