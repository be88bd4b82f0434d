"""Actor-critic networks (Equinox), for ONE observation; learners vmap them."""

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PyTree

from .._activations import ACTIVATIONS, check_activation
from .._custom_types import PRNGKey
from .._nn import Linear, lecun_normal
from .._utils import check_positive_int
from ._policies import AbstractPolicyHead

DORMANCY_THRESHOLD = 0.1


def dormant_fraction(
    activations: Float[Array, "batch *units"], threshold: float = DORMANCY_THRESHOLD
) -> Float[Array, ""]:
    """The fraction of a layer's units that are τ-dormant on a batch (Sokar et al., 2023): a
    unit's score is its mean |activation| over the batch (and any spatial axes before the
    last) over the layer's mean score, and it is dormant when the score is ≤ `threshold`."""
    magnitude = jnp.abs(activations.reshape(-1, activations.shape[-1]))
    score = jnp.mean(magnitude, axis=0)
    score = score / jnp.maximum(jnp.mean(score), 1e-12)
    return jnp.mean((score <= threshold).astype(jnp.float32))


class AbstractTorso(eqx.Module):
    """Maps one observation to a feature vector of size `out_size`."""

    out_size: eqx.AbstractVar[int]

    @abc.abstractmethod
    def __call__(self, obs: Float[Array, "..."]) -> Float[Array, " out_size"]:
        """Features of one observation."""

    @abc.abstractmethod
    def dormancy(self, obs: Float[Array, "batch ..."], threshold: float) -> PyTree:
        """Each parameter leaf's layer's `dormant_fraction` on a batch of observations: a
        pytree like `eqx.filter(self, eqx.is_inexact_array)` with float32 scalar leaves."""


class MLPTorso(AbstractTorso):
    """Flatten, then `Linear → activation` for each of `hidden_sizes` (lecun-normal, zero bias).

    **Arguments:** `in_size` (the flattened observation size), `hidden_sizes`, `activation`
    (a name), `key`.
    """

    layers: tuple[Linear, ...]
    activation: str = eqx.field(static=True)
    out_size: int = eqx.field(static=True)

    def __init__(
        self, in_size: int, hidden_sizes: tuple[int, ...], activation: str, *, key: PRNGKey
    ):
        check_activation(activation)
        if not hidden_sizes:
            raise ValueError("hidden_sizes must name at least one layer")
        for size in hidden_sizes:
            check_positive_int("hidden_sizes", size)
        sizes = (in_size, *hidden_sizes)
        keys = jax.random.split(key, len(hidden_sizes))
        self.layers = tuple(
            Linear(i, o, key=k) for i, o, k in zip(sizes[:-1], sizes[1:], keys, strict=True)
        )
        self.activation, self.out_size = activation, hidden_sizes[-1]

    def activations(self, obs: Float[Array, "..."]) -> tuple[Float[Array, " width"], ...]:
        """Every hidden layer's output, input to output."""
        x, outs = obs.reshape(-1).astype(jnp.float32), []
        for layer in self.layers:
            x = ACTIVATIONS[self.activation](layer(x))
            outs.append(x)
        return tuple(outs)

    def __call__(self, obs: Float[Array, "..."]) -> Float[Array, " out_size"]:
        return self.activations(obs)[-1]

    def dormancy(self, obs: Float[Array, "batch ..."], threshold: float) -> PyTree:
        fractions = [dormant_fraction(a, threshold) for a in jax.vmap(self.activations)(obs)]
        tree = eqx.filter(self, eqx.is_inexact_array)
        return eqx.tree_at(
            lambda t: t.layers,
            tree,
            tuple(
                jax.tree.map(lambda _, f=f: f, layer)
                for layer, f in zip(tree.layers, fractions, strict=True)
            ),
        )


