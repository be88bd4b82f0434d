import re

import jax
import jax.numpy as jnp
import numpy as np

from .._context import UpdateContext
from .._custom_types import Features, Params, Updates
from ._base import AbstractPreprocessor

TENSOR_ROLES = ("actor", "critic", "shared")
_CRITIC = re.compile(r"value|critic", re.IGNORECASE)
_ACTOR = re.compile(r"policy|actor|pi\b", re.IGNORECASE)
_TORSO = re.compile(r"torso|trunk|encoder|body|shared", re.IGNORECASE)


def tensor_roles(paths: list[str]) -> list[str]:
    """Each parameter path's role in an actor-critic: `"critic"` if it names the value or a
    critic, `"actor"` if it names the policy or an actor, else `"shared"`. A policy torso is
    `"shared"` when no critic torso exists (the torso feeds both heads)."""
    separate_critic_torso = any(_CRITIC.search(p) and _TORSO.search(p) for p in paths)

    def role(path: str) -> str:
        if _CRITIC.search(path):
            return "critic"
        if _ACTOR.search(path) and (separate_critic_torso or not _TORSO.search(path)):
            return "actor"
        return "shared"

    return [role(p) for p in paths]


def layer_proportions(paths: list[str], roles: list[str]) -> list[float]:
    """Each leaf's depth in its network, in `[0, 1]`: a layer is a leaf's parent path, and the
    layers on the path from the input to an output are the shared ones, then the role's own,
    in the order the parameter tree lists them (the actor's chain for shared layers)."""
    layers = [p.rsplit(".", 1)[0] if "." in p else p for p in paths]
    chains = {}
    for role in ("actor", "critic"):
        chain = [layer for layer, r in zip(layers, roles, strict=True) if r in ("shared", role)]
        chains[role] = list(dict.fromkeys(chain))
    chains["shared"] = chains["actor"] if len(chains["actor"]) > 1 else chains["critic"]
    out = []
    for layer, role in zip(layers, roles, strict=True):
        chain = chains[role] or [layer]
        out.append(chain.index(layer) / max(len(chain) - 1, 1) if layer in chain else 0.0)
    return out


class TensorFeatures(AbstractPreprocessor):
    """What each parameter tensor is, from its path in the parameter tree (OPEN's layer
    proportion and tensor role): `(layer proportion, actor, critic, shared, bias)` per
    coordinate, the same for every coordinate of a leaf.

    The role is one-hot (see `tensor_roles`: the path names the value/critic or the
    policy/actor, else the tensor is shared); the layer proportion is the leaf's layer's depth
    along its role's chain from input (0) to output (1) (`layer_proportions`); `bias` is 1 for
    leaves of fewer than two dimensions. Computed at trace time from the tree's paths: no
    state, no cost per update.
    """

    @property
    def n_features(self) -> int:
        return 5

    def init(self, params: Params) -> None:
        return None

    def __call__(
        self,
        grads: Updates,
        state: None,
        params: Params | None,
        context: UpdateContext | None = None,
    ) -> tuple[Features, None]:
        flat, treedef = jax.tree_util.tree_flatten_with_path(grads)
        paths = [jax.tree_util.keystr(path) for path, _ in flat]
        roles = tensor_roles(paths)
        depths = layer_proportions(paths, roles)
        features = []
        for (_, g), role, depth in zip(flat, roles, depths, strict=True):
            onehot = [float(role == r) for r in TENSOR_ROLES]
            row = np.asarray([depth, *onehot, float(jnp.ndim(g) < 2)], np.float32)
            features.append(jnp.broadcast_to(jnp.asarray(row), (*jnp.shape(g), 5)))
        return treedef.unflatten(features), None
