import gymnax
from gymnax.environments.environment import Environment

from ._gridworld import LAYOUTS, Gridworld

_CATCH = "Catch"
BRAX_ENVS = (
    "ant", "fast", "halfcheetah", "hopper", "humanoid", "humanoidstandup",
    "inverted_double_pendulum", "inverted_pendulum", "pusher", "reacher", "swimmer", "walker2d",
)  # fmt: skip
"""brax 0.14's environments (a test checks this against brax's registry)."""


class ConfiguredEnv(Environment):
    """A gymnax environment with its own default parameters (e.g. another episode limit).

    Delegates everything to `env`; `reset`/`step` use `params` unless given others.
    """

    def __init__(self, env: Environment, params):
        super().__init__()
        self.env, self.params = env, params

    @property
    def default_params(self):
        return self.params

    def step(self, key, state, action, params=None):
        return self.env.step(key, state, action, self.params if params is None else params)

    def reset(self, key, params=None):
        return self.env.reset(key, self.params if params is None else params)

    @property
    def name(self) -> str:
        return self.env.name

    @property
    def num_actions(self) -> int:
        return self.env.num_actions

    def action_space(self, params=None):
        return self.env.action_space(self.params if params is None else params)

    def observation_space(self, params=None):
        return self.env.observation_space(self.params if params is None else params)


def available() -> list[str]:
    """Every name `make` accepts (brax envs as `"brax:<name>"`, listed without importing brax)."""
    return [*LAYOUTS, _CATCH, *gymnax.registered_envs, *(f"brax:{n}" for n in BRAX_ENVS)]


def make(name: str, *, episode_length: int | None = None, **kwargs) -> Environment:
    """An environment with gymnax 1.0's API, by name.

    - the LPG gridworlds (`"small_dense_long"`, …; kwargs: `reward_scale`);
    - `"Catch"`: gymnax's `Catch-bsuite`, which is the reference's Catch (10×5, paddle starts in
      column 2, ±1 when the ball reaches the bottom row after 9 steps);
    - any gymnax env (`"CartPole-v1"`, `"Breakout-MinAtar"`, …; kwargs go to its constructor);
    - brax envs as `"brax:<name>"` (kwargs: `backend` (default `"spring"`), `action_repeat`,
      `fresh_reset`, brax env kwargs), loaded lazily: `import l2orl` never imports brax.

    Every env auto-resets and reports termination and time-limit truncation apart.
    `episode_length` overrides the env's time limit.

    **Raises:** `ValueError` naming the available envs for an unknown name, or for a
    non-positive `episode_length`.
    """
    if episode_length is not None and not (isinstance(episode_length, int) and episode_length > 0):
        raise ValueError(f"episode_length must be a positive int, got {episode_length!r}")
    if name.startswith("brax:"):
        from ._brax import BraxEnv

        if episode_length is not None:
            kwargs["episode_length"] = episode_length
        return BraxEnv(name.removeprefix("brax:"), **kwargs)
    if name in LAYOUTS:
        env = Gridworld(name, **kwargs)
    elif name == _CATCH:
        env, _ = gymnax.make("Catch-bsuite", **kwargs)
    elif name in gymnax.registered_envs:
        env, _ = gymnax.make(name, **kwargs)
    else:
        raise ValueError(f"unknown environment {name!r}; available: {', '.join(available())}")
    if episode_length is None:
        return env
    return ConfiguredEnv(env, env.default_params.replace(max_steps_in_episode=episode_length))
