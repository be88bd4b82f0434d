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
from ._checkpoint import (
    CheckpointError as CheckpointError,
    describe as describe,
    load as load,
    load_tree as load_tree,
    read_manifest as read_manifest,
    save as save,
    save_tree as save_tree,
)
from ._heads import (
    AbstractHead as AbstractHead,
    DirectionMagnitudeHead as DirectionMagnitudeHead,
    ExpHead as ExpHead,
    ExpScaleHead as ExpScaleHead,
    GainBiasHead as GainBiasHead,
    LinearHead as LinearHead,
    SignExpHead as SignExpHead,
)
from ._lopt import (
    L2LGD2 as L2LGD2,
    STAR as STAR,
    AbstractLearnedOptimizer as AbstractLearnedOptimizer,
    Branch as Branch,
    BranchState as BranchState,
    LinearOptim as LinearOptim,
    MomentRatioOptimizer as MomentRatioOptimizer,
    MomentRatioState as MomentRatioState,
    Optim4RL as Optim4RL,
    PerCoordinateOptimizer as PerCoordinateOptimizer,
)
from ._meta import (
    PES as PES,
    AbstractEstimator as AbstractEstimator,
    AbstractMetaLoss as AbstractMetaLoss,
    AbstractStatelessEstimator as AbstractStatelessEstimator,
    AbstractTruncationSchedule as AbstractTruncationSchedule,
    AgentLoss as AgentLoss,
    AgentsState as AgentsState,
    ConstantTruncation as ConstantTruncation,
    CurriculumTruncation as CurriculumTruncation,
    FullES as FullES,
    LifetimeReturn as LifetimeReturn,
    LogUniformTruncation as LogUniformTruncation,
    MetaState as MetaState,
    MetaTask as MetaTask,
    MetaTrainer as MetaTrainer,
    PESState as PESState,
    Pipeline as Pipeline,
    TruncatedBPTT as TruncatedBPTT,
    TruncatedES as TruncatedES,
    UnrollReturn as UnrollReturn,
    unroll as unroll,
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
from ._pretrained import (
    PRETRAINED as PRETRAINED,
    pretrained as pretrained,
    pretrained_manifest as pretrained_manifest,
)
from ._version import __version__ as __version__
