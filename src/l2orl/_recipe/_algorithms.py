"""The recipe's algorithm specs: truncated training over a pipeline of persistent agents, or
lifetime training searched by a strategy."""

import dataclasses
import typing
from typing import Any, ClassVar

from .._lopt import AbstractLearnedOptimizer
from .._meta import FITNESS_SHAPINGS
from ._checks import RecipeError, at, mapping, one_of, positive, positive_int, text
from ._parts import EstimatorSpec, MetaOptimizerSpec, PipelineSpec, ScheduleSpec
from ._spec import _Spec


def _typed(spec: Any, field: str, cls: type) -> None:
    value = getattr(spec, field)
    if not isinstance(value, cls):
        raise RecipeError((field,), f"must be an l2orl.{cls.__name__}, got {value!r}")


@typing.no_type_check
@dataclasses.dataclass(frozen=True)
class TruncatedTrainingSpec(_Spec):
    """Truncated training ([`l2orl.TruncatedTraining`][]), `"name": "truncated"`: each task's
    agents in `pipeline`, their `K`-update unrolls from `schedule`, the meta-gradient by
    `estimator`, applied by `meta_optimizer`, each task's meta-gradient rescaled to norm
    `task_normalize` before the mean over tasks (null: not rescaled)."""

    NAME: ClassVar[str] = "truncated"
    DEFAULT_META_LOSS: ClassVar[str] = "agent"

    pipeline: PipelineSpec = dataclasses.field(default_factory=PipelineSpec)
    estimator: EstimatorSpec = dataclasses.field(default_factory=EstimatorSpec)
    schedule: ScheduleSpec = dataclasses.field(default_factory=ScheduleSpec)
    meta_optimizer: MetaOptimizerSpec = dataclasses.field(default_factory=MetaOptimizerSpec)
    task_normalize: float | None = None

    def __post_init__(self):
        for field, cls in (
            ("pipeline", PipelineSpec),
            ("estimator", EstimatorSpec),
            ("schedule", ScheduleSpec),
            ("meta_optimizer", MetaOptimizerSpec),
        ):
            _typed(self, field, cls)
        self._set("task_normalize", positive("task_normalize", self.task_normalize, optional=True))
        chunk, agents = self.estimator.agents_per_chunk, self.pipeline.agents
        if chunk is not None and agents % chunk:
            raise RecipeError(
                ("estimator", "agents_per_chunk"),
                f"must divide pipeline.agents ({agents}), got {chunk}",
            )

    def check(self, optimizer: AbstractLearnedOptimizer, meta_loss: Any, physics: bool) -> None:
        """What the spec can only check with the optimizer, the meta-loss and whether a task
        differentiates through physics."""
        fraction = self.estimator.coordinate_fraction
        if physics and isinstance(fraction, float):
            raise RecipeError(
                ("estimator", "coordinate_fraction"),
                f"{fraction} needs a meta-loss that depends on the meta-parameters only "
                "through the agents' parameters; with physics_gradient the environments' "
                "states carry derivatives too: use 'auto' or null (autodiff)",
            )
        estimator = self.estimator.build(optimizer, physics)
        with at("estimator"):
            estimator.check_optimizer(optimizer)
        if estimator.needs_differentiable_loss and not meta_loss.differentiable:
            raise RecipeError(
                ("estimator", "name"),
                f"estimator {self.estimator.name!r} needs a differentiable meta-loss; "
                f"the meta-loss {type(meta_loss).__name__} is not",
            )

    def follows_run_length(self) -> bool:
        """Whether the algorithm depends on the run's number of meta-steps."""
        return self.schedule.follows_run_length()

    def build(
        self, optimizer: AbstractLearnedOptimizer, tasks: tuple, meta_loss: Any, *, run: Any
    ) -> Any:
        """The [`l2orl.TruncatedTraining`][] of `tasks` (built [`l2orl.MetaTask`][]s) over a
        run of `run.meta_steps`."""
        from .._meta import TruncatedTraining

        physics = any(getattr(t.env, "physics_gradient", False) for t in tasks)
        return TruncatedTraining(
            optimizer,
            tasks,
            self.pipeline.build(),
            estimator=self.estimator.build(optimizer, physics),
            meta_loss=meta_loss,
            schedule=self.schedule.build(run.meta_steps),
            meta_optimizer=self.meta_optimizer.build(),
            task_normalize=self.task_normalize,
        )


_STRATEGY_KEYS = {
    "antithetic": ("pairs", "std", "meta_optimizer"),
    "evosax": ("evosax", "population_size", "std", "options", "params"),
}
"""The settings each search strategy takes."""

_STRATEGY_DEFAULTS = {
    "pairs": 8,
    "meta_optimizer": MetaOptimizerSpec(lr=1e-3, clip=None),
    "evosax": "Open_ES",
    "population_size": 16,
    "options": {},
    "params": {},
}
"""The defaults of the settings that only one strategy takes (`std` both take)."""


