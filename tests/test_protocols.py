"""The meta layer's protocols from a user's side: a meta-algorithm and a search strategy
written outside the library run through `l2orl.meta_train` and `l2orl.LifetimeTraining`."""

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import pytest
from jaxtyping import Array, Float, Int, PyTree

import l2orl
import l2orl.rl as rl
from helpers import KEY, toy_loop, toy_optimizer, toy_task


class HillClimbState(l2orl.AbstractMetaState):
    meta_params: PyTree
    best: Float[Array, ""]
    meta_step: Int[Array, ""]
    skipped: Int[Array, ""]
    key: jax.Array


class HillClimb(l2orl.AbstractMetaAlgorithm):
    """Keep a Gaussian perturbation of the meta-parameters when it lowers the meta-loss of
    one fresh toy agent's `length` updates (the same agent and keys for every candidate)."""

    optimizer: l2orl.AbstractLearnedOptimizer
    std: float = eqx.field(static=True, default=0.3)

    def _static(self):
        return eqx.filter(self.optimizer, eqx.is_array, inverse=True)

    def _loss(self, meta_params):
        loop = toy_loop(length=3)
        optimizer = eqx.combine(
            meta_params, eqx.filter(self.optimizer, eqx.is_array, inverse=True)
        )
        agents = loop.task.fresh_agents(optimizer, KEY[None])
        agent = jax.tree.map(lambda x: x[0], agents)
        loss, _, _ = loop.unroll(optimizer, agent, KEY)
        return loss

    def init(self, key):
        params = eqx.filter(self.optimizer, eqx.is_array)
        zero = jnp.zeros((), jnp.int32)
        return HillClimbState(params, self._loss(params), zero, zero, key)

    def step(self, state):
        key, k = jax.random.split(state.key)
        leaves, tree = jax.tree.flatten(state.meta_params)
        keys = jax.random.split(k, len(leaves))
        noise = [
            self.std * jax.random.normal(k, x.shape, x.dtype)
            for k, x in zip(keys, leaves, strict=True)
        ]
        candidate = jax.tree.unflatten(tree, [x + n for x, n in zip(leaves, noise, strict=True)])
        loss = self._loss(candidate)
        better = jnp.isfinite(loss) & (loss < state.best)
        params = jax.tree.map(lambda c, p: jnp.where(better, c, p), candidate, state.meta_params)
        best = jnp.where(better, loss, state.best)
        new = HillClimbState(params, best, state.meta_step + 1, state.skipped, key)
        return new, {"meta_loss": best, "env_steps": jnp.float32(0.0), "skipped": jnp.float32(0)}

    def optimizer_at(self, state):
        return eqx.combine(
            state.meta_params, eqx.filter(self.optimizer, eqx.is_array, inverse=True)
        )

    def state_shapes(self, key):
        return jax.eval_shape(self.init, key)

    def place(self, state):
        return state

    def config(self):
        return {"algorithm": "HillClimb", "std": self.std}


def test_a_users_meta_algorithm_runs_checkpoints_and_resumes_through_meta_train(tmp_path):
    algorithm = HillClimb(toy_optimizer())
    start = algorithm.init(KEY)
    whole = l2orl.meta_train(algorithm, 6, progress=False)  # in memory
    assert type(whole) is HillClimbState and int(whole.meta_step) == 6
    assert float(whole.best) < float(start.best)  # six draws of a 2-parameter search
    l2orl.meta_train(algorithm, 3, tmp_path, checkpoint_every=1, progress=False)
    resumed = l2orl.meta_train(algorithm, 6, tmp_path, checkpoint_every=1, progress=False)
    assert jax.tree.all(jax.tree.map(jnp.array_equal, resumed, whole))
    assert isinstance(algorithm.optimizer_at(resumed), l2orl.PerCoordinateOptimizer)
    with pytest.raises(ValueError):  # another configuration in the same folder
        l2orl.meta_train(HillClimb(toy_optimizer(), std=0.1), 7, tmp_path, progress=False)


class RandomSearch(l2orl.AbstractSearchStrategy):
    """Move the mean to the best member of a Gaussian population around it."""

    population_size: int = eqx.field(static=True, default=4)
    std: float = eqx.field(static=True, default=0.2)

    def bind(self, meta_params):
        return self

    def init(self, key, meta_params):
        return meta_params

    def ask(self, key, state):
        leaves, tree = jax.tree.flatten(state)
        keys = jax.random.split(key, len(leaves))
        members = [
            x + self.std * jax.random.normal(k, (self.population_size, *x.shape), x.dtype)
            for k, x in zip(keys, leaves, strict=True)
        ]
        return jax.tree.unflatten(tree, members), state

    def tell(self, key, population, asked, fitness):
        return jax.tree.map(lambda p: p[jnp.argmin(fitness)], population)

    def mean(self, state):
        return state

    def config(self):
        return {"name": "RandomSearch", "population_size": self.population_size}


def test_a_users_search_strategy_drives_lifetime_training():
    training = l2orl.LifetimeTraining(
        toy_optimizer(), (toy_task(),), lifetime=3, strategy=RandomSearch(),
        meta_loss=l2orl.AgentLoss(), fitness_shaping="none",
    )  # fmt: skip
    state = l2orl.meta_train(training, 2, progress=False)
    moved = eqx.filter(training.optimizer_at(state), eqx.is_array)
    start = eqx.filter(toy_optimizer(), eqx.is_array)
    assert not jax.tree.all(jax.tree.map(jnp.array_equal, moved, start))
    assert training.config()["strategy"]["name"] == "RandomSearch"


def test_search_strategies_registry_names_the_librarys_strategies():
    assert set(l2orl.SEARCH_STRATEGIES.values()) == {l2orl.AntitheticES, l2orl.EvosaxStrategy}
    for name, cls in l2orl.SEARCH_STRATEGIES.items():
        assert issubclass(cls, l2orl.AbstractSearchStrategy), name


def test_rollout_learners_are_the_actor_critics_and_others_are_refused():
    learner = rl.A2C(n_envs=2, rollout_length=3, network=rl.NetworkSpec("mlp", (8,), "relu"))
    assert isinstance(learner, l2orl.AbstractRolloutLearner) and learner.n_envs == 2
    env = rl.make("Catch")
    state = learner.init(env, KEY)
    wide = dataclasses.replace(learner, n_envs=5)
    fresh = wide.with_fresh_envs(env, state, jax.random.key(1))
    assert jax.tree.all(jax.tree.map(jnp.array_equal, wide.params(fresh), learner.params(state)))
    assert jax.tree.leaves(fresh.env_state)[0].shape[0] == 5
    with pytest.raises(TypeError, match="abstract"):  # the protocol alone makes no learner
        l2orl.AbstractRolloutLearner()
    toy = toy_task().learner
    with pytest.raises(ValueError, match=r"needs an l2orl\.AbstractRolloutLearner"):
        l2orl.FreshRolloutLoss(4)(toy, None, toy.init(None, KEY), None, None, KEY)
