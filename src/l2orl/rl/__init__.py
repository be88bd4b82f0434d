"""Reinforcement learning: environments, networks, learners, evaluation and its suites.

Importing `l2orl.rl` loads gymnax (its plotting imports, used only by `render`, are deferred:
seaborn, pandas, scipy and `matplotlib.pyplot` load on first use); brax loads only when a
`"brax:..."` environment is made.
"""

from . import _lazy_plotting  # noqa: F401  (first: imports gymnax without its plotting stack)
from ._a2c import A2C as A2C
from ._evaluate import (
    FINAL_FRACTION as FINAL_FRACTION,
    Evaluation as Evaluation,
    OptimizerResult as OptimizerResult,
    bootstrap_ci as bootstrap_ci,
    compare as compare,
    evaluate as evaluate,
    final_returns as final_returns,
    iqm as iqm,
)
from ._gridworld import LAYOUTS as LAYOUTS, Gridworld as Gridworld
from ._learner import (
    AbstractActorCritic as AbstractActorCritic,
    EpisodeStats as EpisodeStats,
    LearnerState as LearnerState,
    NetworkSpec as NetworkSpec,
    Trajectory as Trajectory,
)
from ._losses import a2c_loss as a2c_loss, ppo_loss as ppo_loss
from ._make import ConfiguredEnv as ConfiguredEnv, make as make
from ._networks import (
    AbstractTorso as AbstractTorso,
    ActorCritic as ActorCritic,
    ConvTorso as ConvTorso,
    MLPTorso as MLPTorso,
    dormant_fraction as dormant_fraction,
)
from ._normalize import RunningMeanStd as RunningMeanStd
from ._policies import (
    AbstractPolicyHead as AbstractPolicyHead,
    Categorical as Categorical,
    TanhGaussian as TanhGaussian,
)
from ._ppo import PPO as PPO
from ._registry import (
    BRAX_ENVS as BRAX_ENVS,
    ENV_FAMILIES as ENV_FAMILIES,
    EnvFamily as EnvFamily,
    available as available,
    default_learner as default_learner,
    env_family as env_family,
)
from ._returns import gae as gae, td_lambda as td_lambda
from ._suites import (
    SUITES as SUITES,
    PairedDifference as PairedDifference,
    Suite as Suite,
    SuiteEvaluation as SuiteEvaluation,
    SuiteTask as SuiteTask,
    TaskEvaluation as TaskEvaluation,
    evaluate_suite as evaluate_suite,
    paired_difference as paired_difference,
)
from ._train import TrainResult as TrainResult, train as train


def __getattr__(name: str):
    # BraxEnv imports brax, so it loads on first use only.
    if name == "BraxEnv":
        from ._brax import BraxEnv

        return BraxEnv
    raise AttributeError(f"module 'l2orl.rl' has no attribute {name!r}")
