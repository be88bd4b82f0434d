import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Int

from .._custom_types import PRNGKey
from .._utils import check_positive_int

PIPELINE_KINDS = ("staggered", "random", "none")
"""The reset rules a `Pipeline` knows (its `kind`)."""


class Pipeline(eqx.Module):
    """When each of a task's `n_agents` agents is reset (fresh network, optimizer state, envs).

    - `"staggered"` (Optim4RL's pipeline training): agent `j` resets at meta-step `t` when
      `t mod M == floor(linspace(0, M-1, N))[j]`, so every meta-gradient mixes agents of all
      ages once the first `M` meta-steps have passed;
    - `"random"`: the same rule with offsets drawn uniformly from `[0, M)` (learned_optimization's
      random initial offsets);
    - `"none"`: agents start together and are never reset (the no-pipeline ablation).

    **Arguments:** `n_agents` `N`, `reset_interval` `M` (the agent lifetime in meta-steps),
    `kind`.
    """

    n_agents: int = eqx.field(static=True)
    reset_interval: int = eqx.field(static=True)
    kind: str = eqx.field(static=True, default="staggered")

    def __check_init__(self):
        check_positive_int("n_agents", self.n_agents)
        check_positive_int("reset_interval", self.reset_interval)
        if self.kind not in PIPELINE_KINDS:
            raise ValueError(
                f"unknown pipeline kind {self.kind!r}; expected one of {PIPELINE_KINDS}"
            )

    def offsets(self, key: PRNGKey) -> Int[Array, " n_agents"]:
        """Each agent's reset offset in `[0, M)` (−1 for `"none"`: never)."""
        if self.kind == "staggered":
            offsets = np.linspace(0, self.reset_interval - 1, self.n_agents).astype(np.int32)
            return jnp.asarray(offsets)
        if self.kind == "random":
            return jax.random.randint(key, (self.n_agents,), 0, self.reset_interval, jnp.int32)
        return jnp.full((self.n_agents,), -1, jnp.int32)

    def reset_mask(
        self, offsets: Int[Array, " n_agents"], meta_step: Int[Array, ""]
    ) -> Bool[Array, " n_agents"]:
        """Which agents reset at the start of `meta_step`."""
        return (meta_step % self.reset_interval) == offsets

    def lifetime(self, updates_per_meta_step: int) -> int:
        """An agent's lifetime in inner updates when every meta-step runs
        `updates_per_meta_step` of them (a schedule's longest `K`)."""
        return self.reset_interval * updates_per_meta_step
