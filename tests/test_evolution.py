"""Evolution strategies: fitness shaping of the ES estimators and of lifetime training, and
the search strategies (antithetic ES, evosax's)."""

import dataclasses
import json

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import l2orl
from helpers import KEY, toy_optimizer, toy_task, toy_training

# --- fitness shaping -----------------------------------------------------------------------


def test_centered_ranks_are_invariant_to_increasing_transforms():
    losses = jax.random.normal(KEY, (12,))
    ranks = l2orl.shape_fitness(losses, "centered_ranks")
    transformed = l2orl.shape_fitness(jnp.exp(3 * losses) + losses**3, "centered_ranks")
    np.testing.assert_array_equal(ranks, transformed)
    np.testing.assert_allclose(np.sort(ranks), np.linspace(-0.5, 0.5, 12), atol=1e-6)
    assert int(jnp.argmin(ranks)) == int(jnp.argmin(losses))  # the lowest loss: -0.5
    ties = l2orl.shape_fitness(jnp.asarray([2.0, 1.0, 1.0, 3.0]), "centered_ranks")
    np.testing.assert_allclose(ties, [1 / 6, -1 / 3, -1 / 3, 0.5], atol=1e-6)


def test_z_scores_are_invariant_to_shift_and_scale():
    losses = jax.random.normal(KEY, (12,))
    z = l2orl.shape_fitness(losses, "z_score")
    np.testing.assert_allclose(l2orl.shape_fitness(40.0 * losses - 7.0, "z_score"), z, atol=1e-5)
    assert abs(float(jnp.mean(z))) < 1e-6 and abs(float(jnp.std(z)) - 1) < 1e-5
    np.testing.assert_array_equal(l2orl.shape_fitness(jnp.ones(4), "z_score"), jnp.zeros(4))


@pytest.mark.parametrize("shaping", ["centered_ranks", "z_score"])
def test_a_non_finite_loss_counts_as_the_worst(shaping):
    losses = jnp.asarray([0.3, jnp.nan, -1.0, 2.0, jnp.inf, -jnp.inf])
    shaped = l2orl.shape_fitness(losses, shaping)
    assert bool(jnp.all(jnp.isfinite(shaped)))
    finite = shaped[jnp.asarray([0, 2, 3])]
    assert bool(jnp.all(shaped[jnp.asarray([1, 4, 5])] >= finite.max()))
    # The finite losses keep their order, shaped as if the others were not there (z-score).
    assert list(np.argsort(finite)) == [1, 0, 2]
    if shaping == "z_score":
        np.testing.assert_allclose(
            finite, l2orl.shape_fitness(losses[jnp.asarray([0, 2, 3])], shaping)
        )
    none_finite = l2orl.shape_fitness(jnp.full(4, jnp.nan), shaping)
    assert bool(jnp.all(none_finite == none_finite[0]))
    # Without shaping the losses pass through, NaN included.
    assert bool(jnp.isnan(l2orl.shape_fitness(losses, "none")[1]))


def test_shaping_names_are_checked():
    assert l2orl.FITNESS_SHAPINGS == ("none", "centered_ranks", "z_score")
    for make in (l2orl.TruncatedES, l2orl.PES):
        assert make().fitness_shaping == "none"
        with pytest.raises(ValueError, match=r"fitness_shaping must be one of .* got 'ranks'"):
            make(fitness_shaping="ranks")
    assert _lifetime(l2orl.AntitheticES()).fitness_shaping == "centered_ranks"
    with pytest.raises(ValueError, match=r"fitness_shaping must be one of .* got 'ranks'"):
        _lifetime(l2orl.AntitheticES(), fitness_shaping="ranks")
    with pytest.raises(ValueError, match="got 'zscore'"):
        l2orl.shape_fitness(jnp.zeros(3), "zscore")


def _lifetime(strategy, *, lifetime=5, **kwargs) -> l2orl.LifetimeTraining:
    """Lifetime training of the toy optimizer on 2 fresh toy agents per member."""
    settings = {"agents": 2} | kwargs
    return l2orl.LifetimeTraining(
        toy_optimizer(), (toy_task(),), lifetime, strategy=strategy, **settings
    )


class Cubed(l2orl.AbstractMetaLoss):
    """An increasing transform of another meta-loss: `L + L³`."""

    inner: l2orl.AbstractMetaLoss
    differentiable = False

    def env_steps(self, learner) -> int:
        return self.inner.env_steps(learner)

    def __call__(self, learner, env, state, unroll, active, key):
        loss, state = self.inner(learner, env, state, unroll, active, key)
        return loss + loss**3, state


