"""What an update's caller knows that the gradients do not say: the RL loop's context."""

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float, PyTree

from ._custom_types import PRNGKey

CONTEXT_FIELDS = ("training_proportion", "batch_proportion", "dormancy", "key", "roles")
TENSOR_ROLES = ("actor", "critic", "shared")


class TensorRoles(eqx.Module):
    """Each parameter tensor's role in an actor-critic: `"actor"` (the policy's own layers),
    `"critic"` (the value's) or `"shared"` (a torso feeding both), as the network labels them
    (e.g. [`l2orl.rl.ActorCritic.tensor_roles`][]).

    The labels are static: a `TensorRoles` holds no arrays, so it passes through `jit`,
    `vmap` and `grad` as part of the tree's structure, and reading it costs nothing per
    update.

    **Arguments:** `roles`, a pytree of role strings shaped like the parameters, one per leaf,
    or a prefix of them (one string labels a whole subtree; a single string, every tensor).
    """

    leaves: tuple[str, ...] = eqx.field(static=True)
    structure: jax.tree_util.PyTreeDef = eqx.field(static=True)

    def __init__(self, roles: PyTree[str]):
        leaves, self.structure = jax.tree.flatten(roles)
        self.leaves = tuple(leaves)

    def __check_init__(self):
        unknown = sorted({repr(r) for r in self.leaves if r not in TENSOR_ROLES})
        if unknown:
            raise ValueError(f"tensor roles are among {TENSOR_ROLES}, got {', '.join(unknown)}")

    def of(self, tree: PyTree) -> list[str]:
        """The role of every leaf of `tree` (the parameters or their gradients), in leaf
        order. Raises `ValueError` if the labels are not shaped like `tree` (or a prefix of
        it)."""
        labels = jax.tree.unflatten(self.structure, self.leaves)
        try:
            roles = jax.tree.map(lambda role, sub: jax.tree.map(lambda _: role, sub), labels, tree)
        except (ValueError, TypeError) as error:
            raise ValueError(
                f"the tensor roles are labelled for a tree of structure {self.structure}, "
                f"not for the update's {jax.tree.structure(tree)}"
            ) from error
        return jax.tree.leaves(roles)


def _as_roles(roles: PyTree[str] | None) -> TensorRoles | None:
    return roles if roles is None or isinstance(roles, TensorRoles) else TensorRoles(roles)


class UpdateContext(eqx.Module):
    """The RL loop's facts about one update, passed to a transform as optax's extra argument
    `context` (`tx.update(grads, state, params, context=UpdateContext(...))`).

    Every field is optional: a learned optimizer used in plain optax code gets no context and
    reads each missing number as 0 (and draws no noise without a `key`); transforms that do
    not know the argument ignore it (`optax.with_extra_args_support`).

    **Attributes:**

    - `training_proportion`: how far the agent is through its training, in `[0, 1]`: its
      updates so far over its lifetime's (exact per slot under a pipeline).
    - `batch_proportion`: where the update sits in the learner's passes over one batch, in
      `[0, 1)`: PPO's `(epoch·n_minibatches + minibatch) / (n_epochs·n_minibatches)`, 0 for
      a learner that updates once per rollout.
    - `dormancy`: a pytree shaped like the parameters with one scalar per leaf: the fraction
      of the leaf's layer's units that are dormant on the update's batch (0 for output
      layers).
    - `key`: a PRNG key for stochastic updates.
    - `roles`: each parameter tensor's role, a [`l2orl.TensorRoles`][] (given as one, or as
      the pytree of role strings it is built from). Static: it is part of the context's
      structure, not an array. Without it, every tensor reads as `"shared"`.
    """

    training_proportion: Float[Array, ""] | None = None
    batch_proportion: Float[Array, ""] | None = None
    dormancy: PyTree[Float[Array, ""]] | None = None
    key: PRNGKey | None = None
    roles: TensorRoles | None = eqx.field(default=None, converter=_as_roles)

    def merge(self, **fields) -> "UpdateContext":
        """This context with `fields` set (names from `CONTEXT_FIELDS`; `None` values skip)."""
        unknown = sorted(set(fields) - set(CONTEXT_FIELDS))
        if unknown:
            raise ValueError(f"unknown context field(s) {unknown}; expected {CONTEXT_FIELDS}")
        return dataclasses.replace(self, **{k: v for k, v in fields.items() if v is not None})

    def scalar(self, name: str) -> Float[Array, ""]:
        """The field `name` as a float32 scalar: 0 when it is missing."""
        value = getattr(self, name)
        return jnp.zeros((), jnp.float32) if value is None else jnp.asarray(value, jnp.float32)


def context_of(extra_args: dict) -> UpdateContext:
    """The `context` among an update's extra arguments (an empty one if none was given)."""
    context = extra_args.get("context")
    if context is None:
        return UpdateContext()
    if not isinstance(context, UpdateContext):
        raise TypeError(f"context must be an l2orl.UpdateContext, got {type(context).__name__}")
    return context


def with_context(
    tx: optax.GradientTransformation, **fields
) -> optax.GradientTransformationExtraArgs:
    """`tx` with `fields` of the context set on every update (added to the context the caller
    passes, or to an empty one): how a training loop tells the optimizer what only it knows,
    e.g. `with_context(tx, training_proportion=step / n_updates)`."""
    inner = optax.with_extra_args_support(tx)
    UpdateContext().merge(**{k: None for k in fields})  # names checked now, not per update

    def update(updates, state, params=None, **extra_args):
        context = context_of(extra_args).merge(**fields)
        return inner.update(updates, state, params, **{**extra_args, "context": context})

    return optax.GradientTransformationExtraArgs(inner.init, update)


def update_with_context(
    tx: optax.GradientTransformation,
    grads: PyTree,
    opt_state: PyTree,
    params: PyTree,
    context: UpdateContext,
) -> tuple[PyTree, PyTree]:
    """`tx.update(grads, opt_state, params, context=context)` for any optax transform: one
    that takes no extra arguments gets none."""
    return optax.with_extra_args_support(tx).update(grads, opt_state, params, context=context)
