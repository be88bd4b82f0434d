"""Any brax environment behind gymnax 1.0's `Environment` API.

This module imports brax at the top, so `l2orl.rl` imports it lazily, only when a `"brax:…"`
environment is requested; `import l2orl` never loads brax.
"""

import math
import typing
from functools import partial
from typing import Any

import brax.envs
import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from .._utils import check_positive_int, tree_select

BACKENDS = ("generalized", "mjx", "positional", "spring")
"""The physics backends a brax `PipelineEnv` accepts."""


@typing.no_type_check
@struct.dataclass
class BraxEnvState(environment.EnvState):
    """One brax environment's state, as gymnax sees it.

    Fields are pytree leaves and may be tracers, so they are documented, not type-checked.

    **Fields:**

    - `time`: `int32[]`, agent steps (each `action_repeat` brax steps) since the episode began.
    - `brax_state`: the wrapped `brax.envs.State` (`pipeline_state`, `obs`, `reward`, `done`,
      `metrics`, `info`), every leaf cast to a fixed, non-weak dtype.
    - `initial_state`: the `brax.envs.State` from this environment's last `reset`, restored
      whenever an episode ends; `None` when the environment was built with `fresh_reset=True`.
    """

    time: Int[Array, ""]
    brax_state: brax.envs.State
    initial_state: brax.envs.State | None


@typing.no_type_check
@struct.dataclass
class BraxEnvParams(environment.EnvParams):
    """`max_steps_in_episode`: the time limit in agent steps.

    `BraxEnv.default_params` sets it to `ceil(episode_length / action_repeat)`.
    """

    max_steps_in_episode: int = 1000


def _strong(tree: Any) -> Any:
    """`tree` with every leaf a JAX array of its own dtype, weak types made strong."""

    def cast(x):
        x = jnp.asarray(x)
        return jax.lax.convert_element_type(x, x.dtype)

    return jax.tree.map(cast, tree)


def _cast_like(tree: Any, like: Any) -> Any:
    """`tree` with every leaf cast to the (strong) dtype of the matching leaf of `like`."""
    return jax.tree.map(
        lambda x, y: jax.lax.convert_element_type(jnp.asarray(x), y.dtype), tree, like
    )


def _copy(tree: Any) -> Any:
    """`tree` rebuilt with new containers (same leaves), safe from in-place dict updates."""
    return jax.tree.map(lambda x: x, tree)


