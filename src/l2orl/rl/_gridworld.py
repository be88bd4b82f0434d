"""The LPG gridworlds (Oh et al., 2020) as gymnax environments, after Optim4RL's JAX port.

An agent walks a walled rectangle collecting objects; each object has a reward, a probability of
ending the episode when collected and a per-step probability of respawning while absent.
"""

import dataclasses
import typing
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import environment, spaces
from jaxtyping import Array, ArrayLike, Bool, Float, Int

from .._custom_types import PRNGKey
from .._utils import check_positive


@dataclasses.dataclass(frozen=True)
class GridworldLayout:
    """One gridworld: map size, objects and episode length.

    **Arguments:**

    - `rows`, `cols`: the size of the full map, walls included (the border is wall, the
      interior empty).
    - `objects`: one `(reward, terminate_prob, respawn_prob)` triple per object.
    - `max_steps`: the episode's time limit.
    """

    rows: int
    cols: int
    objects: tuple[tuple[float, float, float], ...]
    max_steps: int

    def walls(self) -> Bool[np.ndarray, "h w"]:
        """The wall mask: `True` on the border, `False` inside."""
        mask = np.ones((self.rows, self.cols), dtype=bool)
        mask[1:-1, 1:-1] = False
        return mask


def _objects(n_pairs: int, respawn_prob: float) -> tuple[tuple[float, float, float], ...]:
    """`n_pairs` rewarding objects `(+1, never terminates)`, then `n_pairs` `(-1, ends half)`."""
    good = ((1.0, 0.0, respawn_prob),) * n_pairs
    bad = ((-1.0, 0.5, respawn_prob),) * n_pairs
    return good + bad


_SPARSE, _DENSE = 0.05, 0.5
_SHORT, _LONG = 50, 500

LAYOUTS: dict[str, GridworldLayout] = {
    "small_sparse_short": GridworldLayout(5, 10, _objects(1, _SPARSE), _SHORT),
    "small_sparse_long": GridworldLayout(10, 5, _objects(1, _SPARSE), _LONG),
    "small_dense_short": GridworldLayout(6, 8, _objects(1, _DENSE), _SHORT),
    "small_dense_long": GridworldLayout(8, 6, _objects(1, _DENSE), _LONG),
    "big_sparse_short": GridworldLayout(12, 14, _objects(2, _SPARSE), _SHORT),
    "big_sparse_long": GridworldLayout(14, 12, _objects(2, _SPARSE), _LONG),
    "big_dense_short": GridworldLayout(11, 15, _objects(2, _DENSE), _SHORT),
    "big_dense_long": GridworldLayout(15, 11, _objects(2, _DENSE), _LONG),
}
"""The eight LPG gridworlds by name: `{small,big}_{sparse,dense}_{short,long}`."""

MOVES: Int[np.ndarray, "9 2"] = np.array(
    [[0, 0], [-1, 0], [0, 1], [1, 0], [0, -1], [1, -1], [1, 1], [-1, 1], [-1, -1]],
    dtype=np.int32,
)
"""`(row, col)` displacement of each action: stay, up, right, down, left, down-left, down-right,
up-right, up-left."""


# The state and params are pytrees that JAX rebuilds with arbitrary leaves (tracers, batched
# arrays, `ShapeDtypeStruct`s, vmap axis specs), so their constructors are not type-checked.
@typing.no_type_check
@struct.dataclass
class EnvState(environment.EnvState):
    """A gridworld's state.

    **Fields:**

    - `agent_pos`: int32 `(2,)`, the agent's `(row, col)`.
    - `object_pos`: int32 `(num_objects, 2)`, each object's `(row, col)`; `(-1, -1)` while
      absent.
    - `terminated`: bool `()`, whether the step that produced this state ended the episode
      (`False` after a reset).
    - `time`: int32 `()`, steps taken in the episode.
    """

    agent_pos: Int[Array, "2"]
    object_pos: Int[Array, "n 2"]
    terminated: Bool[Array, ""]
    time: Int[Array, ""]


