"""The reference's learner settings per environment (OPTIM4RL.md §4), as ready learners."""

from ._a2c import A2C
from ._gridworld import LAYOUTS
from ._learner import AbstractLearner, NetworkSpec
from ._ppo import PPO

_BRAX_PPO = dict(
    n_epochs=4,
    gamma=0.97,
    entropy_coef=1e-2,
    reward_scale=10.0,
    clip_eps=0.3,
    value_coef=0.25,
    network=NetworkSpec("mlp", (32, 32, 32, 32), "swish", (256,) * 5),
)


def default_learner(env_name: str, n_envs: int | None = None) -> AbstractLearner:
    """The learner the reference uses on `env_name`, with `n_envs` environments per agent.

    - `"Catch"`: A2C, 64 envs, 20-step rollouts, MLP 256 ReLU;
    - gridworlds: A2C, 512 envs, MLP 32 ReLU (`small_*`) or the `C16_D32` conv net (`big_*`);
    - other gymnax envs: A2C, 64 envs, separate 64-64 tanh actor and critic, γ 0.99;
    - `"brax:*"`: PPO with brax's networks and settings (64 envs, 32-step rollouts).

    `n_envs=1` gives the reference's meta-training agents (one env each).
    """
    if env_name == "Catch":
        return A2C(n_envs=n_envs or 64, network=NetworkSpec("mlp", (256,), "relu"))
    if env_name in LAYOUTS:
        net = (
            NetworkSpec("conv", (32,), "relu")
            if env_name.startswith("big")
            else NetworkSpec("mlp", (32,), "relu")
        )
        return A2C(n_envs=n_envs or 512, network=net)
    if env_name.startswith("brax:"):
        n = n_envs or 64
        return PPO(
            n_envs=n, rollout_length=32, n_minibatches=4 if (n * 32) % 4 == 0 else 1, **_BRAX_PPO
        )
    net = NetworkSpec("mlp", (64, 64), "tanh", value_hidden_sizes=(64, 64))
    return A2C(n_envs=n_envs or 64, gamma=0.99, network=net)
