from ._algorithm import (
    AbstractMetaAlgorithm as AbstractMetaAlgorithm,
    AbstractMetaState as AbstractMetaState,
)
from ._estimators import (
    ESTIMATORS as ESTIMATORS,
    PES as PES,
    AbstractEstimator as AbstractEstimator,
    AbstractStatelessEstimator as AbstractStatelessEstimator,
    EstimateMetrics as EstimateMetrics,
    PESState as PESState,
    TruncatedBPTT as TruncatedBPTT,
    TruncatedES as TruncatedES,
)
from ._inner import InnerLoop as InnerLoop
from ._lifetime import LifetimeState as LifetimeState, LifetimeTraining as LifetimeTraining
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
from ._run import RunInterrupted as RunInterrupted, meta_train as meta_train
from ._schedules import (
    SCHEDULES as SCHEDULES,
    AbstractTruncationSchedule as AbstractTruncationSchedule,
    ConstantTruncation as ConstantTruncation,
    CurriculumTruncation as CurriculumTruncation,
    LogUniformTruncation as LogUniformTruncation,
)
from ._search import (
    SEARCH_STRATEGIES as SEARCH_STRATEGIES,
    AbstractSearchStrategy as AbstractSearchStrategy,
    AntitheticES as AntitheticES,
    EvosaxStrategy as EvosaxStrategy,
)
from ._shaping import FITNESS_SHAPINGS as FITNESS_SHAPINGS, shape_fitness as shape_fitness
from ._task import (
    OPTIMIZER_SLOT as OPTIMIZER_SLOT,
    AgentsState as AgentsState,
    MetaTask as MetaTask,
)
from ._truncated import TruncatedState as TruncatedState, TruncatedTraining as TruncatedTraining