class BraxEnv(environment.Environment[BraxEnvState, BraxEnvParams]):
    """A brax environment with gymnax 1.0's API: `reset`, `step` (auto-reset), spaces.

    `reset(key, params)` returns `(obs, state)`; `step(key, state, action, params)` returns
    `(obs, state, reward, terminated, truncated, info)`, where `obs` is the first observation of
    the next episode if this step ended one, and `info["final_observation"]` is the observation
    before that reset. Observations are `float32[obs_size]`, actions `float32[action_size]` in
    `[-1, 1]`, `reward` `float32[]`, `terminated` and `truncated` `bool[]`. One environment per
    call: `jax.vmap` over keys, states and actions for a batch.

    - `terminated` is brax's `done`. With `action_repeat > 1` the brax env is stepped up to
      `action_repeat` times, rewards summed; after a terminal brax step the state is frozen and
      no more reward is added.
    - `truncated` is `time >= max_steps_in_episode` and not `terminated`. `time` counts agent
      steps, and `max_steps_in_episode = ceil(episode_length / action_repeat)`, so episodes end
      exactly where `brax.envs.create(name, episode_length, action_repeat)` ends them.
    - Auto-reset, by default (`fresh_reset=False`), works as brax's `AutoResetWrapper`: each
      environment restarts from the state of ITS OWN last `reset`, kept in the state, so one
      environment replays one initial state and the batch gives as many initial states as it
      has environments; `step` ignores `key`. With `fresh_reset=True`, `step` instead draws a
      new initial state from `key` when an episode ends, as gymnax envs do. Under `vmap` the
      `lax.cond` becomes a select that runs `reset` on every step, which costs throughput and
      compile time (figures in the docs' environments page). The default mode runs no reset
      in `step`. Neither mode runs gymnax's reset-every-step base `step`.
    - Every leaf of the state keeps one dtype, with no weak types, so a `lax.scan` carry is
      stable.
    - **The physics gradient.** With `physics_gradient=False` (the default) every output of
      the simulator (state, observation, reward, termination, metrics) is detached with
      `jax.lax.stop_gradient`: derivatives, such as a meta-gradient back-propagated through
      an agent's updates, stop at the simulator, and a rollout's data is a constant of the
      actions. With `True` they flow through brax's differentiable physics, as in the
      Optim4RL reference (its PPO meta-gradients pass through brax's `spring` physics).
      gymnax's `with_transition_gradients()` gives a copy with the switch on. `spring`,
      `positional` and `generalized` differentiate; `mjx` only models whose constraint
      solver runs one iteration (brax's ant and humanoid): MJX runs more in a
      `jax.lax.while_loop`, which reverse-mode autodiff refuses, so the switch raises a
      `ValueError` for them.

    `info` also holds `"discount"` (`float32`, 0 on termination), `"terminated"`,
    `"truncated"` and brax's `"metrics"` dict from before the reset.

    **Arguments:**

    - `name`: a brax environment name, e.g. `"inverted_pendulum"` (see `brax.envs._envs`).
    - `backend`: physics pipeline, one of `"generalized"`, `"mjx"`, `"positional"` or
      `"spring"` (default; the fastest on CPU). `"fast"` ignores it.
    - `episode_length`: time limit in brax steps (default 1000), a positive int.
    - `action_repeat`: brax steps per agent step (default 1), a positive int.
    - `fresh_reset`: draw a new initial state at every episode end (default `False`, see above).
    - `physics_gradient`: let derivatives flow through the simulator (default `False`, see
      above).
    - `**env_kwargs`: passed on to the brax environment's constructor.

    Sizes come from `jax.eval_shape` of brax's `reset`, computed once on first use; brax's own
    `observation_size` property (an eager, un-jitted reset that can take tens of seconds) is
    never called.
    """

    _supports_transition_gradients = True

    def __init__(
        self,
        name: str,
        backend: str = "spring",
        episode_length: int = 1000,
        action_repeat: int = 1,
        fresh_reset: bool = False,
        physics_gradient: bool = False,
        **env_kwargs: Any,
    ):
        super().__init__()
        known = sorted(brax.envs._envs)
        if name not in known:
            raise ValueError(f"unknown brax environment {name!r}; known: {known}")
        if backend not in BACKENDS:
            raise ValueError(f"unknown brax backend {backend!r}; known: {list(BACKENDS)}")
        check_positive_int("episode_length", episode_length)
        check_positive_int("action_repeat", action_repeat)
        self.brax_name = name
        self.backend = backend
        self.episode_length = episode_length
        self.action_repeat = action_repeat
        self.fresh_reset = fresh_reset
        self._transition_gradients_enabled = physics_gradient
        self.brax_env = brax.envs.get_environment(name, backend=backend, **env_kwargs)
        self._obs_size: int | None = None
        self._action_size: int | None = None
        if physics_gradient:
            self._check_differentiable()

    def _check_differentiable(self) -> None:
        """Raise a `ValueError` if reverse-mode autodiff cannot go through this simulator."""
        system = getattr(self.brax_env, "sys", None)  # `fast` has none
        if self.backend != "mjx" or system is None or int(system.opt.iterations) == 1:
            return
        raise ValueError(
            f"physics_gradient cannot differentiate brax:{self.brax_name} on mjx: MuJoCo MJX's "
            f"constraint solver runs its {int(system.opt.iterations)} iterations in a "
            "jax.lax.while_loop, which reverse-mode autodiff does not support (a model with "
            "opt.iterations == 1, such as brax's ant and humanoid on mjx, skips the loop); use "
            "backend 'spring', 'positional' or 'generalized', or physics_gradient=False"
        )

    def with_transition_gradients(self) -> "BraxEnv":
        """A copy with `physics_gradient` on (gymnax's switch). **Raises:** `ValueError` where
        the simulator cannot be differentiated (see `physics_gradient`)."""
        self._check_differentiable()
        return super().with_transition_gradients()

    # ---------------------------------------------------------------- sizes and spaces

    @property
    def obs_size(self) -> int:
        """Length of the observation vector (from `jax.eval_shape`, cached)."""
        if self._obs_size is None:
            obs = jax.eval_shape(self.brax_env.reset, jax.random.key(0)).obs
            if not isinstance(obs, jax.ShapeDtypeStruct) or len(obs.shape) != 1:
                raise ValueError(
                    f"BraxEnv needs flat vector observations; brax:{self.brax_name} gives {obs}"
                )
            self._obs_size = int(obs.shape[0])
        return self._obs_size

    @property
    def action_size(self) -> int:
        """Length of the action vector (brax's `action_size`, which runs no reset; cached)."""
        if self._action_size is None:
            self._action_size = int(self.brax_env.action_size)
        return self._action_size

    @property
    def physics_gradient(self) -> bool:
        """Whether derivatives flow through the simulator (gymnax's
        `transition_gradients_enabled`)."""
        return self.transition_gradients_enabled

    @property
    def name(self) -> str:
        """`"brax:<name>"`."""
        return f"brax:{self.brax_name}"

    @property
    def num_actions(self) -> int:
        """The action dimension, `action_size`."""
        return self.action_size

    @property
    def default_params(self) -> BraxEnvParams:
        """`max_steps_in_episode = ceil(episode_length / action_repeat)`."""
        return BraxEnvParams(
            max_steps_in_episode=math.ceil(self.episode_length / self.action_repeat)
        )

    def observation_space(self, params: BraxEnvParams | None = None) -> spaces.Box:
        """Unbounded `float32` box of shape `(obs_size,)`."""
        return spaces.Box(-jnp.inf, jnp.inf, (self.obs_size,), jnp.float32)

    def action_space(self, params: BraxEnvParams | None = None) -> spaces.Box:
        """`float32` box `[-1, 1]` of shape `(action_size,)`, as every brax env expects."""
        return spaces.Box(-1.0, 1.0, (self.action_size,), jnp.float32)

    # ---------------------------------------------------------------- dynamics

    def _simulated(self, outputs: Any) -> Any:
        """The simulator's `outputs`, detached unless `physics_gradient`."""
        return outputs if self.physics_gradient else jax.lax.stop_gradient(outputs)

    def _brax_reset(self, key: PRNGKeyArray) -> brax.envs.State:
        return self._simulated(_strong(self.brax_env.reset(key)))

    def reset_env(
        self, key: PRNGKeyArray, params: BraxEnvParams
    ) -> tuple[Float[Array, " obs_size"], BraxEnvState]:
        """brax's `reset` from `key`, at `time` 0.

        **Returns:** `(obs, state)`, `obs` of shape `(obs_size,)`.
        """
        brax_state = self._brax_reset(key)
        state = BraxEnvState(
            time=jnp.zeros((), jnp.int32),
            brax_state=brax_state,
            initial_state=None if self.fresh_reset else _copy(brax_state),
        )
        return brax_state.obs, state

    def _brax_step(
        self, brax_state: brax.envs.State, action: Float[Array, " action_size"]
    ) -> tuple[brax.envs.State, Float[Array, ""], Bool[Array, ""]]:
        """`action_repeat` brax steps: the new state, summed reward and whether it terminated."""

        def one(s):
            # brax steps may update `metrics`/`info` dicts in place (hopper does): hand them a
            # copy of every container so `s` itself stays untouched.
            return self._simulated(_cast_like(self.brax_env.step(_copy(s), action), s))

        if self.action_repeat == 1:
            new = one(brax_state)
            return new, new.reward.astype(jnp.float32), new.done != 0

        def body(carry, _):
            s, reward, terminated = carry
            new = one(s)
            reward = reward + jnp.where(terminated, 0.0, new.reward.astype(jnp.float32))
            s = tree_select(terminated, s, new)
            return (s, reward, terminated | (s.done != 0)), None

        init = (brax_state, jnp.zeros((), jnp.float32), jnp.zeros((), jnp.bool_))
        (new, reward, terminated), _ = jax.lax.scan(body, init, None, self.action_repeat)
        new = new.replace(reward=_cast_like(reward, new.reward))
        return new, reward, terminated

    def step_env(
        self,
        key: PRNGKeyArray,
        state: BraxEnvState,
        action: Float[Array, " action_size"],
        params: BraxEnvParams,
    ) -> tuple[
        Float[Array, " obs_size"], BraxEnvState, Float[Array, ""], Bool[Array, ""], dict[str, Any]
    ]:
        """One agent step WITHOUT auto-reset: `(obs, state, reward, terminated, info)`."""
        action = jnp.asarray(action, jnp.float32)
        brax_state, reward, terminated = self._brax_step(state.brax_state, action)
        state = state.replace(time=state.time + jnp.int32(1), brax_state=brax_state)
        info = {
            "discount": jnp.where(terminated, 0.0, 1.0).astype(jnp.float32),
            "metrics": brax_state.metrics,
        }
        return brax_state.obs, state, reward, terminated, info

    @partial(jax.jit, static_argnames=("self",))
    def step(
        self,
        key: PRNGKeyArray,
        state: BraxEnvState,
        action: Float[Array, " action_size"],
        params: BraxEnvParams | None = None,
    ) -> tuple[
        Float[Array, " obs_size"],
        BraxEnvState,
        Float[Array, ""],
        Bool[Array, ""],
        Bool[Array, ""],
        dict[str, Any],
    ]:
        """One agent step, auto-resetting when the episode ends.

        Unlike gymnax's base `step`, no reset is computed on steps that do not need one (see
        the class docstring for how the reset state is chosen).

        **Arguments:** `key`, `state`, `action` of shape `(action_size,)` in `[-1, 1]`,
        `params` (default `default_params`).

        **Returns:** `(obs, state, reward, terminated, truncated, info)`; `info` holds
        `"final_observation"`, the observation before any reset, plus `"discount"`,
        `"terminated"`, `"truncated"` and `"metrics"`.
        """
        if params is None:
            params = self.default_params
        obs_st, state_st, reward, terminated, info = self.step_env(key, state, action, params)
        truncated = (state_st.time >= params.max_steps_in_episode) & ~terminated
        done = terminated | truncated
        current = state_st.brax_state
        if self.fresh_reset:
            brax_state = jax.lax.cond(
                done, lambda: _cast_like(self._brax_reset(key), current), lambda: current
            )
        else:
            brax_state = tree_select(done, state.initial_state, current)
        state = state_st.replace(
            time=jnp.where(done, jnp.int32(0), state_st.time), brax_state=brax_state
        )
        info = {**info, "terminated": terminated, "truncated": truncated}
        info["final_observation"] = obs_st
        return brax_state.obs, state, reward, terminated, truncated, info
