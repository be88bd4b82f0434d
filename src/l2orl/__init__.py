"""l2orl: learning to optimize for reinforcement learning, in JAX and Equinox."""

from ._cells import (
    AbstractCell as AbstractCell,
)
from ._cells import (
    AbstractStatelessCell as AbstractStatelessCell,
)
from ._cells import (
    GRUCell as GRUCell,
)
from ._cells import (
    LinearCell as LinearCell,
)
from ._cells import (
    LSTMCell as LSTMCell,
)
from ._cells import (
    MLPCell as MLPCell,
)
from ._cells import (
    ODECell as ODECell,
)
from ._checkpoint import (
    CheckpointError as CheckpointError,
)
from ._checkpoint import (
    describe as describe,
)
from ._checkpoint import (
    load as load,
)
from ._checkpoint import (
    read_manifest as read_manifest,
)
from ._checkpoint import (
    save as save,
)
from ._heads import (
    AbstractHead as AbstractHead,
)
from ._heads import (
    DirectionMagnitudeHead as DirectionMagnitudeHead,
)
from ._heads import (
    ExpHead as ExpHead,
)
from ._heads import (
    ExpScaleHead as ExpScaleHead,
)
from ._heads import (
    GainBiasHead as GainBiasHead,
)
from ._heads import (
    SignExpHead as SignExpHead,
)
from ._lopt import (
    L2LGD2 as L2LGD2,
)
from ._lopt import (
    STAR as STAR,
)
from ._lopt import (
    AbstractLearnedOptimizer as AbstractLearnedOptimizer,
)
from ._lopt import (
    Branch as Branch,
)
from ._lopt import (
    BranchState as BranchState,
)
from ._lopt import (
    LinearOptim as LinearOptim,
)
from ._lopt import (
    MomentRatioOptimizer as MomentRatioOptimizer,
)
from ._lopt import (
    MomentRatioState as MomentRatioState,
)
from ._lopt import (
    Optim4RL as Optim4RL,
)
from ._lopt import (
    PerCoordinateOptimizer as PerCoordinateOptimizer,
)
from ._preprocess import (
    AbstractElementwisePreprocessor as AbstractElementwisePreprocessor,
)
from ._preprocess import (
    AbstractPreprocessor as AbstractPreprocessor,
)
from ._preprocess import (
    AdafacFeatures as AdafacFeatures,
)
from ._preprocess import (
    AdafacState as AdafacState,
)
from ._preprocess import (
    Clip as Clip,
)
from ._preprocess import (
    Concatenate as Concatenate,
)
from ._preprocess import (
    Identity as Identity,
)
from ._preprocess import (
    Momentum as Momentum,
)
from ._preprocess import (
    ParamValue as ParamValue,
)
from ._preprocess import (
    RMSNormalize as RMSNormalize,
)
from ._preprocess import (
    SignLog as SignLog,
)
from ._preprocess import (
    Square as Square,
)
from ._preprocess import (
    TimeFeatures as TimeFeatures,
)
from ._version import __version__ as __version__
