from ._estimators import (
    PES as PES,
    AbstractEstimator as AbstractEstimator,
    AbstractStatelessEstimator as AbstractStatelessEstimator,
    FullES as FullES,
    PESState as PESState,
    TruncatedBPTT as TruncatedBPTT,
    TruncatedES as TruncatedES,
    unroll as unroll,
)
from ._losses import (
    AbstractMetaLoss as AbstractMetaLoss,
    AgentLoss as AgentLoss,
    LifetimeReturn as LifetimeReturn,
    UnrollReturn as UnrollReturn,
)
from ._pipeline import Pipeline as Pipeline
from ._schedules import (
    AbstractTruncationSchedule as AbstractTruncationSchedule,
    ConstantTruncation as ConstantTruncation,
    CurriculumTruncation as CurriculumTruncation,
    LogUniformTruncation as LogUniformTruncation,
)
from ._task import AgentsState as AgentsState, MetaTask as MetaTask
from ._trainer import MetaState as MetaState, MetaTrainer as MetaTrainer
