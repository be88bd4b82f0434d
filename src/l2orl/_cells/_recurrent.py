import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._activations import ACTIVATIONS, check_activation
from .._custom_types import CellOutput, CoordinateFeatures, PRNGKey
from .._nn import Linear, lecun_normal, orthogonal
from ._base import AbstractCell, autodiff_rows_vjp, vmapped_rows
from ._feedforward import _check_sizes


def _recurrent_kernels(key: PRNGKey, n_gates: int, hidden_size: int) -> Float[Array, "g h h"]:
    return jnp.stack([orthogonal(k, hidden_size) for k in jax.random.split(key, n_gates)])


class GRUCell(AbstractCell):
    """A gated recurrent unit for one coordinate, then a linear readout.

    As flax's `GRUCell` (the reference Optim4RL's), with `a` the activation (default tanh):

    - `r = σ(W_ir x + b_ir + W_hr h)`, `z = σ(W_iz x + b_iz + W_hz h)`
    - `n = a(W_in x + b_in + r ⊙ (W_hn h + b_hn))`, `h' = (1 - z) ⊙ n + z ⊙ h`
    - `out = W_o h' + b_o`

    Input kernels lecun-normal, recurrent kernels orthogonal, biases zero.
    `3·(n_features·H + H) + 3·H² + H + (H + 1)·n_out` parameters: 257 for 1 feature, `H = 8`.

    **Arguments:** `n_features`, `hidden_size` (default 8), `n_out` (default 1), `activation`
    (default `"tanh"`), `key`.
    """

    n_features: int = eqx.field(static=True)
    n_out: int = eqx.field(static=True)
    hidden_size: int = eqx.field(static=True)
    activation: str = eqx.field(static=True)
    input_kernel: Float[Array, "3 hidden n_features"]
    input_bias: Float[Array, "3 hidden"]
    recurrent_kernel: Float[Array, "3 hidden hidden"]
    recurrent_bias: Float[Array, " hidden"]
    readout: Linear

    def __init__(
        self,
        n_features: int,
        hidden_size: int = 8,
        n_out: int = 1,
        activation: str = "tanh",
        *,
        key: PRNGKey,
    ):
        _check_sizes(n_features=n_features, hidden_size=hidden_size, n_out=n_out)
        check_activation(activation)
        k_in, k_rec, k_out = jax.random.split(key, 3)
        self.n_features, self.hidden_size, self.n_out = n_features, hidden_size, n_out
        self.activation = activation
        self.input_kernel = jnp.stack(
            [
                lecun_normal(k, (hidden_size, n_features), n_features)
                for k in jax.random.split(k_in, 3)
            ]
        )
        self.input_bias = jnp.zeros((3, hidden_size), jnp.float32)
        self.recurrent_kernel = _recurrent_kernels(k_rec, 3, hidden_size)
        self.recurrent_bias = jnp.zeros((hidden_size,), jnp.float32)
        self.readout = Linear(hidden_size, n_out, key=k_out)

    def init_hidden(self) -> Float[Array, " hidden"]:
        return jnp.zeros((self.hidden_size,), jnp.float32)

    def __call__(
        self, features: CoordinateFeatures, hidden: Float[Array, " hidden"]
    ) -> tuple[CellOutput, Float[Array, " hidden"]]:
        out, hidden = gru_rows(self, features[:, None], hidden[:, None])
        return out[:, 0], hidden[:, 0]

    def rows(
        self, features: Float[Array, "n_features n"], hidden: Float[Array, "hidden n"]
    ) -> tuple[Float[Array, "n_out n"], Float[Array, "hidden n"]]:
        return gru_rows(self, features, hidden)

    def rows_vjp(self, features, hidden, d_out, d_hidden):
        d_cell, d_features, d_hidden = gru_rows_vjp(self, features, hidden, d_out, d_hidden)
        return eqx.filter(d_cell, eqx.is_inexact_array), d_features, d_hidden


class LSTMCell(AbstractCell):
    """A long short-term memory cell for one coordinate, then a linear readout of `h`.

    As flax's `LSTMCell`, with `a` the activation (default tanh):
    `i, f, o = σ(W_i· x + W_h· h + b·)`, `g = a(W_ig x + W_hg h + b_g)`, `c' = f ⊙ c + i ⊙ g`,
    `h' = o ⊙ a(c')`, `out = W_o h' + b_o`. Hidden state `(h, c)`, zeros at init.

    **Arguments:** `n_features`, `hidden_size` (default 8), `n_out` (default 1), `activation`
    (default `"tanh"`), `key`.
    """

    n_features: int = eqx.field(static=True)
    n_out: int = eqx.field(static=True)
    hidden_size: int = eqx.field(static=True)
    activation: str = eqx.field(static=True)
    input_kernel: Float[Array, "4 hidden n_features"]
    recurrent_kernel: Float[Array, "4 hidden hidden"]
    bias: Float[Array, "4 hidden"]
    readout: Linear

    def __init__(
        self,
        n_features: int,
        hidden_size: int = 8,
        n_out: int = 1,
        activation: str = "tanh",
        *,
        key: PRNGKey,
    ):
        _check_sizes(n_features=n_features, hidden_size=hidden_size, n_out=n_out)
        check_activation(activation)
        k_in, k_rec, k_out = jax.random.split(key, 3)
        self.n_features, self.hidden_size, self.n_out = n_features, hidden_size, n_out
        self.activation = activation
        self.input_kernel = jnp.stack(
            [
                lecun_normal(k, (hidden_size, n_features), n_features)
                for k in jax.random.split(k_in, 4)
            ]
        )
        self.recurrent_kernel = _recurrent_kernels(k_rec, 4, hidden_size)
        self.bias = jnp.zeros((4, hidden_size), jnp.float32)
        self.readout = Linear(hidden_size, n_out, key=k_out)

    def init_hidden(self) -> tuple[Float[Array, " hidden"], Float[Array, " hidden"]]:
        zeros = jnp.zeros((self.hidden_size,), jnp.float32)
        return zeros, zeros

    def __call__(
        self,
        features: CoordinateFeatures,
        hidden: tuple[Float[Array, " hidden"], Float[Array, " hidden"]],
    ) -> tuple[CellOutput, tuple[Float[Array, " hidden"], Float[Array, " hidden"]]]:
        h, c = hidden
        gates = self.input_kernel @ features + self.recurrent_kernel @ h + self.bias
        act = ACTIVATIONS[self.activation]
        i, f, o = jax.nn.sigmoid(gates[0]), jax.nn.sigmoid(gates[1]), jax.nn.sigmoid(gates[3])
        c = f * c + i * act(gates[2])
        h = o * act(c)
        return self.readout(h), (h, c)

    def rows(self, features, hidden):
        return vmapped_rows(self, features, hidden)

    def rows_vjp(self, features, hidden, d_out, d_hidden):
        return autodiff_rows_vjp(self, features, hidden, d_out, d_hidden)