@typing.no_type_check
@struct.dataclass
class EnvParams(environment.EnvParams):
    """A gridworld's parameters: `max_steps_in_episode`, the time limit for truncation.

    Use `Gridworld.default_params`, which sets it to the layout's `max_steps`.
    """

    max_steps_in_episode: int = 500


class Gridworld(environment.Environment[EnvState, EnvParams]):
    """An LPG gridworld (Oh et al., 2020) as a gymnax environment.

    Each step the agent takes one of 9 actions (stay, 4 cardinal and 4 diagonal moves; a move
    into a wall leaves it in place). Landing on an object collects it: its reward is paid (times
    `reward_scale`), it disappears, and the episode terminates with the object's
    `terminate_prob`. Every absent object (one just collected included) then respawns with its
    `respawn_prob` on a uniformly random empty cell. Episodes are truncated after the layout's
    `max_steps` (by gymnax's `step`, which also auto-resets).

    The observation is a float32 binary tensor of shape `(num_objects + 1, rows, cols)`: one
    channel per object, then the agent's channel last. It is channels-first, as
    `equinox.nn.Conv2d` expects, so a conv net convolves over the map with `num_objects + 1`
    input channels. (Optim4RL fed this same channels-first tensor to a channels-last flax conv,
    sliding over `(channels, rows)` with the columns as input channels; that quirk is
    deliberately not reproduced.)

    **Arguments:**

    - `layout`: a name in `LAYOUTS`, e.g. `"small_sparse_short"`.
    - `reward_scale`: positive, finite factor on every reward (default 1.0); multi-task
      meta-training uses it to bring the tasks' returns to a common scale.

    **Attributes:** `layout` (the `GridworldLayout`), `reward_scale`, `walls` (bool
    `(rows, cols)`), `empty_cells` (int32 `(n_empty, 2)`, row-major), `num_objects`.
    """

    def __init__(self, layout: str, reward_scale: float | int = 1.0):
        super().__init__()
        if layout not in LAYOUTS:
            raise ValueError(
                f"unknown gridworld layout {layout!r}; expected one of {list(LAYOUTS)}"
            )
        check_positive("reward_scale", reward_scale)
        self.layout_name = layout
        self.layout = LAYOUTS[layout]
        self.reward_scale = float(reward_scale)
        self.walls = self.layout.walls()
        self.empty_cells = np.argwhere(~self.walls).astype(np.int32)
        objects = np.asarray(self.layout.objects, dtype=np.float32)
        self.object_rewards = objects[:, 0]
        self.terminate_probs = objects[:, 1]
        self.respawn_probs = objects[:, 2]

    @property
    def name(self) -> str:
        """The layout's name."""
        return self.layout_name

    @property
    def num_objects(self) -> int:
        """Number of objects on the map."""
        return len(self.layout.objects)

    @property
    def num_actions(self) -> int:
        """Number of actions: 9."""
        return len(MOVES)

    @property
    def default_params(self) -> EnvParams:
        """`EnvParams` with the layout's `max_steps` as the time limit."""
        return EnvParams(max_steps_in_episode=self.layout.max_steps)

    def action_space(self, params: EnvParams | None = None) -> spaces.Discrete:
        """`Discrete(9)`."""
        return spaces.Discrete(self.num_actions)

    def observation_space(self, params: EnvParams | None = None) -> spaces.Box:
        """A float32 `Box(0, 1)` of shape `(num_objects + 1, rows, cols)`."""
        shape = (self.num_objects + 1, self.layout.rows, self.layout.cols)
        return spaces.Box(0, 1, shape, jnp.float32)

    def get_obs(
        self, state: EnvState, params: EnvParams | None = None, key: PRNGKey | None = None
    ) -> Float[Array, "c h w"]:
        """The observation of `state`, shape `(num_objects + 1, rows, cols)`, agent last."""
        positions = jnp.concatenate([state.object_pos, state.agent_pos[None]], axis=0)
        rows = jnp.arange(self.layout.rows, dtype=jnp.int32)
        cols = jnp.arange(self.layout.cols, dtype=jnp.int32)
        on_row = rows[None, :, None] == positions[:, 0, None, None]
        on_col = cols[None, None, :] == positions[:, 1, None, None]
        return (on_row & on_col).astype(jnp.float32)

    def is_terminated(self, state: EnvState, params: EnvParams) -> Bool[Array, ""]:
        """Whether the step that produced `state` ended the episode."""
        return state.terminated

    def reset_env(self, key: PRNGKey, params: EnvParams) -> tuple[Float[Array, "c h w"], EnvState]:
        """The agent and every object on distinct, uniformly drawn empty cells.

        **Arguments:** `key`, `params`. **Returns:** `(obs, state)`.
        """
        n = self.num_objects
        # A uniformly random ordered (n + 1)-subset of the empty cells: the indices of the n + 1
        # largest of i.i.d. uniforms (Gumbel-top-k). Same law as `jax.random.choice(...,
        # replace=False)`, whose full permutation costs ~10× more, and gymnax's `step` runs a
        # reset on every step (for the auto-reset).
        _, cells = jax.lax.top_k(jax.random.uniform(key, (len(self.empty_cells),)), n + 1)
        positions = jnp.asarray(self.empty_cells)[cells]
        state = EnvState(
            agent_pos=positions[n],
            object_pos=positions[:n],
            terminated=jnp.zeros((), dtype=bool),
            time=jnp.zeros((), dtype=jnp.int32),
        )
        return self.get_obs(state), state

    def step_env(
        self, key: PRNGKey, state: EnvState, action: Int[ArrayLike, ""], params: EnvParams
    ) -> tuple[Float[Array, "c h w"], EnvState, Float[Array, ""], Bool[Array, ""], dict[str, Any]]:
        """Move, collect, maybe terminate, respawn; no auto-reset (gymnax's `step` adds it).

        **Arguments:** `key`, `state`, `action` (an integer in `[0, 9)`), `params`.

        **Returns:** `(obs, state, reward, terminated, info)`; reward is float32 and includes
        `reward_scale`; `info["discount"]` is `0.0` on termination, else `1.0`.
        """
        # Every random number of the step in one call (cheaper to compile and run than split
        # keys): per object, its termination draw, its respawn draw and its respawn cell.
        ends_u, respawn_u, where_u = jax.random.uniform(key, (3, self.num_objects))
        n_empty = len(self.empty_cells)

        # Move, unless the target cell is a wall.
        target = state.agent_pos + jnp.asarray(MOVES)[action]
        target = jnp.clip(target, 0, jnp.array([self.layout.rows - 1, self.layout.cols - 1]))
        blocked = jnp.asarray(self.walls)[target[0], target[1]]
        agent_pos = jnp.where(blocked, state.agent_pos, target)

        # Collect. Objects are independent, so this is the reference's per-object loop at once;
        # an absent object sits at (-1, -1) and the agent never does.
        collected = jnp.all(state.object_pos == agent_pos, axis=-1)
        reward = jnp.sum(jnp.where(collected, self.object_rewards, 0.0)) * self.reward_scale
        terminated = jnp.any(collected & (ends_u < self.terminate_probs))

        # Respawn absent objects (just-collected ones included) on random empty cells.
        absent = collected | (state.object_pos[:, 0] < 0)
        respawns = absent & (respawn_u < self.respawn_probs)
        where = jnp.minimum((where_u * n_empty).astype(jnp.int32), n_empty - 1)  # ⌊u·n⌋
        object_pos = jnp.where(absent[:, None], jnp.int32(-1), state.object_pos)
        object_pos = jnp.where(respawns[:, None], jnp.asarray(self.empty_cells)[where], object_pos)

        state = EnvState(
            agent_pos=agent_pos,
            object_pos=object_pos,
            terminated=terminated,
            time=state.time + 1,
        )
        info = {"discount": jnp.where(terminated, 0.0, 1.0).astype(jnp.float32)}
        return self.get_obs(state), state, reward.astype(jnp.float32), terminated, info
