"""Generic properties of every estimator, meta-loss, schedule, learner and env family, each
parametrized over its registry in helpers.py: a new strategy joins a registry and is covered."""

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import l2orl
import l2orl.rl as rl
from helpers import (
    ENVS,
    ESTIMATOR_IDS,
    ESTIMATORS,
    KEY,
    LEARNERS,
    META_LOSSES,
    SCHEDULES,
    SEARCH_STRATEGIES,
    ids,
    meta_loss_task,
    toy_loop,
    toy_optimizer,
    toy_task,
    toy_training,
)


def _subclasses(base: type) -> set[type]:
    found, todo = set(), [base]
    while todo:
        for sub in todo.pop().__subclasses__():
            todo.append(sub)
            if sub.__module__.startswith("l2orl.") and not sub.__name__.startswith("Abstract"):
                found.add(sub)
    return found


def test_every_strategy_is_in_a_test_registry_and_a_config_registry():
    assert _subclasses(l2orl.AbstractEstimator) == {type(e) for e, _ in ESTIMATORS}
    assert _subclasses(l2orl.AbstractMetaLoss) == set(map(type, META_LOSSES))
    assert _subclasses(l2orl.AbstractTruncationSchedule) == set(map(type, SCHEDULES))
    assert _subclasses(rl.AbstractActorCritic) <= {type(learner) for learner, _ in LEARNERS}
    assert _subclasses(l2orl.AbstractSearchStrategy) == {type(s) for s in SEARCH_STRATEGIES}
    # What a config can name: every meta-loss, schedule, estimator and search strategy.
    assert set(l2orl.META_LOSSES.values()) == set(map(type, META_LOSSES))
    assert set(l2orl.SCHEDULES.values()) == set(map(type, SCHEDULES))
    assert set(l2orl.ESTIMATORS.values()) == _subclasses(l2orl.AbstractEstimator)
    assert set(l2orl.SEARCH_STRATEGIES.values()) == _subclasses(l2orl.AbstractSearchStrategy)
    assert {rl.env_family(name) for name in ENVS} == set(rl.ENV_FAMILIES)


SLOW = pytest.mark.slow
SHAPED = ("TruncatedES-ranks", "PES-zscore")
ESTIMATOR_PARAMS = [
    pytest.param(*pair, id=name, marks=[SLOW] if name in SHAPED else [])
    for pair, name in zip(ESTIMATORS, ESTIMATOR_IDS, strict=True)
]
"""Every estimator; the shaped ES variants (the same estimate, fitness shaping on top, checked
in tests/test_evolution.py) in the slow tier."""
HEAVY_LOSSES = l2orl.FreshRolloutLoss
"""A meta-loss whose contract compiles an actor-critic's fresh rollouts: the slow tier (its
scoring is checked below on the same learner)."""

# --- estimators ----------------------------------------------------------------------------


@pytest.mark.parametrize(("estimator", "meta_loss"), ESTIMATOR_PARAMS)
def test_estimator_contract(estimator, meta_loss):
    """One estimate: a finite meta-gradient shaped like the meta-parameters, agents aged by
    `K`, typed metrics; `on_reset` keeps the state's structure."""
    training = toy_training(4, "staggered", 2, estimator=estimator, meta_loss=meta_loss)
    state = training.init(KEY)
    agents, est = state.agents[0], state.estimator_states[0]
    optimizer = training.optimizer
    grad, new_agents, new_est, metrics = estimator.estimate(
        loop=toy_loop(meta_loss=meta_loss, length=3),
        optimizer=optimizer,
        agents=agents,
        state=est,
        key=jax.random.key(1),
    )
    meta_params = eqx.filter(optimizer, eqx.is_inexact_array)
    assert jax.tree.structure(grad) == jax.tree.structure(meta_params)
    leaves = zip(jax.tree.leaves(grad), jax.tree.leaves(meta_params), strict=True)
    shapes = [(g.shape, p.shape) for g, p in leaves]
    assert all(a == b for a, b in shapes)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grad))
    assert any(bool(jnp.any(g != 0)) for g in jax.tree.leaves(grad))
    np.testing.assert_array_equal(new_agents.age, agents.age + 3)
    assert isinstance(metrics, l2orl.EstimateMetrics)
    assert np.isfinite(float(metrics.meta_loss)) and int(metrics.inner_updates) >= 4 * 3
    assert jax.tree.structure(new_est) == jax.tree.structure(est)
    mask = jnp.asarray([True, False, True, False])
    reset = estimator.on_reset(new_est, new_agents, mask)
    assert jax.tree.structure(reset) == jax.tree.structure(est)
    assert [x.shape for x in jax.tree.leaves(reset)] == [x.shape for x in jax.tree.leaves(est)]


