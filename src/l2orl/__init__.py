"""l2orl: learning to optimize for reinforcement learning, in JAX and Equinox."""

from ._cells import (
    AbstractCell as AbstractCell,
    AbstractStatelessCell as AbstractStatelessCell,
    GRUCell as GRUCell,
    LinearCell as LinearCell,
    LSTMCell as LSTMCell,
    MLPCell as MLPCell,
    ODECell as ODECell,
)
from ._checkpoint import CheckpointError as CheckpointError, load as load, save as save
from ._heads import (
    AbstractHead as AbstractHead,
    DirectionMagnitudeHead as DirectionMagnitudeHead,
    ExpHead as ExpHead,
    ExpScaleHead as ExpScaleHead,
    GainBiasHead as GainBiasHead,
    SignExpHead as SignExpHead,
)
from ._lopt import (
    AbstractLearnedOptimizer as AbstractLearnedOptimizer,
    Branch as Branch,
    BranchState as BranchState,
    L2LGD2 as L2LGD2,
    LinearOptim as LinearOptim,
    MomentRatioOptimizer as MomentRatioOptimizer,
    MomentRatioState as MomentRatioState,
    Optim4RL as Optim4RL,
    PerCoordinateOptimizer as PerCoordinateOptimizer,
    STAR as STAR,
)
from ._preprocess import (
    AbstractElementwisePreprocessor as AbstractElementwisePreprocessor,
    AbstractPreprocessor as AbstractPreprocessor,
    AdafacFeatures as AdafacFeatures,
    AdafacState as AdafacState,
    Clip as Clip,
    Concatenate as Concatenate,
    Identity as Identity,
    Momentum as Momentum,
    ParamValue as ParamValue,
    RMSNormalize as RMSNormalize,
    SignLog as SignLog,
    Square as Square,
    TimeFeatures as TimeFeatures,
)
from ._version import __version__ as __version__
