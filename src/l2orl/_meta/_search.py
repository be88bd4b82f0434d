"""Search strategies for lifetime training: ask for a population of meta-parameters, be told
each member's fitness, move the search distribution."""

import abc
import dataclasses
import inspect
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Float, PyTree

from .._custom_types import PRNGKey
from .._utils import check_positive, check_positive_int
from ._estimators import noise


def _json(x: Any) -> Any:
    """A setting as JSON: itself, an array's values, or another object's type name."""
    if x is None or isinstance(x, bool | int | float | str):
        return x
    if isinstance(x, jax.Array | np.ndarray):
        return np.asarray(x).tolist()
    return type(x).__name__


def _strong(tree: PyTree) -> PyTree:
    """`tree` with every leaf a strongly typed array of its dtype (evosax's states hold
    Python scalars, which would be weakly typed and make the compiled step retrace)."""
    return jax.tree.map(lambda x: jnp.asarray(x, jnp.result_type(x)), tree)


class AbstractSearchStrategy(eqx.Module):
    """How [`l2orl.LifetimeTraining`][] searches meta-parameter space: `init` centres a
    search state on the initial meta-parameters, `ask` draws a population (a pytree like
    them with a leading axis of `population_size` members), `tell` moves the state by the
    members' fitness (lower is better; already shaped), and `mean` is the learned optimizer's
    meta-parameters."""

    population_size: eqx.AbstractVar[int]

    @abc.abstractmethod
    def bind(self, meta_params: PyTree) -> "AbstractSearchStrategy":
        """The strategy for meta-parameters shaped like `meta_params` (what it builds on
        them), checked."""

    @abc.abstractmethod
    def init(self, key: PRNGKey, meta_params: PyTree) -> PyTree:
        """The search state centred on `meta_params`."""

    @abc.abstractmethod
    def ask(self, key: PRNGKey, state: PyTree) -> tuple[PyTree, PyTree]:
        """**Returns:** `(population, asked)`, `asked` what `tell` needs of this draw."""

    @abc.abstractmethod
    def tell(
        self,
        key: PRNGKey,
        population: PyTree,
        asked: PyTree,
        fitness: Float[jax.Array, " population"],
    ) -> PyTree:
        """The search state after `population` (drawn from `asked`) scored `fitness`."""

    @abc.abstractmethod
    def mean(self, state: PyTree) -> PyTree:
        """The search distribution's centre: the meta-parameters it stands for."""

    @abc.abstractmethod
    def config(self) -> dict:
        """The strategy's settings as JSON."""


class AntitheticES(AbstractSearchStrategy):
    """Antithetic evolution strategies (OPEN's): `pairs` perturbations `±ε_j`,
    `ε_j ~ N(0, σ²)`, the gradient estimate `ĝ = mean_j (F⁺_j − F⁻_j)·ε_j / (2σ²)` from the
    members' fitness `F`, applied to the mean by `meta_optimizer`.

    **Arguments:** `pairs` (8: a population of 16), `std` σ (0.01), `meta_optimizer`
    (`optax.adam(1e-3)`; the estimate has the scale of the shaped fitness, so a scale-free
    optimizer suits it).
    """

    pairs: int = eqx.field(static=True, default=8)
    population_size: int = eqx.field(static=True, init=False)
    std: float = eqx.field(static=True, default=0.01)
    meta_optimizer: optax.GradientTransformation = eqx.field(static=True, default=optax.adam(1e-3))

    def __post_init__(self):
        self.population_size = 2 * self.pairs if isinstance(self.pairs, int) else 0

    def __check_init__(self):
        check_positive_int("pairs", self.pairs)
        check_positive("std", self.std)

    def bind(self, meta_params):
        return self

    def init(self, key, meta_params):
        return (meta_params, self.meta_optimizer.init(meta_params))

    def ask(self, key, state):
        mean, _ = state
        eps = noise(mean, key, self.pairs, self.std)
        population = jax.tree.map(lambda m, e: jnp.concatenate([m + e, m - e]), mean, eps)
        return population, (state, eps)

    def tell(self, key, population, asked, fitness):
        (mean, opt_state), eps = asked
        scale = (fitness[: self.pairs] - fitness[self.pairs :]) / (2.0 * self.std**2)
        grad = jax.tree.map(lambda e: jnp.tensordot(scale, e, axes=1) / self.pairs, eps)
        updates, opt_state = self.meta_optimizer.update(grad, opt_state, mean)
        return (optax.apply_updates(mean, updates), opt_state)

    def mean(self, state):
        return state[0]

    def config(self):
        return {
            "strategy": type(self).__name__,
            "pairs": self.pairs,
            "std": self.std,
            "meta_optimizer": _json(self.meta_optimizer),
        }


