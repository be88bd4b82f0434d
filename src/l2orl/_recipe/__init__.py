from ._algorithms import (
    LifetimeTrainingSpec as LifetimeTrainingSpec,
    StrategySpec as StrategySpec,
    TruncatedTrainingSpec as TruncatedTrainingSpec,
)
from ._config import MetaTrainConfig as MetaTrainConfig
from ._parts import (
    EstimatorSpec as EstimatorSpec,
    EvaluationSpec as EvaluationSpec,
    MetaLossSpec as MetaLossSpec,
    MetaOptimizerSpec as MetaOptimizerSpec,
    OptimizerSpec as OptimizerSpec,
    PipelineSpec as PipelineSpec,
    RunSpec as RunSpec,
    ScheduleSpec as ScheduleSpec,
    TaskSpec as TaskSpec,
)
