from ._config import MetaTrainConfig as MetaTrainConfig
from ._estimators import (
    ESTIMATORS as ESTIMATORS,
    PES as PES,
    AbstractEstimator as AbstractEstimator,
    AbstractStatelessEstimator as AbstractStatelessEstimator,
    EstimateMetrics as EstimateMetrics,
    FullES as FullES,
    PESState as PESState,
    TruncatedBPTT as TruncatedBPTT,
    TruncatedES as TruncatedES,
)
from ._evosax import EvosaxES as EvosaxES, EvosaxState as EvosaxState
from ._losses import (
    META_LOSSES as META_LOSSES,
    AbstractMetaLoss as AbstractMetaLoss,
    AgentLoss as AgentLoss,
    FreshRolloutLoss as FreshRolloutLoss,
    LifetimeReturn as LifetimeReturn,
    UnrollReturn as UnrollReturn,
)
from ._pipeline import PIPELINE_KINDS as PIPELINE_KINDS, Pipeline as Pipeline
from ._plot import plot_metrics as plot_metrics
from ._run import RunInterrupted as RunInterrupted
from ._schedules import (
    SCHEDULES as SCHEDULES,
    AbstractTruncationSchedule as AbstractTruncationSchedule,
    ConstantTruncation as ConstantTruncation,
    CurriculumTruncation as CurriculumTruncation,
    LogUniformTruncation as LogUniformTruncation,
)
from ._shaping import FITNESS_SHAPINGS as FITNESS_SHAPINGS, shape_fitness as shape_fitness
from ._task import AgentsState as AgentsState, MetaTask as MetaTask
from ._trainer import MetaState as MetaState, MetaTrainer as MetaTrainer
from ._unroll import unroll as unroll