class EvosaxStrategy(AbstractSearchStrategy):
    """Any distribution-based [evosax](https://github.com/RobertTLange/evosax) strategy.

    Strategies whose update weights members by their rank (evosax's
    `weights_fitness_shaping_fn`: CMA_ES, SNES, xNES, Sep_CMA_ES, ...) keep their weights,
    computed from the shaped fitness, so there the shaping only decides where diverged
    members rank; every other strategy (Open_ES, PGPE, ARS, ...) is told the shaped fitness in
    place of its own shaping, unless `options` names a `fitness_shaping_fn`. CMA-ES keeps a
    full covariance matrix (`d²` floats, an eigendecomposition per generation): fine up to a
    few thousand meta-parameters, slow beyond; SNES and OpenES are linear in `d`.

    **Arguments:** `name` (one of evosax's `distribution_based_algorithms`: `"Open_ES"`,
    `"SNES"`, `"CMA_ES"`, ...), `population_size` (16), `std` (0.01: the initial standard
    deviation, through the strategy's `std_init` parameter or its `std_schedule` option; None
    keeps the strategy's default), `options` (keyword arguments of the strategy's
    constructor, e.g. `{"optimizer": optax.adam(1e-2)}` for Open_ES), `params` (overrides of
    its `default_params` fields), `solution` (the meta-parameters' structure: set by
    [`l2orl.LifetimeTraining`][]).

    **Raises:** `ValueError` for an unknown strategy, a population size or option the
    strategy refuses, or a `std` it has no place for.
    """

    name: str = eqx.field(static=True, default="Open_ES")
    population_size: int = eqx.field(static=True, default=16)
    std: float | None = eqx.field(static=True, default=0.01)
    options: dict[str, Any] = eqx.field(default_factory=dict)
    params: dict[str, Any] = eqx.field(default_factory=dict)
    solution: PyTree | None = None

    def __check_init__(self):
        from evosax.algorithms import distribution_based_algorithms

        check_positive_int("population_size", self.population_size)
        check_positive("std", self.std, optional=True)
        if self.name not in distribution_based_algorithms:
            raise ValueError(
                f"unknown evosax strategy {self.name!r}; expected a distribution-based "
                f"one: {sorted(distribution_based_algorithms)}"
            )

    def bind(self, meta_params):
        bound = dataclasses.replace(self, solution=meta_params)
        bound._strategy()  # the strategy checks its own arguments
        return bound

    def _strategy(self) -> tuple[Any, Any]:
        """The evosax strategy object over `solution`, and its params."""
        from evosax.algorithms import distribution_based_algorithms
        from evosax.core.fitness_shaping import (
            identity_fitness_shaping_fn,
            weights_fitness_shaping_fn,
        )

        cls = distribution_based_algorithms[self.name]
        signature = inspect.signature(cls).parameters
        options = dict(self.options)
        if signature["fitness_shaping_fn"].default is not weights_fitness_shaping_fn:
            options.setdefault("fitness_shaping_fn", identity_fitness_shaping_fn)
        try:
            strategy = cls(population_size=self.population_size, solution=self.solution, **options)
            params = strategy.default_params
            if self.std is not None and hasattr(params, "std_init"):
                params = params.replace(std_init=jnp.asarray(self.std, jnp.float32))
            elif self.std is not None and "std_schedule" in signature:
                schedule = {"std_schedule": optax.constant_schedule(self.std)}
                strategy = cls(
                    population_size=self.population_size,
                    solution=self.solution,
                    **{**schedule, **options},
                )
            elif self.std is not None:
                raise ValueError(
                    f"evosax's {self.name} has no initial standard deviation to set; pass std=None"
                )
            params = params.replace(**self.params)
        except (AssertionError, TypeError) as error:
            raise ValueError(
                f"evosax's {self.name} refused population_size={self.population_size}, "
                f"options={sorted(self.options)} or params={sorted(self.params)}: "
                f"{error or type(error).__name__}"
            ) from None
        return strategy, params

    def init(self, key, meta_params):
        strategy, params = self._strategy()
        return _strong(strategy.init(key, meta_params, params))

    def ask(self, key, state):
        strategy, params = self._strategy()
        return strategy.ask(key, state, params)

    def tell(self, key, population, asked, fitness):
        strategy, params = self._strategy()
        told, _ = strategy.tell(key, population, fitness, asked, params)
        return _strong(told)

    def mean(self, state):
        return self._strategy()[0].get_mean(state)

    def config(self):
        return {
            "strategy": self.name,
            "population_size": self.population_size,
            "std": self.std,
            "options": {k: _json(v) for k, v in self.options.items()},
            "params": {k: _json(v) for k, v in self.params.items()},
        }


SEARCH_STRATEGIES: dict[str, type[AbstractSearchStrategy]] = {
    "antithetic": AntitheticES,
    "evosax": EvosaxStrategy,
}
"""The search strategies by the name a `MetaTrainConfig` gives them."""