@typing.no_type_check
@dataclasses.dataclass(frozen=True)
class StrategySpec(_Spec):
    """How lifetime training searches: `name` (a name of [`l2orl.SEARCH_STRATEGIES`][]) and
    the settings it takes. `"antithetic"` ([`l2orl.AntitheticES`][]): `pairs` (8), `std`
    (0.01), `meta_optimizer` (Adam 1e-3, no clip). `"evosax"` ([`l2orl.EvosaxStrategy`][]):
    `evosax` (the evosax strategy's name, `"Open_ES"`), `population_size` (16), `std`
    (0.01; null keeps the strategy's own), `options` and `params` (JSON objects of its
    constructor's arguments and of overrides of its default params). A setting of another
    strategy must keep its default."""

    name: str = "antithetic"
    pairs: int = _STRATEGY_DEFAULTS["pairs"]
    std: float | None = 0.01
    meta_optimizer: MetaOptimizerSpec = dataclasses.field(
        default_factory=lambda: _STRATEGY_DEFAULTS["meta_optimizer"]
    )
    evosax: str = _STRATEGY_DEFAULTS["evosax"]
    population_size: int = _STRATEGY_DEFAULTS["population_size"]
    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    params: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        one_of("name", self.name, _STRATEGY_KEYS, "search strategy")
        positive_int("pairs", self.pairs)
        self._set("std", positive("std", self.std, optional=self.name == "evosax"))
        _typed(self, "meta_optimizer", MetaOptimizerSpec)
        text("evosax", self.evosax)
        positive_int("population_size", self.population_size)
        self._set("options", mapping("options", self.options))
        self._set("params", mapping("params", self.params))
        for key, default in _STRATEGY_DEFAULTS.items():
            if key not in _STRATEGY_KEYS[self.name] and getattr(self, key) != default:
                owners = sorted(k for k, keys in _STRATEGY_KEYS.items() if key in keys)
                raise RecipeError((key,), f"an option of {owners}, not {self.name!r}")
        self.build()  # the strategy checks the rest itself

    @classmethod
    def keys_for(cls, name: Any) -> tuple[str, ...]:
        keys = _STRATEGY_KEYS.get(name, tuple(f.name for f in dataclasses.fields(cls))[1:])
        return ("name", *keys)

    def build(self) -> Any:
        """The search strategy."""
        from .._meta import AntitheticES, EvosaxStrategy

        if self.name == "antithetic":
            return AntitheticES(self.pairs, self.std, self.meta_optimizer.build())
        return EvosaxStrategy(
            self.evosax, self.population_size, self.std, dict(self.options), dict(self.params)
        )


@typing.no_type_check
@dataclasses.dataclass(frozen=True)
class LifetimeTrainingSpec(_Spec):
    """Lifetime training ([`l2orl.LifetimeTraining`][]), `"name": "lifetime"`: each
    meta-step scores a population from `strategy` by `agents` fresh agents per member and
    task (1), each trained for `lifetime` inner updates (128), the members' losses shaped by
    `fitness_shaping` (a name of [`l2orl.FITNESS_SHAPINGS`][]; `"centered_ranks"`)."""

    NAME: ClassVar[str] = "lifetime"
    DEFAULT_META_LOSS: ClassVar[str] = "lifetime_return"

    lifetime: int = 128
    agents: int = 1
    strategy: StrategySpec = dataclasses.field(default_factory=StrategySpec)
    fitness_shaping: str = "centered_ranks"

    def __post_init__(self):
        positive_int("lifetime", self.lifetime)
        positive_int("agents", self.agents)
        _typed(self, "strategy", StrategySpec)
        one_of("fitness_shaping", self.fitness_shaping, FITNESS_SHAPINGS, "fitness shaping")

    def check(self, optimizer: AbstractLearnedOptimizer, meta_loss: Any, physics: bool) -> None:
        """Nothing more to check before the algorithm is built."""

    def follows_run_length(self) -> bool:
        """Whether the algorithm depends on the run's number of meta-steps (it does not)."""
        return False

    def build(
        self, optimizer: AbstractLearnedOptimizer, tasks: tuple, meta_loss: Any, *, run: Any
    ) -> Any:
        """The [`l2orl.LifetimeTraining`][] of `tasks` (built [`l2orl.MetaTask`][]s)."""
        from .._meta import LifetimeTraining

        return LifetimeTraining(
            optimizer,
            tasks,
            self.lifetime,
            strategy=self.strategy.build(),
            agents=self.agents,
            meta_loss=meta_loss,
            fitness_shaping=self.fitness_shaping,
        )


ALGORITHMS: dict[str, type] = {
    TruncatedTrainingSpec.NAME: TruncatedTrainingSpec,
    LifetimeTrainingSpec.NAME: LifetimeTrainingSpec,
}
"""The algorithm specs by their `"name"`."""


def read_algorithm(data: Any) -> Any:
    """The algorithm spec a JSON object describes, chosen by its `"name"` (default
    `"truncated"`)."""
    if isinstance(data, tuple(ALGORITHMS.values())):
        return data
    if not isinstance(data, dict):
        raise RecipeError((), f"must be an object with a 'name' of {sorted(ALGORITHMS)}")
    name = data.get("name", TruncatedTrainingSpec.NAME)
    one_of("name", name, ALGORITHMS, "algorithm")
    return ALGORITHMS[name].from_json(data)