@pytest.mark.parametrize(("estimator", "meta_loss"), ESTIMATOR_PARAMS)
def test_estimator_meta_step_compiles_once(estimator, meta_loss):
    """Three meta-steps (with resets) through one compiled step: carries keep their types."""
    trainer = toy_training(
        4,
        "staggered",
        2,
        estimator=estimator,
        meta_loss=meta_loss,
        schedule=l2orl.LogUniformTruncation(1, 3),
    )
    traces = []

    @eqx.filter_jit
    def step(trainer, state):
        traces.append(1)
        return trainer.step(state)

    state = trainer.init(KEY)
    for _ in range(3):
        state, metrics = step(trainer, state)
    assert len(traces) == 1 and int(state.meta_step) == 3
    # Offsets floor(linspace(0, 1, 4)) = [0, 0, 0, 1]: at meta-step 2, three agents reset.
    assert np.isfinite(float(metrics["meta_loss"])) and float(metrics["toy/resets"]) == 3.0


# --- meta-losses ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "meta_loss",
    [
        pytest.param(m, id=type(m).__name__, marks=[SLOW] if isinstance(m, HEAVY_LOSSES) else [])
        for m in META_LOSSES
    ],
)
def test_meta_loss_contract(meta_loss):
    """A finite scalar after an unroll, the agent's structure kept, a gradient to the
    meta-parameters exactly when it says it is differentiable."""
    task = meta_loss_task(meta_loss)
    optimizer = toy_optimizer()
    learner = task.learner.init(task.env, KEY)
    opt_state = task.transform(optimizer).init(task.learner.params(learner))
    steps = meta_loss.env_steps(task.learner)
    assert isinstance(steps, int) and steps >= 0
    assert (steps > 0) == isinstance(meta_loss, l2orl.AgentLoss | l2orl.FreshRolloutLoss)

    loop = l2orl.InnerLoop(task, meta_loss, jnp.int32(3), 4, 1000)
    agent = l2orl.AgentsState(learner, opt_state, jnp.int32(0))

    def loss(params):
        static = eqx.filter(optimizer, eqx.is_inexact_array, inverse=True)
        value, agent_after, _ = loop.unroll(eqx.combine(params, static), agent, KEY)
        return value, agent_after.learner

    params = eqx.filter(optimizer, eqx.is_inexact_array)
    (value, state), grad = jax.value_and_grad(loss, has_aux=True)(params)
    assert value.shape == () and np.isfinite(float(value))
    assert jax.tree.structure(state) == jax.tree.structure(learner)
    nonzero = any(bool(jnp.any(g != 0)) for g in jax.tree.leaves(grad))
    # The toy's returns are differentiable, so only AgentLoss's flag is checked both ways.
    if meta_loss.differentiable:
        assert nonzero


# --- truncation schedules ------------------------------------------------------------------


@pytest.mark.parametrize("schedule", SCHEDULES, ids=ids(SCHEDULES))
def test_schedule_contract(schedule):
    """K is an int32 in [min_length, max_length] at every meta-step; `from_range` rebuilds it."""
    keys = jax.random.split(KEY, 64)
    for t in (0, 3, 9, 50):
        lengths = jax.vmap(lambda k, t=t: schedule.sample(k, jnp.int32(t)))(keys)
        assert lengths.dtype == jnp.int32
        assert int(lengths.min()) >= schedule.min_length
        assert int(lengths.max()) <= schedule.max_length
    rebuilt = type(schedule).from_range(schedule.min_length, schedule.max_length, 10)
    assert rebuilt.max_length == schedule.max_length


# --- learners ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("learner", "env_name"),
    [  # PPO's compiles longest: the slow tier (tests/test_learners.py trains it by default)
        pytest.param(*pair, marks=[SLOW] if isinstance(pair[0], rl.PPO) else [])
        for pair in LEARNERS
    ],
    ids=lambda x: type(x).__name__,
)
def test_learner_contract(learner, env_name):
    """init → step through any optax transform → typed metrics; the agent keeps its
    structure; `fresh_loss` is a finite scalar; a step calls `tx.update` as often as
    `optimizer_updates_per_step` says."""
    assert isinstance(learner, l2orl.AbstractLearner)
    env = None if env_name is None else rl.make(env_name)
    state = learner.init(env, KEY)
    counting = optax.GradientTransformation(
        lambda params: jnp.zeros((), jnp.int32), lambda updates, n, params=None: (updates, n + 1)
    )
    # learned optimizers: test_learners.py
    tx = optax.chain(optax.clip(1.0), optax.sgd(1e-2), counting)
    opt_state = tx.init(learner.params(state))

    @eqx.filter_jit
    def step_then_score(state, opt_state):
        state, opt_state, metrics = learner.step(env, state, tx, opt_state, jax.random.key(1))
        return state, opt_state, metrics, learner.fresh_loss(env, state, jax.random.key(2))

    new_state, new_opt_state, metrics, (loss, after) = step_then_score(state, opt_state)
    assert isinstance(metrics, l2orl.UpdateMetrics)
    for value in metrics.as_dict().values():
        assert value.shape == () and np.isfinite(float(value))
    assert jax.tree.structure(new_state) == jax.tree.structure(state)
    assert jax.tree.structure(new_opt_state) == jax.tree.structure(opt_state)
    moved = jax.tree.map(
        lambda a, b: bool(jnp.any(a != b)), learner.params(new_state), learner.params(state)
    )
    assert any(jax.tree.leaves(moved))
    assert loss.shape == () and np.isfinite(float(loss))
    assert eqx.tree_equal(learner.params(after), learner.params(new_state))
    assert isinstance(learner.env_steps_per_update(), int) and learner.env_steps_per_update() > 0
    assert int(new_opt_state[2]) == learner.optimizer_updates_per_step()


