from ._base import AbstractLearnedOptimizer as AbstractLearnedOptimizer
from ._branch import Branch as Branch, BranchState as BranchState
from ._moment_ratio import (
    MomentRatioOptimizer as MomentRatioOptimizer,
    MomentRatioState as MomentRatioState,
)
from ._per_coordinate import PerCoordinateOptimizer as PerCoordinateOptimizer
from ._presets import L2LGD2 as L2LGD2, LinearOptim as LinearOptim, Optim4RL as Optim4RL
from ._star import STAR as STAR