@eqx.filter_jit
def _estimate(estimator, meta_loss, n_agents, length=3):
    """One estimate from `n_agents` fresh toy agents (fixed keys: the same noise for every
    estimator)."""
    optimizer, task = toy_optimizer(), toy_task()
    agents = task.fresh_agents(optimizer, jax.random.split(KEY, n_agents))
    params = eqx.filter(optimizer, eqx.is_inexact_array)
    return estimator.estimate(
        loop=l2orl.InnerLoop(task, meta_loss, length, length, 1000),
        optimizer=optimizer,
        agents=agents,
        state=estimator.init(params, agents, KEY),
        key=jax.random.key(1),
    )


def _flat(tree):
    return jnp.concatenate([x.ravel() for x in jax.tree.leaves(tree)])


def test_shaped_es_estimates_follow_the_shaping_properties():
    """Same noise and unrolls (same key): ranks ignore an increasing transform of the losses;
    z-scores rescale the unshaped estimate by one positive factor."""
    n_agents, loss = 16, l2orl.AgentLoss()
    ranks = l2orl.TruncatedES(fitness_shaping="centered_ranks")
    by_ranks, *_ = _estimate(ranks, loss, n_agents)
    by_ranks_cubed, *_ = _estimate(ranks, Cubed(loss), n_agents)
    np.testing.assert_array_equal(_flat(by_ranks), _flat(by_ranks_cubed))
    raw, _, _, raw_metrics = _estimate(l2orl.TruncatedES(), loss, n_agents)
    z, _, _, z_metrics = _estimate(l2orl.TruncatedES(fitness_shaping="z_score"), loss, n_agents)
    ratio = _flat(raw) / _flat(z)
    assert float(ratio.min()) > 0
    np.testing.assert_allclose(ratio, ratio[0], rtol=1e-3)
    # Every loss finite: the reported meta-loss is the pairs' mean either way.
    np.testing.assert_allclose(float(z_metrics.meta_loss), float(raw_metrics.meta_loss), rtol=1e-5)
    assert not np.allclose(_flat(by_ranks), _flat(z))


DIVERGING = [
    # σ = 6 over 24 updates: some perturbed step sizes blow the toy agents up to inf/NaN.
    l2orl.TruncatedES(std=6.0, fitness_shaping="centered_ranks"),
    l2orl.PES(std=6.0, fitness_shaping="z_score"),
]


@pytest.mark.parametrize("estimator", DIVERGING, ids=lambda e: type(e).__name__)
def test_a_diverged_member_leaves_a_shaped_estimate_finite(estimator):
    n_agents, loss = 8, l2orl.AgentLoss()
    unshaped = dataclasses.replace(estimator, fitness_shaping="none")
    raw, *_, raw_metrics = _estimate(unshaped, loss, n_agents, length=24)
    assert not bool(jnp.all(jnp.isfinite(_flat(raw))))  # a member diverged
    assert not np.isfinite(float(raw_metrics.meta_loss))
    grad, *_, metrics = _estimate(estimator, loss, n_agents, length=24)
    assert bool(jnp.all(jnp.isfinite(_flat(grad)))) and bool(jnp.any(_flat(grad) != 0))
    assert np.isfinite(float(metrics.meta_loss))  # the mean of the finite losses


def test_a_shaped_meta_step_with_diverged_agents_is_applied_and_they_persist():
    """PES with z-scores: the step is applied (not skipped) although some particles diverged;
    their non-finite parameters persist into the next meta-step, whose estimate stays finite."""
    trainer = toy_training(
        8,
        estimator=DIVERGING[1],
        meta_loss=l2orl.AgentLoss(),
        schedule=l2orl.ConstantTruncation(24),
    )
    step = eqx.filter_jit(type(trainer).step)
    state = trainer.init(KEY)
    diverged = []
    for _ in range(2):
        new, metrics = step(trainer, state)
        assert int(new.skipped) == 0 and not eqx.tree_equal(new.meta_params, state.meta_params)
        assert np.isfinite(float(metrics["meta_loss"])) and np.isfinite(
            float(metrics["grad_norm"])
        )
        diverged.append(~jnp.all(jnp.isfinite(new.agents[0].learner.x), axis=1))
        state = new
    assert bool(jnp.any(diverged[0])) and bool(jnp.all(diverged[1] >= diverged[0]))


SHAPINGS = ("centered_ranks", "none")

# --- search strategies ---------------------------------------------------------------------


def _evosax(name, *, lifetime=5, fitness_shaping="centered_ranks", **kwargs):
    options = {"optimizer": optax.adam(0.2)} if name == "Open_ES" else {}
    settings = {"population_size": 8, "std": 0.1, "options": options} | kwargs
    strategy = l2orl.EvosaxStrategy(name, **settings)
    return _lifetime(strategy, lifetime=lifetime, fitness_shaping=fitness_shaping)