# --- environments --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ENVS)
def test_env_registry_contract(name):
    """Every family's names are available, have a default learner, and (but brax's, made in
    test_brax_env) make a gymnax-API env the learner trains on."""
    assert name in rl.available()
    learner = rl.default_learner(name, n_envs=2)
    assert isinstance(learner, rl.AbstractActorCritic) and learner.n_envs == 2
    if name.startswith("brax:"):
        return
    env = rl.make(name)
    obs, env_state = env.reset(KEY, env.default_params)
    assert obs.shape == env.observation_space(env.default_params).shape
    out = env.step(KEY, env_state, env.action_space(env.default_params).sample(KEY))
    assert len(out) == 6  # gymnax 1.0: obs, state, reward, terminated, truncated, info


@pytest.mark.parametrize("call", [rl.make, rl.default_learner, rl.env_family])
def test_unknown_env_names_raise_everywhere(call):
    with pytest.raises(ValueError, match=r"unknown environment 'nope'; available: .*Catch"):
        call("nope")


def test_fresh_rollout_loss_scores_the_network_on_fresh_environments():
    """The agent's loss on `n_envs` freshly reset environments: its own environments are left
    as they were, and the score is `learner.fresh_loss` of a learner that many envs wide."""
    meta_loss = l2orl.FreshRolloutLoss(8)
    task = meta_loss_task(meta_loss)
    state = task.learner.init(task.env, KEY)
    loss, after = meta_loss(task.learner, task.env, state, None, None, KEY)
    assert jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.all(a == b)), after, state))
    wide = rl.A2C(n_envs=8, rollout_length=5, network=task.learner.network)
    k_reset, k_loss = jax.random.split(KEY)
    fresh = eqx.tree_at(lambda s: s.network, wide.init(task.env, k_reset), state.network)
    np.testing.assert_allclose(loss, wide.fresh_loss(task.env, fresh, k_loss)[0], rtol=1e-6)
    assert meta_loss.env_steps(task.learner) == 8 * 5
    assert l2orl.AgentLoss().env_steps(task.learner) == 5
    # A meta-step's env-steps: 12 inner updates of 5 steps, and 3 unrolls scored by each loss.
    zero = jnp.zeros((), jnp.float32)
    metrics = l2orl.EstimateMetrics(zero, zero, zero, zero, zero, zero, jnp.int32(12), 3)
    assert (
        float(metrics.env_steps(l2orl.InnerLoop(task, meta_loss, 3, 3, 100))) == 12 * 5 + 3 * 8 * 5
    )
    assert (
        float(metrics.env_steps(l2orl.InnerLoop(task, l2orl.AgentLoss(), 3, 3, 100)))
        == 12 * 5 + 3 * 5
    )
    assert (
        float(metrics.env_steps(l2orl.InnerLoop(task, l2orl.UnrollReturn(), 3, 3, 100))) == 12 * 5
    )
    with pytest.raises(ValueError, match="FreshRolloutLoss n_envs must be a positive int"):
        l2orl.FreshRolloutLoss(0)
    toy = toy_task()
    with pytest.raises(
        ValueError, match=r"needs an l2orl.AbstractRolloutLearner .* got QuadraticLearner"
    ):
        meta_loss(toy.learner, None, toy.learner.init(None, KEY), None, None, KEY)


@pytest.mark.parametrize(
    "kind",  # the flag's one code path; the fresh rollout's compile runs in the slow tier
    [l2orl.AgentLoss, pytest.param(l2orl.FreshRolloutLoss, marks=pytest.mark.slow)],
)
def test_meta_losses_with_normalized_advantages_score_a_normalizing_learner(kind):
    """`normalize_advantages=True` scores the agent with `A2C(normalize_advantages=True)`'s
    loss, which differs from its raw loss; a learner without advantages is refused."""
    task = meta_loss_task(l2orl.FreshRolloutLoss(4))
    state = task.learner.init(task.env, KEY)
    raw, normalized = kind(), kind(normalize_advantages=True)
    loss, _ = normalized(task.learner, task.env, state, None, None, KEY)
    learner = dataclasses.replace(task.learner, normalize_advantages=True)
    expected, _ = raw(learner, task.env, state, None, None, KEY)
    np.testing.assert_allclose(loss, expected, rtol=1e-6)
    assert not np.isclose(loss, raw(task.learner, task.env, state, None, None, KEY)[0])
    toy = toy_task()
    with pytest.raises(ValueError, match=r"needs an l2orl.AbstractRolloutLearner"):
        normalized(toy.learner, None, toy.learner.init(None, KEY), None, None, KEY)
