import equinox as eqx
import jax
import jax.numpy as jnp

from .._context import UpdateContext
from .._custom_types import Features, Params, Updates
from ._base import AbstractPreprocessor

LOOP_FACTS = ("training_proportion", "batch_proportion", "dormancy")


class ContextFeatures(AbstractPreprocessor):
    """The RL loop's facts about the update, read from its [`l2orl.UpdateContext`][]:
    OPEN's training proportion, batch proportion and dormancy.

    The two proportions are broadcast to every coordinate; dormancy is per parameter leaf (its
    layer's dormant fraction). A fact the context lacks (or no context at all, as in plain
    optax code) reads as 0. Stateless.

    **Arguments:** `names`, the facts to read, in feature order (default all three of
    `"training_proportion"`, `"batch_proportion"`, `"dormancy"`).
    """

    names: tuple[str, ...] = eqx.field(static=True, default=LOOP_FACTS)

    def __check_init__(self):
        unknown = [name for name in self.names if name not in LOOP_FACTS]
        if unknown or not self.names:
            raise ValueError(
                f"ContextFeatures reads one or more of {LOOP_FACTS}, got names={self.names!r}"
            )

    @property
    def n_features(self) -> int:
        return len(self.names)

    def init(self, params: Params) -> None:
        return None

    def __call__(
        self,
        grads: Updates,
        state: None,
        params: Params | None,
        context: UpdateContext | None = None,
    ) -> tuple[Features, None]:
        context = UpdateContext() if context is None else context
        leaves, treedef = jax.tree.flatten(grads)
        if context.dormancy is None:
            dormancy = [jnp.zeros((), jnp.float32)] * len(leaves)
        else:
            dormancy = treedef.flatten_up_to(context.dormancy)

        shared = {
            name: context.scalar(name) for name in ("training_proportion", "batch_proportion")
        }

        def leaf_features(g, dormant):
            values = {**shared, "dormancy": jnp.asarray(dormant, jnp.float32)}
            row = jnp.stack([values[name] for name in self.names])
            return jnp.broadcast_to(row, (*jnp.shape(g), len(self.names)))

        features = [leaf_features(g, d) for g, d in zip(leaves, dormancy, strict=True)]
        return treedef.unflatten(features), None
