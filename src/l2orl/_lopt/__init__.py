from ._base import (
    AbstractCoordinatewiseOptimizer as AbstractCoordinatewiseOptimizer,
    AbstractLearnedOptimizer as AbstractLearnedOptimizer,
)
from ._branch import Branch as Branch, BranchState as BranchState
from ._moment_ratio import (
    MomentRatioInputs as MomentRatioInputs,
    MomentRatioOptimizer as MomentRatioOptimizer,
    MomentRatioState as MomentRatioState,
)
from ._per_coordinate import PerCoordinateOptimizer as PerCoordinateOptimizer
from ._presets import (
    PRESETS as PRESETS,
    l2lgd2 as l2lgd2,
    linear_optim as linear_optim,
    optim4rl as optim4rl,
    star as star,
)
from ._star import NominalStepOptimizer as NominalStepOptimizer