def gru_rows(
    cell: GRUCell, features: Float[Array, "n_features n"], hidden: Float[Array, "hidden n"]
) -> tuple[Float[Array, "n_out n"], Float[Array, "hidden n"]]:
    """`cell` over `n` coordinates, coordinate axis last: `GRUCell`'s equations with every
    product unrolled into sums, which XLA fuses with the gates into one pass over memory.
    Fast to evaluate, slow to differentiate: its gradient is `gru_rows_vjp`."""
    if features.shape[0] != cell.n_features:
        raise ValueError(
            f"the GRUCell takes n_features={cell.n_features} features per coordinate, "
            f"got features of shape {features.shape}"
        )
    xi = _weighted_rows(cell.input_kernel, features) + cell.input_bias[..., None]
    hh = _weighted_rows(cell.recurrent_kernel, hidden)
    r = jax.nn.sigmoid(xi[0] + hh[0])
    z = jax.nn.sigmoid(xi[1] + hh[1])
    n = ACTIVATIONS[cell.activation](xi[2] + r * (hh[2] + cell.recurrent_bias[:, None]))
    hidden = n + z * (hidden - n)
    out = _weighted_rows(cell.readout.weight[None], hidden)[0]
    return out + cell.readout.bias[:, None], hidden


def _weighted_rows(
    kernel: Float[Array, "g o i"], rows: Float[Array, "i n"]
) -> Float[Array, "g o n"]:
    """`kernel @ rows` for a few rows, as a sum of broadcast products: elementwise work that
    XLA fuses with the gates into one pass over the coordinates (a matmul would be a separate
    pass, and several times slower at these sizes)."""
    g, o, i = kernel.shape
    flat = kernel.reshape(g * o, i)
    return sum(flat[:, j, None] * rows[j] for j in range(i)).reshape(g, o, -1)


def gru_rows_vjp(
    cell: GRUCell,
    features: Float[Array, "n_features n"],
    hidden: Float[Array, "hidden n"],
    d_out: Float[Array, "n_out n"],
    d_hidden: Float[Array, "hidden n"],
) -> tuple[GRUCell, Float[Array, "n_features n"], Float[Array, "hidden n"]]:
    """The vector-Jacobian product of `gru_rows` by hand: gradients for the cell's weights (as
    a `GRUCell`), the features and the hidden state, given those of `(out, hidden')`.

    Products are matmuls, and gates are kept apart, never stacked: stacked gate gradients,
    or products unrolled into sums, made XLA recompute the elementwise chain into each
    consumer and slowed the meta-step."""
    w_in, w_rec, w_out = cell.input_kernel, cell.recurrent_kernel, cell.readout.weight
    xi = [w_in[g] @ features + cell.input_bias[g][:, None] for g in range(3)]
    hh = [w_rec[g] @ hidden for g in range(3)]
    r = jax.nn.sigmoid(xi[0] + hh[0])
    z = jax.nn.sigmoid(xi[1] + hh[1])
    c = hh[2] + cell.recurrent_bias[:, None]
    n, activation_vjp = jax.vjp(ACTIVATIONS[cell.activation], xi[2] + r * c)
    new_hidden = n + z * (hidden - n)
    dh = d_hidden + w_out.T @ d_out
    (d_n,) = activation_vjp(dh * (1.0 - z))
    d_z = dh * (hidden - n) * z * (1.0 - z)
    d_r = d_n * c * r * (1.0 - r)
    d_c = d_n * r
    d_in, d_rec = (d_r, d_z, d_n), (d_r, d_z, d_c)
    grads = (
        jnp.stack([d @ features.T for d in d_in]),
        jnp.stack([jnp.sum(d, axis=-1) for d in d_in]),
        jnp.stack([d @ hidden.T for d in d_rec]),
        jnp.sum(d_c, axis=-1),
        d_out @ new_hidden.T,
        jnp.sum(d_out, axis=-1),
    )
    d_cell = eqx.tree_at(
        lambda c: (
            c.input_kernel,
            c.input_bias,
            c.recurrent_kernel,
            c.recurrent_bias,
            c.readout.weight,
            c.readout.bias,
        ),
        cell,
        grads,
    )
    d_features = sum(w_in[g].T @ d_in[g] for g in range(3))
    d_hidden = dh * z + sum(w_rec[g].T @ d_rec[g] for g in range(3))
    return d_cell, d_features, d_hidden
