import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._activations import ACTIVATIONS, check_activation
from .._custom_types import CellOutput, CoordinateFeatures, PRNGKey
from .._nn import Linear
from ._base import AbstractCell, autodiff_rows_vjp, vmapped_rows
from ._feedforward import _check_sizes

SOLVERS = {
    "euler": diffrax.Euler,
    "heun": diffrax.Heun,
    "midpoint": diffrax.Midpoint,
    "ralston": diffrax.Ralston,
    "tsit5": diffrax.Tsit5,
}


class ODECell(AbstractCell):
    """A continuous-time recurrent cell: the hidden state follows a learned vector field.

    Over one optimizer step the hidden state solves, for `s ∈ [0, 1]` with the features `x`
    held fixed,

    `dh/ds = f(h, x) = tanh(W_2 a(W_1 [h; x] + b_1) + b_2) - h`,

    a leaky continuous-time RNN whose fixed point moves with `x`; `out = W_o h(1) + b_o`. The
    solve is a diffrax fixed-step solve of `n_steps` steps (default Heun), differentiable by
    diffrax's checkpointed backpropagation.

    **Arguments:** `n_features`, `hidden_size` (default 8), `n_out` (default 1), `width` of the
    vector field's hidden layer (default 16), `n_steps` (default 4), `solver` (one of
    `"euler"`, `"heun"`, `"midpoint"`, `"ralston"`, `"tsit5"`), `activation` (default
    `"tanh"`), `key`.
    """

    n_features: int = eqx.field(static=True)
    n_out: int = eqx.field(static=True)
    hidden_size: int = eqx.field(static=True)
    width: int = eqx.field(static=True)
    n_steps: int = eqx.field(static=True)
    solver: str = eqx.field(static=True)
    activation: str = eqx.field(static=True)
    field_in: Linear
    field_out: Linear
    readout: Linear

    def __init__(
        self,
        n_features: int,
        hidden_size: int = 8,
        n_out: int = 1,
        width: int = 16,
        n_steps: int = 4,
        solver: str = "heun",
        activation: str = "tanh",
        *,
        key: PRNGKey,
    ):
        _check_sizes(
            n_features=n_features,
            hidden_size=hidden_size,
            n_out=n_out,
            width=width,
            n_steps=n_steps,
        )
        check_activation(activation)
        if solver not in SOLVERS:
            raise ValueError(f"unknown ODE solver {solver!r}; expected one of {sorted(SOLVERS)}")
        k1, k2, k3 = jax.random.split(key, 3)
        self.n_features, self.hidden_size, self.n_out = n_features, hidden_size, n_out
        self.width, self.n_steps, self.solver, self.activation = width, n_steps, solver, activation
        self.field_in = Linear(hidden_size + n_features, width, key=k1)
        self.field_out = Linear(width, hidden_size, key=k2)
        self.readout = Linear(hidden_size, n_out, key=k3)

    def init_hidden(self) -> Float[Array, " hidden"]:
        return jnp.zeros((self.hidden_size,), jnp.float32)

    def vector_field(
        self, s: Float[Array, ""], h: Float[Array, " hidden"], x: CoordinateFeatures
    ) -> Float[Array, " hidden"]:
        """`f(h, x)`, the hidden state's time derivative (independent of `s`)."""
        act = ACTIVATIONS[self.activation]
        return jnp.tanh(self.field_out(act(self.field_in(jnp.concatenate([h, x]))))) - h

    def __call__(
        self, features: CoordinateFeatures, hidden: Float[Array, " hidden"]
    ) -> tuple[CellOutput, Float[Array, " hidden"]]:
        solution = diffrax.diffeqsolve(
            diffrax.ODETerm(self.vector_field),
            SOLVERS[self.solver](),
            t0=0.0,
            t1=1.0,
            dt0=1.0 / self.n_steps,
            y0=hidden,
            args=features,
            saveat=diffrax.SaveAt(t1=True),
            stepsize_controller=diffrax.ConstantStepSize(),
            max_steps=self.n_steps,
        )
        hidden = solution.ys[-1]
        return self.readout(hidden), hidden

    def rows(self, features, hidden):
        return vmapped_rows(self, features, hidden)

    def rows_vjp(self, features, hidden, d_out, d_hidden):
        return autodiff_rows_vjp(self, features, hidden, d_out, d_hidden)