class ConvTorso(AbstractTorso):
    """The gridworld net `C16_D32`: a 2×2 SAME conv with 16 channels, then one dense layer.

    Takes channels-first observations `(C, H, W)` and convolves over `(H, W)` (the reference
    fed channels-first maps to a channels-last conv, convolving over `(C, H)` instead; we do not
    reproduce that quirk). `Conv(16, 2×2) → act → flatten → Linear(hidden) → act`.

    **Arguments:** `obs_shape` `(C, H, W)`, `hidden_size` (default 32), `channels` (16),
    `activation` (default `"relu"`), `key`.
    """

    kernel: Float[Array, "out_c in_c 2 2"]
    bias: Float[Array, " out_c"]
    dense: Linear
    activation: str = eqx.field(static=True)
    out_size: int = eqx.field(static=True)

    def __init__(
        self,
        obs_shape: tuple[int, int, int],
        hidden_size: int = 32,
        channels: int = 16,
        activation: str = "relu",
        *,
        key: PRNGKey,
    ):
        check_activation(activation)
        if len(obs_shape) != 3:
            raise ValueError(f"ConvTorso needs (C, H, W) observations, got shape {obs_shape}")
        c, h, w = obs_shape
        k1, k2 = jax.random.split(key)
        self.kernel = lecun_normal(k1, (channels, c, 2, 2), c * 4)
        self.bias = jnp.zeros((channels,), jnp.float32)
        self.dense = Linear(channels * h * w, hidden_size, key=k2)
        self.activation, self.out_size = activation, hidden_size

    def __call__(self, obs: Float[Array, "c h w"]) -> Float[Array, " out_size"]:
        return self.activations(obs)[1]

    def activations(
        self, obs: Float[Array, "c h w"]
    ) -> tuple[Float[Array, "h w channels"], Float[Array, " out_size"]]:
        """The conv layer's output maps (channels last) and the dense layer's output."""
        act = ACTIVATIONS[self.activation]
        # The 2×2 SAME conv as one matmul over patches (im2col, channels last): on CPU this is
        # ~2.4× faster forward+backward than XLA's convolution for these tiny maps.
        _, h, w = obs.shape
        x = jnp.pad(jnp.transpose(obs, (1, 2, 0)).astype(jnp.float32), ((0, 1), (0, 1), (0, 0)))
        patches = jnp.concatenate(
            [x[dy : dy + h, dx : dx + w] for dy in (0, 1) for dx in (0, 1)], axis=-1
        )
        kernel = jnp.concatenate(
            [self.kernel[:, :, dy, dx].T for dy in (0, 1) for dx in (0, 1)], axis=0
        )
        x = act(patches @ kernel + self.bias)
        return x, act(self.dense(x.reshape(-1)))

    def dormancy(self, obs: Float[Array, "batch c h w"], threshold: float) -> PyTree:
        maps, dense = jax.vmap(self.activations)(obs)
        conv, hidden = dormant_fraction(maps, threshold), dormant_fraction(dense, threshold)
        tree = eqx.filter(self, eqx.is_inexact_array)
        return eqx.tree_at(
            lambda t: (t.kernel, t.bias, t.dense),
            tree,
            (conv, conv, jax.tree.map(lambda _: hidden, tree.dense)),
        )


class ActorCritic(eqx.Module):
    """Policy and value from one observation: `(policy parameters, value)`.

    With `value_torso=None` the torso is shared (the reference's A2C nets); otherwise the value
    has its own torso (brax's PPO nets).

    **Arguments:** `policy` (the action distribution), `policy_torso`, `value_torso` or None,
    `key` (for the two output layers).
    """

    policy: AbstractPolicyHead
    policy_torso: AbstractTorso
    value_torso: AbstractTorso | None
    policy_out: Linear
    value_out: Linear

    def __init__(
        self,
        policy: AbstractPolicyHead,
        policy_torso: AbstractTorso,
        value_torso: AbstractTorso | None = None,
        *,
        key: PRNGKey,
    ):
        k1, k2 = jax.random.split(key)
        self.policy, self.policy_torso, self.value_torso = policy, policy_torso, value_torso
        self.policy_out = Linear(policy_torso.out_size, policy.n_params, key=k1)
        value_in = policy_torso.out_size if value_torso is None else value_torso.out_size
        self.value_out = Linear(value_in, 1, key=k2)

    def __call__(
        self, obs: Float[Array, "..."]
    ) -> tuple[Float[Array, " n_params"], Float[Array, ""]]:
        features = self.policy_torso(obs)
        value_features = features if self.value_torso is None else self.value_torso(obs)
        return self.policy_out(features), self.value_out(value_features)[0]

    def dormancy(
        self, obs: Float[Array, "batch ..."], threshold: float = DORMANCY_THRESHOLD
    ) -> PyTree:
        """Each parameter leaf's layer's dormant fraction on a batch of (network-input)
        observations, a pytree like `eqx.filter(self, eqx.is_inexact_array)` with float32
        scalar leaves: the torsos' hidden layers' `dormant_fraction`, 0 for the output layers
        and the policy's own parameters."""
        tree = jax.tree.map(
            lambda _: jnp.zeros((), jnp.float32), eqx.filter(self, eqx.is_inexact_array)
        )
        tree = eqx.tree_at(
            lambda t: t.policy_torso, tree, self.policy_torso.dormancy(obs, threshold)
        )
        if self.value_torso is not None:
            tree = eqx.tree_at(
                lambda t: t.value_torso, tree, self.value_torso.dormancy(obs, threshold)
            )
        return tree

    def tensor_roles(self) -> PyTree[str]:
        """Each parameter leaf's role, a pytree like `eqx.filter(self, eqx.is_inexact_array)`
        with string leaves: `"critic"` for the value's layers (its output and its own torso),
        `"actor"` for the policy's output and parameters, and for the policy torso when the
        value has its own; a torso shared by both is `"shared"`. The learners pass it to the
        optimizer as the update context's `roles` (see [`l2orl.UpdateContext`][])."""

        def label(part, role: str) -> PyTree[str]:
            return jax.tree.map(lambda _: role, eqx.filter(part, eqx.is_inexact_array))

        torso = "shared" if self.value_torso is None else "actor"
        tree = eqx.tree_at(
            lambda t: (t.policy_torso, t.value_out),
            label(self, "actor"),
            (label(self.policy_torso, torso), label(self.value_out, "critic")),
        )
        if self.value_torso is not None:
            tree = eqx.tree_at(lambda t: t.value_torso, tree, label(self.value_torso, "critic"))
        return tree

    def value(self, obs: Float[Array, "..."]) -> Float[Array, ""]:
        """The value alone (skips the policy output; the whole torso if it is not shared)."""
        if self.value_torso is None:
            return self.value_out(self.policy_torso(obs))[0]
        return self.value_out(self.value_torso(obs))[0]
