from ._base import (
    AbstractCoordinatewiseOptimizer as AbstractCoordinatewiseOptimizer,
    AbstractLearnedOptimizer as AbstractLearnedOptimizer,
)
from ._branch import Branch as Branch, BranchState as BranchState
from ._hypernetwork import (
    HypernetworkOptimizer as HypernetworkOptimizer,
    HypernetworkState as HypernetworkState,
)
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
    open_like as open_like,
    optim4rl as optim4rl,
    optim4rl_scale_free as optim4rl_scale_free,
    star as star,
    velo_like as velo_like,
)
from ._star import NominalStepOptimizer as NominalStepOptimizer
