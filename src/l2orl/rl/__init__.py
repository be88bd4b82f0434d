"""Reinforcement learning: environments, networks, learners, evaluation.

Importing `l2orl.rl` loads gymnax; brax loads only when a `"brax:..."` environment is made.
"""

from ._a2c import A2C as A2C
from ._evaluate import (
    Evaluation as Evaluation,
)
from ._evaluate import (
    OptimizerResult as OptimizerResult,
)
from ._evaluate import (
    bootstrap_ci as bootstrap_ci,
)
from ._evaluate import (
    evaluate as evaluate,
)
from ._evaluate import (
    final_returns as final_returns,
)
from ._evaluate import (
    iqm as iqm,
)
from ._gridworld import LAYOUTS as LAYOUTS
from ._gridworld import Gridworld as Gridworld
from ._learner import (
    AbstractLearner as AbstractLearner,
)
from ._learner import (
    LearnerState as LearnerState,
)
from ._learner import (
    NetworkSpec as NetworkSpec,
)
from ._learner import (
    Trajectory as Trajectory,
)
from ._losses import a2c_loss as a2c_loss
from ._losses import ppo_loss as ppo_loss
from ._make import (
    BRAX_ENVS as BRAX_ENVS,
)
from ._make import (
    ConfiguredEnv as ConfiguredEnv,
)
from ._make import (
    available as available,
)
from ._make import (
    make as make,
)
from ._networks import (
    AbstractTorso as AbstractTorso,
)
from ._networks import (
    ActorCritic as ActorCritic,
)
from ._networks import (
    ConvTorso as ConvTorso,
)
from ._networks import (
    MLPTorso as MLPTorso,
)
from ._normalize import RunningMeanStd as RunningMeanStd
from ._policies import (
    AbstractPolicyHead as AbstractPolicyHead,
)
from ._policies import (
    Categorical as Categorical,
)
from ._policies import (
    TanhGaussian as TanhGaussian,
)
from ._ppo import PPO as PPO
from ._returns import gae as gae
from ._returns import td_lambda as td_lambda
from ._train import TrainResult as TrainResult
from ._train import train as train


def __getattr__(name: str):
    # BraxEnv imports brax, so it loads on first use only.
    if name == "BraxEnv":
        from ._brax import BraxEnv

        return BraxEnv
    raise AttributeError(f"module 'l2orl.rl' has no attribute {name!r}")