def _final_loss(optimizer, task, lifetime=5):
    """The mean final-update loss of 16 held-out fresh toy agents trained by `optimizer`."""
    keys = jax.random.split(jax.random.key(99), 16)
    agents = task.fresh_agents(optimizer, keys)
    loop = l2orl.InnerLoop(task, l2orl.LifetimeReturn(), lifetime, lifetime, lifetime)
    run = jax.vmap(lambda agent, key: loop.unroll(optimizer, agent, key)[0])
    return float(jnp.mean(run(agents, keys)))


@pytest.mark.parametrize(
    "strategy",  # CMA-ES's covariance update compiles longest: the slow tier
    ["Open_ES", "SNES", pytest.param("CMA_ES", marks=pytest.mark.slow)],
)
def test_evosax_strategies_improve_the_toy_meta_objective_deterministically(strategy):
    es = _evosax(strategy)
    step = eqx.filter_jit(type(es).step)
    runs = []
    for _ in range(2):
        state = es.init(KEY)
        for _ in range(15):
            state, metrics = step(es, state)
        runs.append(state)
    assert eqx.tree_equal(runs[0], runs[1])  # a function of the seed alone
    assert type(runs[0]) is l2orl.LifetimeState and int(runs[0].meta_step) == 15
    assert int(runs[0].skipped) == 0 and float(metrics["diverged"]) == 0
    # 2 agents x 8 members x 5 updates, one env-step each
    assert float(metrics["env_steps"]) == 80 and np.isfinite(float(metrics["toy/late_return"]))
    task = es.tasks[0]
    before, after = _final_loss(es.optimizer, task), _final_loss(es.optimizer_at(state), task)
    assert after < 0.5 * before, (before, after)


@pytest.mark.parametrize("strategy", ["antithetic", "Open_ES"])
def test_shaping_keeps_a_generation_with_diverged_members(strategy):
    """σ = 6 over 24 updates: some members blow up. Unshaped, the mean turns NaN and the
    generation is skipped; with centered ranks they rank worst and it is applied."""
    if strategy == "antithetic":
        es = l2orl.AntitheticES(pairs=4, std=6.0, meta_optimizer=optax.adam(0.2))
        shaped, unshaped = (_lifetime(es, lifetime=24, fitness_shaping=f) for f in SHAPINGS)
    else:
        shaped, unshaped = (
            _evosax(strategy, std=6.0, lifetime=24, fitness_shaping=f) for f in SHAPINGS
        )
    for es, skipped in ((shaped, 0), (unshaped, 1)):
        state = es.init(KEY)
        new, metrics = eqx.filter_jit(type(es).step)(es, state)
        assert float(metrics["diverged"]) > 0 and int(new.skipped) == skipped
        mean = _flat(es.optimizer_at(new))
        assert bool(jnp.all(jnp.isfinite(mean)))
        assert bool(jnp.any(mean != _flat(es.optimizer))) == (skipped == 0)
        assert np.isfinite(float(metrics["meta_loss"]))  # the finite members' mean


@pytest.mark.slow  # three runs, each compiling its generation
def test_evosax_run_checkpoints_and_resumes_to_the_same_state(tmp_path):
    es = _evosax("SNES")
    run = {"progress": False}
    whole = l2orl.meta_train(es, 4, tmp_path / "whole", checkpoint_every=2, **run)
    l2orl.meta_train(es, 2, tmp_path / "resumed", **run)
    resumed = l2orl.meta_train(es, 4, tmp_path / "resumed", **run)
    assert eqx.tree_equal(whole, resumed) and int(resumed.meta_step) == 4
    lines = (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["meta_step"] for line in lines] == [1, 2, 3, 4]
    config = json.loads((tmp_path / "whole" / "config.json").read_text())
    assert config["strategy"]["strategy"] == "SNES" and config["tasks"][0]["name"] == "toy"
    saved = l2orl.load(tmp_path / "whole" / "optimizer.l2o")
    assert eqx.tree_equal(saved, es.optimizer_at(whole))
    with pytest.raises(ValueError, match="population_size: 8 in the folder, 16 now"):
        l2orl.meta_train(_evosax("SNES", population_size=16), 4, tmp_path / "whole", **run)


def test_evosax_arguments_are_checked():
    with pytest.raises(ValueError, match=r"unknown evosax strategy 'CMA'; expected .*'CMA_ES'"):
        _evosax("CMA")
    with pytest.raises(ValueError, match="unknown evosax strategy 'SimpleGA'"):
        _evosax("SimpleGA")  # population-based: no mean to be the learned optimizer
    with pytest.raises(ValueError, match="Open_ES refused population_size=7"):
        _evosax("Open_ES", population_size=7)  # antithetic pairs
    with pytest.raises(ValueError, match="GradientlessDescent has no initial standard dev"):
        _evosax("GradientlessDescent")
    with pytest.raises(ValueError, match="fitness_shaping must be one of"):
        _evosax("SNES", fitness_shaping="ranks")
    with pytest.raises(ValueError, match="lifetime must be a positive int, got 0"):
        _evosax("SNES", lifetime=0)
