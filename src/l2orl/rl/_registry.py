"""One registry of environments: what `make`, `available` and `default_learner` read."""

import dataclasses
from collections.abc import Callable, Sequence

import gymnax
from gymnax.environments.environment import Environment

from ._a2c import A2C
from ._gridworld import LAYOUTS, Gridworld
from ._learner import AbstractActorCritic, NetworkSpec
from ._ppo import PPO

BRAX_ENVS = (
    "ant", "fast", "halfcheetah", "hopper", "humanoid", "humanoidstandup",
    "inverted_double_pendulum", "inverted_pendulum", "pusher", "reacher", "swimmer", "walker2d",
)  # fmt: skip
"""brax 0.14's environments (a test checks this against brax's registry)."""


@dataclasses.dataclass(frozen=True)
class EnvFamily:
    """A family of environments [`l2orl.rl.make`][] knows.

    **Attributes:** `names` (a function listing the family's names), `make` (`(name,
    **options) -> Environment`), `default_learner` (`(name, n_envs) -> learner`, the
    reference's settings; `n_envs=None` for the family's default count), `options` (keyword
    options the family's envs take, e.g. `reward_scale`; an `episode_length` here means the
    family applies the time limit itself).
    """

    names: Callable[[], Sequence[str]]
    make: Callable[..., Environment]
    default_learner: Callable[[str, int | None], AbstractActorCritic]
    options: tuple[str, ...] = ()


def _gridworld_learner(name: str, n_envs: int | None) -> AbstractActorCritic:
    """A2C, 512 envs, MLP 32 ReLU (`small_*`) or the `C16_D32` conv net (`big_*`)."""
    net = (
        NetworkSpec("conv", (32,), "relu")
        if name.startswith("big")
        else NetworkSpec("mlp", (32,), "relu")
    )
    return A2C(n_envs=n_envs or 512, network=net)


def _catch_learner(name: str, n_envs: int | None) -> AbstractActorCritic:
    """A2C, 64 envs, 20-step rollouts, MLP 256 ReLU."""
    return A2C(n_envs=n_envs or 64, network=NetworkSpec("mlp", (256,), "relu"))


def _gymnax_learner(name: str, n_envs: int | None) -> AbstractActorCritic:
    """A2C, 64 envs, separate 64-64 tanh actor and critic, γ 0.99."""
    net = NetworkSpec("mlp", (64, 64), "tanh", value_hidden_sizes=(64, 64))
    return A2C(n_envs=n_envs or 64, gamma=0.99, network=net)


def _brax_learner(name: str, n_envs: int | None) -> AbstractActorCritic:
    """PPO with brax's networks and settings (64 envs, 32-step rollouts)."""
    n = n_envs or 64
    return PPO(
        n_envs=n,
        rollout_length=32,
        n_minibatches=4 if (n * 32) % 4 == 0 else 1,
        n_epochs=4,
        gamma=0.97,
        entropy_coef=1e-2,
        reward_scale=10.0,
        clip_eps=0.3,
        value_coef=0.25,
        network=NetworkSpec("mlp", (32, 32, 32, 32), "swish", (256,) * 5),
    )


def _make_brax(name: str, **options) -> Environment:
    from ._brax import BraxEnv  # brax loads on first use only

    return BraxEnv(name.removeprefix("brax:"), **options)


ENV_FAMILIES: tuple[EnvFamily, ...] = (
    EnvFamily(lambda: LAYOUTS, Gridworld, _gridworld_learner, ("reward_scale",)),
    EnvFamily(
        lambda: ("Catch",), lambda name, **o: gymnax.make("Catch-bsuite", **o)[0], _catch_learner
    ),
    EnvFamily(
        lambda: gymnax.registered_envs,
        lambda name, **o: gymnax.make(name, **o)[0],
        _gymnax_learner,
    ),
    EnvFamily(
        lambda: tuple(f"brax:{n}" for n in BRAX_ENVS),
        _make_brax,
        _brax_learner,
        ("backend", "action_repeat", "fresh_reset", "physics_gradient", "episode_length"),
    ),
)
"""The environment families, searched in order: the LPG gridworlds, `"Catch"` (gymnax's
`Catch-bsuite`, the reference's Catch), every gymnax env, and brax envs as `"brax:<name>"`."""


def available() -> list[str]:
    """Every name `make` accepts (brax envs as `"brax:<name>"`, listed without importing brax)."""
    return [name for family in ENV_FAMILIES for name in family.names()]


def env_family(name: str) -> EnvFamily:
    """The family that makes `name`. **Raises:** `ValueError` naming the available envs."""
    for family in ENV_FAMILIES:
        if name in family.names():
            return family
    raise ValueError(f"unknown environment {name!r}; available: {', '.join(available())}")


def default_learner(env_name: str, n_envs: int | None = None) -> AbstractActorCritic:
    """The learner the reference uses on `env_name`, with `n_envs` environments per agent.

    - `"Catch"`: A2C, 64 envs, 20-step rollouts, MLP 256 ReLU;
    - gridworlds: A2C, 512 envs, MLP 32 ReLU (`small_*`) or the `C16_D32` conv net (`big_*`);
    - other gymnax envs: A2C, 64 envs, separate 64-64 tanh actor and critic, γ 0.99;
    - `"brax:*"`: PPO with brax's networks and settings (64 envs, 32-step rollouts).

    `n_envs=1` gives the reference's meta-training agents (one env each).

    **Raises:** `ValueError` for an unknown name.
    """
    return env_family(env_name).default_learner(env_name, n_envs)
