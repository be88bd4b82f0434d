import re

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import PyTree

from .._context import TENSOR_ROLES, UpdateContext
from .._custom_types import Features, Params, Updates
from ._base import AbstractPreprocessor

ROLE_SOURCES = ("context", "paths")
_CRITIC = re.compile(r"value|critic", re.IGNORECASE)
_ACTOR = re.compile(r"policy|actor|pi\b", re.IGNORECASE)
_TORSO = re.compile(r"torso|trunk|encoder|body|shared", re.IGNORECASE)


def roles_from_paths(paths: list[str]) -> list[str]:
    """Each parameter path's role in an actor-critic, guessed from its name: `"critic"` if it
    names the value or a critic, `"actor"` if it names the policy or an actor, else
    `"shared"`. A policy torso is `"shared"` when no critic torso exists (the torso feeds both
    heads)."""
    separate_critic_torso = any(_CRITIC.search(p) and _TORSO.search(p) for p in paths)

    def role(path: str) -> str:
        if _CRITIC.search(path):
            return "critic"
        if _ACTOR.search(path) and (separate_critic_torso or not _TORSO.search(path)):
            return "actor"
        return "shared"

    return [role(p) for p in paths]


def check_role_source(owner: str, role_source: str) -> None:
    """A `ValueError` naming `owner` if `role_source` is not one of `ROLE_SOURCES`."""
    if role_source not in ROLE_SOURCES:
        raise ValueError(
            f"{owner} reads the tensor roles from one of {ROLE_SOURCES}, got "
            f"role_source={role_source!r}"
        )


def leaf_roles(
    tree: PyTree, context: UpdateContext | None, role_source: str = "context"
) -> list[str]:
    """The role of every leaf of `tree`, in leaf order: the context's `roles` (every leaf
    `"shared"` when it has none), or with `role_source="paths"` the guess of
    `roles_from_paths` from the leaves' paths."""
    if role_source == "paths":
        flat = jax.tree_util.tree_flatten_with_path(tree)[0]
        return roles_from_paths([jax.tree_util.keystr(path) for path, _ in flat])
    if context is None or context.roles is None:
        return ["shared"] * len(jax.tree.leaves(tree))
    return context.roles.of(tree)


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
    """What each parameter tensor is (OPEN's layer proportion and tensor role):
    `(layer proportion, actor, critic, shared, bias)` per coordinate, the same for every
    coordinate of a leaf.

    The role is one-hot, as the network labels its tensors: the update context's `roles`
    (see [`l2orl.UpdateContext`][]; the library's learners give their network's
    [`l2orl.rl.ActorCritic.tensor_roles`][]). Without them every tensor is `"shared"`; with
    `role_source="paths"` the roles are instead guessed from the parameter paths (a path that
    names the value or a critic is the critic's, one that names the policy or an actor is the
    actor's, else the tensor is shared). The layer proportion is the depth of the leaf's layer
    (its parent path) along its role's chain from input (0) to output (1); `bias` is 1 for
    leaves of fewer than two dimensions. Computed at trace time: no state, no cost per update.

    **Arguments:** `role_source`, `"context"` (default) or `"paths"`.
    """

    role_source: str = eqx.field(static=True, default="context")

    def __check_init__(self):
        check_role_source("TensorFeatures", self.role_source)

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
        roles = leaf_roles(grads, context, self.role_source)
        depths = layer_proportions(paths, roles)
        features = []
        for (_, g), role, depth in zip(flat, roles, depths, strict=True):
            onehot = [float(role == r) for r in TENSOR_ROLES]
            row = np.asarray([depth, *onehot, float(jnp.ndim(g) < 2)], np.float32)
            features.append(jnp.broadcast_to(jnp.asarray(row), (*jnp.shape(g), 5)))
        return treedef.unflatten(features), None
