from gymnax.environments.environment import Environment

from .._utils import check_positive_int
from ._registry import env_family


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


def make(name: str, *, episode_length: int | None = None, **kwargs) -> Environment:
    """An environment with gymnax 1.0's API, by name.

    - the LPG gridworlds (`"small_dense_long"`, …; kwargs: `reward_scale`);
    - `"Catch"`: gymnax's `Catch-bsuite`, which is the reference's Catch (10×5, paddle starts in
      column 2, ±1 when the ball reaches the bottom row after 9 steps);
    - any gymnax env (`"CartPole-v1"`, `"Breakout-MinAtar"`, …; kwargs go to its constructor);
    - brax envs as `"brax:<name>"` (kwargs: `backend` (default `"spring"`), `action_repeat`,
      `fresh_reset`, `physics_gradient` (default `False`: derivatives stop at the simulator),
      brax env kwargs), loaded lazily: `import l2orl` never imports brax.

    Every env auto-resets and reports termination and time-limit truncation apart.
    `episode_length` overrides the env's time limit.

    **Raises:** `ValueError` naming the available envs for an unknown name, or for a
    non-positive `episode_length`.
    """
    check_positive_int("episode_length", episode_length, optional=True)
    family = env_family(name)
    if "episode_length" in family.options:  # the family applies its own time limit
        if episode_length is not None:
            kwargs["episode_length"] = episode_length
        return family.make(name, **kwargs)
    env = family.make(name, **kwargs)
    if episode_length is None:
        return env
    return ConfiguredEnv(env, env.default_params.replace(max_steps_in_episode=episode_length))
