import equinox as eqx
import jax

from .._activations import ACTIVATIONS, check_activation
from .._custom_types import CellOutput, CoordinateFeatures, PRNGKey
from .._nn import Linear
from .._utils import check_positive_int
from ._base import AbstractStatelessCell


def _check_sizes(**sizes: int) -> None:
    for name, value in sizes.items():
        check_positive_int(name, value)


class LinearCell(AbstractStatelessCell):
    """A stateless affine map `out = W x + b` (lecun-normal `W`, zero `b`).

    **Arguments:** `n_features`, `n_out` (default 1), `key`.
    """

    n_features: int = eqx.field(static=True)
    n_out: int = eqx.field(static=True)
    linear: Linear

    def __init__(self, n_features: int, n_out: int = 1, *, key: PRNGKey):
        _check_sizes(n_features=n_features, n_out=n_out)
        self.n_features, self.n_out = n_features, n_out
        self.linear = Linear(n_features, n_out, key=key)

    def forward(self, features: CoordinateFeatures) -> CellOutput:
        return self.linear(features)


class MLPCell(AbstractStatelessCell):
    """A stateless MLP: `Linear → act → … → Linear` with hidden `widths`.

    **Arguments:** `n_features`, `widths` (default `(32,)`), `n_out` (default 1),
    `activation` (a name, default `"relu"`), `key`.
    """

    n_features: int = eqx.field(static=True)
    n_out: int = eqx.field(static=True)
    widths: tuple[int, ...] = eqx.field(static=True)
    activation: str = eqx.field(static=True)
    layers: tuple[Linear, ...]

    def __init__(
        self,
        n_features: int,
        widths: tuple[int, ...] = (32,),
        n_out: int = 1,
        activation: str = "relu",
        *,
        key: PRNGKey,
    ):
        _check_sizes(
            n_features=n_features, n_out=n_out, **{f"widths[{i}]": w for i, w in enumerate(widths)}
        )
        check_activation(activation)
        self.n_features, self.n_out = n_features, n_out
        self.widths, self.activation = tuple(widths), activation
        sizes = (n_features, *widths, n_out)
        keys = jax.random.split(key, len(sizes) - 1)
        self.layers = tuple(
            Linear(i, o, key=k) for i, o, k in zip(sizes[:-1], sizes[1:], keys, strict=True)
        )

    def forward(self, features: CoordinateFeatures) -> CellOutput:
        act = ACTIVATIONS[self.activation]
        x = features
        for layer in self.layers[:-1]:
            x = act(layer(x))
        return self.layers[-1](x)
