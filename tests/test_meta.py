import dataclasses
import inspect
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import l2orl
import l2orl.rl as rl
from helpers import KEY, SMALL_NET, toy_loop, toy_optimizer, toy_task, toy_training
from meta_helpers import QuadraticLearner


def _cosine(a, b):
    a = jnp.concatenate([x.ravel() for x in jax.tree.leaves(a)])
    b = jnp.concatenate([x.ravel() for x in jax.tree.leaves(b)])
    return float(a @ b / (jnp.linalg.norm(a) * jnp.linalg.norm(b)))


# --- schedules and pipelines -------------------------------------------------------------


def test_truncation_schedules():
    keys = jax.random.split(KEY, 2000)
    assert int(l2orl.ConstantTruncation(4).sample(KEY, jnp.int32(7))) == 4
    lengths = np.asarray(
        jax.vmap(lambda k: l2orl.LogUniformTruncation(2, 50).sample(k, jnp.int32(0)))(keys)
    )
    assert lengths.min() == 2 and lengths.max() == 50
    # Log-uniform: about as many draws in [2, 10) as in [10, 50].
    assert 0.8 < np.mean(lengths < 10) / np.mean(lengths >= 10) < 1.25
    curriculum = l2orl.CurriculumTruncation(2, 10, 100)
    assert [int(curriculum.sample(KEY, jnp.int32(t))) for t in (0, 50, 100, 500)] == [2, 6, 10, 10]
    assert curriculum.max_length == 10
    with pytest.raises(ValueError, match="min_length 5 exceeds max_length 3"):
        l2orl.LogUniformTruncation(5, 3)
    with pytest.raises(ValueError, match="length must be a positive int, got 0"):
        l2orl.ConstantTruncation(0)


def test_staggered_pipeline_follows_the_reference_rule():
    pipeline = l2orl.Pipeline(n_agents=8, reset_interval=6)
    offsets = pipeline.offsets(KEY)
    np.testing.assert_array_equal(offsets, np.floor(np.linspace(0, 5, 8)).astype(int))
    masks = np.stack([np.asarray(pipeline.reset_mask(offsets, jnp.int32(t))) for t in range(12)])
    for j in range(8):  # each agent resets once per interval, at t ≡ its offset (mod M)
        np.testing.assert_array_equal(np.nonzero(masks[:, j])[0], [offsets[j], offsets[j] + 6])


def test_random_and_no_pipeline():
    random = l2orl.Pipeline(64, 10, "random").offsets(KEY)
    assert random.min() >= 0 and random.max() < 10 and len(np.unique(random)) > 5
    none = l2orl.Pipeline(4, 10, "none")
    assert not any(
        bool(jnp.any(none.reset_mask(none.offsets(KEY), jnp.int32(t)))) for t in range(30)
    )
    with pytest.raises(ValueError, match="unknown pipeline kind 'stagger'"):
        l2orl.Pipeline(4, 10, "stagger")


# --- estimators --------------------------------------------------------------------------


def _agents(task: l2orl.MetaTask, n: int, optimizer=None) -> l2orl.AgentsState:
    return task.fresh_agents(optimizer or toy_optimizer(), jax.random.split(KEY, n))


def test_tbptt_equals_the_gradient_of_the_full_unroll():
    """When K covers the whole horizon, truncated BPTT is exactly jax.grad of the unrolled loss."""
    task, optimizer = toy_task(), toy_optimizer()
    agents = _agents(task, 3, optimizer)
    params, static = eqx.partition(optimizer, eqx.is_inexact_array)
    loop = l2orl.InnerLoop(task, l2orl.AgentLoss(), jnp.int32(6), 6, 1000)
    grad, *_ = l2orl.TruncatedBPTT().estimate(
        loop=loop, optimizer=optimizer, agents=agents, state=None, key=jax.random.key(5)
    )

    def full_loss(params):  # the same unroll written as a plain Python loop
        optimizer = eqx.combine(params, static)
        tx = optimizer.as_optax()
        losses = []
        for j in range(3):
            s = jax.tree.map(lambda x, j=j: x[j], agents.learner)
            o = tx.init(task.learner.params(s))
            for _ in range(6):
                s, o, _ = task.learner.step(None, s, tx, o, None)
            losses.append(task.learner.fresh_loss(None, s, None)[0])
        return sum(losses) / 3

    expected = jax.grad(full_loss)(params)
    for a, b in zip(jax.tree.leaves(grad), jax.tree.leaves(expected), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_tbptt_in_agent_chunks_equals_all_agents_at_once():
    """Chunks of 2 of 6 agents (scanned) give the same meta-gradient, agents and meta-loss."""
    optimizer = toy_optimizer()
    args = dict(
        loop=toy_loop(length=3),
        optimizer=optimizer,
        agents=_agents(toy_task(), 6, optimizer),
        state=None,
        key=KEY,
    )
    whole = l2orl.TruncatedBPTT().estimate(**args)
    chunked = l2orl.TruncatedBPTT(agents_per_chunk=2).estimate(**args)
    assert jax.tree.structure(whole) == jax.tree.structure(chunked)
    for a, b in zip(jax.tree.leaves(whole), jax.tree.leaves(chunked), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="agents_per_chunk=4 must divide task 'toy'"):
        l2orl.TruncatedBPTT(agents_per_chunk=4).estimate(**args)
    with pytest.raises(ValueError, match="agents_per_chunk must be a positive int or None, got 0"):
        l2orl.TruncatedBPTT(agents_per_chunk=0)


@pytest.mark.parametrize(
    "estimator", [l2orl.TruncatedES(std=0.01), l2orl.PES(std=0.01)], ids=["TruncatedES", "PES"]
)
def test_es_estimators_agree_with_tbptt_in_direction(estimator):
    """256 antithetic pairs on the smooth toy problem (2 meta-parameters, K = 5)."""
    task, optimizer = toy_task(), toy_optimizer()
    start = _agents(task, 256, optimizer)
    params = eqx.filter(optimizer, eqx.is_inexact_array)

    def estimate(estimator, agents, state, k, key):
        loop = l2orl.InnerLoop(task, l2orl.AgentLoss(), jnp.int32(k), k, 1000)
        return estimator.estimate(
            loop=loop, optimizer=optimizer, agents=agents, state=state, key=jax.random.key(key)
        )

    exact, *_ = estimate(l2orl.TruncatedBPTT(), start, None, 5, 1)
    es_state = estimator.init(params, start, KEY)
    approx, agents, es_state, _ = estimate(estimator, start, es_state, 5, 2)
    assert _cosine(approx, exact) > 0.5
    if isinstance(estimator, l2orl.PES):
        # A second unroll: PES estimates the gradient through both (an exact K = 10 unroll).
        assert isinstance(es_state, l2orl.PESState)
        exact10, *_ = estimate(l2orl.TruncatedBPTT(), start, None, 10, 1)
        approx2, *_ = estimate(estimator, agents, es_state, 5, 3)
        assert _cosine(approx2, exact10) > 0.5


def test_lifetime_es_agrees_with_the_exact_lifetime_gradient():
    """On the smooth toy problem the final-return objective is differentiable: antithetic ES
    over whole lifetimes (64 pairs, each scored on the same 8 fresh agents, 5 updates each),
    applied by sgd(1) to show its estimate, points along the objective's exact gradient."""
    task, optimizer = toy_task(), toy_optimizer()
    meta_loss = l2orl.LifetimeReturn(0.4)
    strategy = l2orl.AntitheticES(pairs=64, std=0.01, meta_optimizer=optax.sgd(1.0))
    training = l2orl.LifetimeTraining(
        optimizer,
        (task,),
        lifetime=5,
        strategy=strategy,
        agents=8,
        meta_loss=meta_loss,
        fitness_shaping="none",
    )
    state = training.init(KEY)
    new, metrics = eqx.filter_jit(type(training).step)(training, state)
    assert type(new) is l2orl.LifetimeState and int(new.meta_step) == 1
    params, static = eqx.partition(optimizer, eqx.is_inexact_array)
    mean = eqx.filter(training.optimizer_at(new), eqx.is_inexact_array)
    grad = jax.tree.map(jnp.subtract, params, mean)  # sgd(1): mean - estimate

    # The generation's fresh agents and keys, as the step draws them from the state's key.
    k_task = jax.random.split(state.key, 4)[3]
    k_init, k_run = jax.random.split(k_task)
    fresh = task.fresh_agents(optimizer, jax.random.split(k_init, 8))
    keys = jax.random.split(k_run, 8)
    loop = l2orl.InnerLoop(task, meta_loss, 5, 5, 5)

    def objective(params):
        optimizer = eqx.combine(params, static)
        return jnp.mean(jax.vmap(lambda a, k: loop.unroll(optimizer, a, k)[0])(fresh, keys))

    value, exact = jax.value_and_grad(objective)(params)
    assert _cosine(grad, exact) > 0.5  # as for the truncated ES estimators above
    # -return of the last 40% of 5 updates = the mean loss of updates 4 and 5 > 0; the
    # population, ±0.01 around the centre, scores about the centre's objective.
    assert float(metrics["meta_loss"]) > 0
    assert float(metrics["meta_loss"]) == pytest.approx(float(value), rel=1e-2)
    assert float(metrics["best_loss"]) <= float(metrics["meta_loss"])
    assert float(metrics["diverged"]) == 0 and float(metrics["skipped"]) == 0


def test_stateless_estimators_keep_no_state():
    for estimator in (l2orl.TruncatedBPTT(), l2orl.TruncatedES()):
        assert isinstance(estimator, l2orl.AbstractStatelessEstimator)
        training = toy_training(2, estimator=estimator)
        assert training.init(KEY).estimator_states == (None,)
    assert not isinstance(l2orl.PES(), l2orl.AbstractStatelessEstimator)
    pes = toy_training(2, estimator=l2orl.PES()).init(KEY).estimator_states
    assert len(pes) == 1 and type(pes[0]) is l2orl.PESState
    # Whole lifetimes of fresh agents: the lifetime state carries no agents at all.
    lifetime = l2orl.LifetimeTraining(toy_optimizer(), (toy_task(),), lifetime=2)
    fields = {f.name for f in dataclasses.fields(lifetime.init(KEY))}
    assert fields == {"search", "meta_step", "skipped", "key"}
    with pytest.raises(ValueError, match=r"std must be a positive finite number, got 0\.0"):
        l2orl.PES(std=0.0)


def test_tbptt_rejects_a_non_differentiable_meta_loss():
    with pytest.raises(
        ValueError, match="TruncatedBPTT needs a differentiable meta-loss; UnrollReturn"
    ):
        toy_training(2, meta_loss=l2orl.UnrollReturn())
    with pytest.raises(ValueError, match="TruncatedBPTT needs a differentiable meta-loss, got"):
        l2orl.TruncatedBPTT().estimate(
            loop=toy_loop(meta_loss=l2orl.UnrollReturn()),
            optimizer=toy_optimizer(),
            agents=_agents(toy_task(), 2),
            state=None,
            key=KEY,
        )


# --- truncated training ------------------------------------------------------------------


class NaNSometimes(l2orl.AbstractStatelessEstimator):
    """TruncatedBPTT, but about half of the meta-gradients are NaN (chosen from the step's key)."""

    inner: l2orl.TruncatedBPTT

    def check_optimizer(self, optimizer):
        self.inner.check_optimizer(optimizer)

    def estimate(self, **kwargs):
        grad, agents, state, metrics = self.inner.estimate(**kwargs)
        inject = jax.random.uniform(kwargs["key"]) < 0.5
        grad = jax.tree.map(lambda g: jnp.where(inject, jnp.nan, g), grad)
        return grad, agents, state, metrics


def test_a_nan_meta_gradient_is_skipped_and_counted():
    training = toy_training(
        2, estimator=NaNSometimes(l2orl.TruncatedBPTT()), meta_optimizer=optax.sgd(0.1)
    )
    step = eqx.filter_jit(type(training).step)
    state = training.init(KEY)
    injected = []
    for _ in range(8):
        new, metrics = step(training, state)
        injected.append(not np.isfinite(float(metrics["grad_norm"])))
        assert int(new.skipped) == int(state.skipped) + injected[-1]
        assert float(metrics["skipped"]) == int(new.skipped)
        # applied iff finite: agents and meta-parameters stay as they were otherwise
        assert eqx.tree_equal(new.meta_params, state.meta_params) == injected[-1]
        assert eqx.tree_equal(new.agents, state.agents) == injected[-1]
        assert all(bool(jnp.all(jnp.isfinite(p))) for p in jax.tree.leaves(new.meta_params))
        assert int(new.meta_step) == int(state.meta_step) + 1
        state = new
    assert 0 < sum(injected) < 8 and int(state.skipped) == sum(injected)


def test_each_task_follows_its_own_pipeline():
    """A pipeline per task: 4 agents of one, 2 of another (of another dimension), each
    reset on its own schedule, their ages and reset counts as their pipelines say."""
    tasks = (toy_task("four"), l2orl.MetaTask("two", QuadraticLearner(dim=3), None))
    pipelines = (l2orl.Pipeline(4, 3), l2orl.Pipeline(2, 2))
    training = l2orl.TruncatedTraining(
        toy_optimizer(), tasks, pipeline=pipelines, schedule=l2orl.ConstantTruncation(1)
    )
    assert training.pipelines() == pipelines
    assert training.config()["pipeline"] == [l2orl.describe(p) for p in pipelines]
    state = training.init(KEY)
    assert [a.age.shape for a in state.agents] == [(4,), (2,)]
    assert [a.learner.x.shape for a in state.agents] == [(4, 4), (2, 3)]
    np.testing.assert_array_equal(state.offsets[0], [0, 0, 1, 2])
    np.testing.assert_array_equal(state.offsets[1], [0, 1])
    step = eqx.filter_jit(type(training).step)
    ages = [np.zeros(4, int), np.zeros(2, int)]
    for t in range(7):
        state, metrics = step(training, state)
        for i, (name, pipeline) in enumerate(zip(("four", "two"), pipelines, strict=True)):
            mask = np.asarray(pipeline.reset_mask(state.offsets[i], jnp.int32(t)))
            ages[i] = np.where(mask, 0, ages[i]) + 1  # reset, then one inner update
            np.testing.assert_array_equal(state.agents[i].age, ages[i])
            assert float(metrics[f"{name}/resets"]) == mask.sum()
    # The task of 2 agents reset every other meta-step, that of 4 agents every third.
    assert ages[0].max() == 3 and ages[1].max() == 2
    # One pipeline sizes every task's agents alike.
    shared = toy_training(3, tasks=(toy_task("a"), toy_task("b")))
    assert shared.pipelines() == (l2orl.Pipeline(3, 1000, "none"),) * 2
    assert [a.age.shape for a in shared.init(KEY).agents] == [(3,), (3,)]
    with pytest.raises(ValueError, match=r"one Pipeline or one per task \(2\), got 3"):
        l2orl.TruncatedTraining(toy_optimizer(), tasks, pipeline=(pipelines[0],) * 3)


def _catch_task() -> l2orl.MetaTask:
    learner = rl.A2C(n_envs=1, rollout_length=5, network=SMALL_NET)
    return l2orl.MetaTask("catch", learner, rl.make("Catch"), grad_clip=1.0)


def _catch_training(estimator=None, kind="staggered", meta_loss=None):
    return l2orl.TruncatedTraining(
        l2orl.optim4rl(),
        (_catch_task(),),
        l2orl.Pipeline(4, 3, kind),
        estimator=estimator or l2orl.TruncatedBPTT(),
        meta_loss=meta_loss or l2orl.AgentLoss(),
        schedule=l2orl.ConstantTruncation(2),
    )


@pytest.mark.slow  # the same property on the toy problem: test_strategies.py
@pytest.mark.parametrize(
    "training",
    [
        _catch_training(kind="random"),
        _catch_training(l2orl.TruncatedBPTT(remat=True)),
        _catch_training(kind="none"),
        _catch_training(l2orl.PES(), meta_loss=l2orl.UnrollReturn()),
        l2orl.LifetimeTraining(
            l2orl.optim4rl(), (_catch_task(),), lifetime=3, strategy=l2orl.AntitheticES(pairs=2)
        ),
    ],
    ids=["random", "tbptt-remat", "none", "pes-return", "lifetime-es"],
)
def test_variants_change_by_one_argument_and_compile_once(training):
    traces = []

    def step(training, state):
        traces.append(1)
        return training.step(state)

    step = eqx.filter_jit(step)
    state = training.init(KEY)
    for _ in range(3):
        state, metrics = step(training, state)
    assert len(traces) == 1  # carries keep their shapes, dtypes and placements: one compile
    assert int(state.meta_step) == 3 and np.isfinite(float(metrics["meta_loss"]))
    assert isinstance(state, l2orl.AbstractMetaState)
    if isinstance(training, l2orl.TruncatedTraining):
        assert type(state) is l2orl.TruncatedState
        assert type(state.agents[0]) is l2orl.AgentsState
    else:
        assert type(state) is l2orl.LifetimeState


# --- the run entry -----------------------------------------------------------------------


def test_multi_task_run_logs_checkpoints_and_config(tmp_path):
    tasks = (
        toy_task(),
        l2orl.MetaTask("toy2", QuadraticLearner(), None, 1.0, update_scale=3.0),
    )
    training = l2orl.TruncatedTraining(
        toy_optimizer(),
        tasks,
        pipeline=(l2orl.Pipeline(2, 3, "staggered"), l2orl.Pipeline(2, 4)),
        schedule=l2orl.LogUniformTruncation(1, 3),
        task_normalize=0.5,
    )
    run = dict(progress=False, settings={"note": "test"})
    state = l2orl.meta_train(training, 3, tmp_path, checkpoint_every=2, **run)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["meta_step"] for r in records] == [1, 2, 3]
    assert {"toy/meta_loss", "toy2/agent_return", "env_steps", "grad_norm", "K"} <= set(records[0])
    assert 0 < records[0]["compile_seconds"] < records[0]["seconds"]
    assert not any("compile_seconds" in r for r in records[1:])
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [
        "step-000002.l2o",
        "step-000003.l2o",
    ]
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["settings"] == {"note": "test"}
    assert config["algorithm"] == "TruncatedTraining"
    assert [t["name"] for t in config["tasks"]] == ["toy", "toy2"]
    assert config["optimizer"] == l2orl.describe(toy_optimizer())
    optimizer = l2orl.load(tmp_path / "optimizer.l2o")
    assert eqx.tree_equal(eqx.filter(optimizer, eqx.is_inexact_array), state.meta_params)
    assert eqx.tree_equal(optimizer, training.optimizer_at(state))
    restored = l2orl.load_tree(
        tmp_path / "checkpoints" / "step-000003.l2o", like=training.init(KEY)
    )
    assert eqx.tree_equal(restored, state)
    with pytest.raises(ValueError, match="another configuration"):
        l2orl.meta_train(dataclasses.replace(training, task_normalize=1.0), 1, tmp_path, **run)
    # A run recorded before a field with a default existed resumes; other changes are refused.
    recorded = json.loads((tmp_path / "config.json").read_text())
    del recorded["meta_loss"]["fields"]["normalize_advantages"]
    (tmp_path / "config.json").write_text(json.dumps(recorded))
    assert int(l2orl.meta_train(training, 4, tmp_path, **run).meta_step) == 4
    normalizing = dataclasses.replace(
        training, meta_loss=l2orl.AgentLoss(normalize_advantages=True)
    )
    with pytest.raises(ValueError, match=r"normalize_advantages: false in the folder, true now"):
        l2orl.meta_train(normalizing, 5, tmp_path, **run)
    with pytest.raises(Exception, match="no_such_option"):  # the options reach XLA
        l2orl.meta_train(training, 5, tmp_path, compiler_options={"no_such_option": 1}, **run)


class SeesHandlers(l2orl.AbstractStatelessEstimator):
    """TruncatedBPTT that records the SIGINT handler in place each time a meta-step runs."""

    inner: l2orl.TruncatedBPTT

    def check_optimizer(self, optimizer):
        self.inner.check_optimizer(optimizer)

    def estimate(self, **kwargs):
        jax.debug.callback(lambda: SEEN.append(signal.getsignal(signal.SIGINT)))
        return self.inner.estimate(**kwargs)


SEEN: list = []


def _lifetime_training() -> l2orl.LifetimeTraining:
    return l2orl.LifetimeTraining(
        toy_optimizer(),
        (toy_task(),),
        lifetime=3,
        strategy=l2orl.AntitheticES(pairs=2, std=0.05, meta_optimizer=optax.adam(0.05)),
        agents=2,
    )


@pytest.mark.parametrize(
    "make",
    [
        lambda: toy_training(2, "staggered", 3, estimator=SeesHandlers(l2orl.TruncatedBPTT())),
        _lifetime_training,
    ],
    ids=["truncated", "lifetime"],
)
def test_a_run_without_a_folder_is_in_memory_with_the_same_result(make, tmp_path, monkeypatch):
    """`out_dir=None`: nothing written (no folder, lock, log or checkpoint, in the working
    directory either), signals left alone, and the same state as a run in a folder."""
    training = make()
    monkeypatch.chdir(tmp_path)
    SEEN.clear()
    handler = signal.getsignal(signal.SIGINT)
    in_memory = l2orl.meta_train(training, 4, checkpoint_every=1, progress=False)
    assert list(tmp_path.iterdir()) == []
    assert int(in_memory.meta_step) == 4
    on_disk = l2orl.meta_train(training, 4, tmp_path / "run", checkpoint_every=1, progress=False)
    assert _leaves_equal(in_memory, on_disk)
    assert (tmp_path / "run" / "optimizer.l2o").is_file()
    moved = eqx.filter(training.optimizer_at(in_memory), eqx.is_inexact_array)
    initial = eqx.filter(training.optimizer, eqx.is_inexact_array)
    assert not eqx.tree_equal(moved, initial)  # it did train
    if isinstance(training, l2orl.TruncatedTraining) and (
        threading.current_thread() is threading.main_thread()
    ):
        # Each meta-step: in memory under the caller's handler, in a folder deferred.
        assert len(SEEN) == 8 and all(h is handler for h in SEEN[:4])
        assert not any(h is handler for h in SEEN[4:])


def test_only_a_meta_algorithm_is_run(tmp_path):
    # The suite's runtime type checks refuse a wrong argument first (a TypeError); without
    # them, as a user runs it, meta_train itself refuses it with a ValueError.
    unchecked = inspect.unwrap(l2orl.meta_train)
    things = [toy_optimizer(), toy_task(), "toy", toy_training(2).init(KEY)]  # a state too
    for thing in things:
        name = type(thing).__name__
        with pytest.raises(
            ValueError, match=f"^meta_train runs an l2orl.AbstractMetaAlgorithm, got {name}$"
        ):
            unchecked(thing, 1, tmp_path / "run", progress=False)
        with pytest.raises((ValueError, TypeError)):
            l2orl.meta_train(thing, 1, tmp_path / "run", progress=False)
    assert list(tmp_path.iterdir()) == []  # refused before the folder is made


def test_progress_is_a_bar_on_a_terminal_and_nothing_elsewhere(tmp_path, monkeypatch, capsys):
    training = toy_training(4, "staggered", reset_interval=4)
    l2orl.meta_train(training, 3, tmp_path / "piped", progress=True)
    assert capsys.readouterr().err == ""  # not a terminal: no redraws in logs
    monkeypatch.setenv("TTY_COMPATIBLE", "1")
    monkeypatch.setenv("COLUMNS", "200")  # one line, not wrapped
    l2orl.meta_train(training, 3, tmp_path / "terminal", progress=False)
    assert capsys.readouterr().err == ""
    l2orl.meta_train(training, 3, tmp_path / "terminal", progress=True, resume=False)
    bar = capsys.readouterr().err
    record = json.loads((tmp_path / "terminal" / "metrics.jsonl").read_text().splitlines()[-1])
    assert "meta-step" in bar and "3/3" in bar
    assert f"meta-loss {record['meta_loss']:.4g}" in bar
    assert f"return (older half) {record['toy/late_return']:.3f}" in bar
    assert "env-steps/s" in bar and "ETA" in bar


def test_a_signal_ends_the_run_checkpointed_and_a_busy_folder_is_refused(tmp_path):
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("Python handles signals in the main thread only")
    training = toy_training(2, "staggered", reset_interval=3)
    log, refusals = tmp_path / "metrics.jsonl", []

    def meanwhile():  # another thread: a second run in the folder, then SIGTERM to us
        while not (log.exists() and len(log.read_text().splitlines()) >= 2):
            time.sleep(0.005)
        try:
            l2orl.meta_train(training, 1, tmp_path, progress=False)
        except ValueError as error:
            refusals.append(str(error))
        os.kill(os.getpid(), signal.SIGTERM)

    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    threading.Thread(target=meanwhile, daemon=True).start()
    with pytest.raises(l2orl.RunInterrupted) as stopped:
        l2orl.meta_train(training, 10**6, tmp_path, checkpoint_every=10**6, progress=False)
    step = stopped.value.meta_step
    assert stopped.value.signal == signal.SIGTERM and stopped.value.exit_code == 143
    assert 2 <= step < 10**6 and len(log.read_text().splitlines()) == step
    assert (tmp_path / "checkpoints" / f"step-{step:06d}.l2o").is_file()
    assert refusals == [
        f"{tmp_path} is in use by a running meta-training (pid {os.getpid()} on "
        f"{socket.gethostname()}); wait for it to end or use another out_dir"
    ]
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == handlers
    state = l2orl.meta_train(training, step + 2, tmp_path, progress=False)  # the lock is free
    assert int(state.meta_step) == step + 2 and (tmp_path / "optimizer.l2o").is_file()
    # It resumed from the signalled step's checkpoint: the same as a run without a stop.
    assert _leaves_equal(state, l2orl.meta_train(training, step + 2, progress=False))


_DEVICES_SCRIPT = textwrap.dedent(
    """
    import json, sys, tempfile, jax, optax, l2orl, l2orl.rl as rl
    chunk = int(sys.argv[1]) or None
    fraction = float(sys.argv[2]) or None
    learner = rl.A2C(n_envs=1, rollout_length=5, network=rl.NetworkSpec("mlp", (16,), "relu"))
    task = l2orl.MetaTask("catch", learner, rl.make("Catch"))
    traces = []
    class Counting(l2orl.AbstractStatelessEstimator):  # counts the meta-step's traces
        inner: l2orl.TruncatedBPTT
        def check_optimizer(self, optimizer):
            self.inner.check_optimizer(optimizer)
        def estimate(self, **kwargs):
            traces.append(1)
            return self.inner.estimate(**kwargs)
    training = l2orl.TruncatedTraining(
        l2orl.optim4rl(), (task,), l2orl.Pipeline(4, 3), schedule=l2orl.ConstantTruncation(2),
        estimator=Counting(l2orl.TruncatedBPTT(
            agents_per_chunk=chunk, coordinate_fraction=fraction)),
        meta_optimizer=optax.sgd(1.0))
    with tempfile.TemporaryDirectory() as out:  # compiled from shapes; then resumed
        l2orl.meta_train(training, 1, out, checkpoint_every=1, progress=False)
        state = l2orl.meta_train(training, 2, out, progress=False)
    shards = len(state.agents[0].age.sharding.device_set)
    leaves = [x.tolist() for x in jax.tree.leaves(state.meta_params)]
    print(json.dumps({"devices": jax.device_count(), "shards": shards, "params": leaves,
                      "traces": len(traces)}))
    """
)


@pytest.mark.slow
def test_agents_shard_over_devices_with_the_same_meta_gradient():
    """4 agents on 1 device, on 4 devices, on 4 devices in 2 chunks of 2 agents, and on 4
    devices by coordinates (all of them: exact): one meta-step, then a resumed run to two."""

    def run(n_devices, chunk=0, fraction=0.0):
        env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={n_devices}"}
        out = subprocess.run(
            [sys.executable, "-c", _DEVICES_SCRIPT, str(chunk), str(fraction)],
            env=env,
            capture_output=True,
            text=True,
        )
        assert out.returncode == 0, out.stderr[-3000:]
        return json.loads(out.stdout.strip().splitlines()[-1])

    one, four, chunked = run(1), run(4), run(4, chunk=2)
    by_coordinates = run(4, fraction=1.0)
    assert (one["devices"], one["shards"]) == (1, 1)
    for other in (four, chunked, by_coordinates):
        assert (other["devices"], other["shards"]) == (4, 4)
    # One trace and compile per process: the state's shardings stay as compiled, and the
    # resumed run reuses the first run's compiled step.
    assert one["traces"] == four["traces"] == chunked["traces"] == by_coordinates["traces"] == 1
    for other in (four, chunked, by_coordinates):  # sgd(1): params - meta-gradient
        for a, b in zip(one["params"], other["params"], strict=True):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)


def test_abstract_parts_and_the_inner_loop():
    assert isinstance(l2orl.AgentLoss(), l2orl.AbstractMetaLoss) and l2orl.AgentLoss.differentiable
    assert not l2orl.UnrollReturn.differentiable and not l2orl.LifetimeReturn.differentiable
    assert isinstance(l2orl.LogUniformTruncation(1, 4), l2orl.AbstractTruncationSchedule)
    assert isinstance(toy_training(1), l2orl.AbstractMetaAlgorithm)
    assert isinstance(_lifetime_training(), l2orl.AbstractMetaAlgorithm)
    assert isinstance(toy_training(1).init(KEY), l2orl.AbstractMetaState)
    assert isinstance(_lifetime_training().init(KEY), l2orl.AbstractMetaState)
    task, optimizer = toy_task(), toy_optimizer()
    agents = _agents(task, 1, optimizer)
    agent = jax.tree.map(lambda x: x[0], agents)  # one agent: no leading axis
    learner = agent.learner
    # Two of at most five updates run; the rest of the scan leaves the state alone.
    loop = l2orl.InnerLoop(task, l2orl.AgentLoss(), jnp.int32(2), 5, 1000)
    loss, after, metrics = loop.unroll(optimizer, agent, KEY)
    tx = optimizer.as_optax()
    expected, o = learner, tx.init(task.learner.params(learner))
    for _ in range(2):
        expected, o, _ = task.learner.step(None, expected, tx, o, None)
    np.testing.assert_allclose(after.learner.x, expected.x, rtol=1e-6)
    assert int(after.age) == 2
    assert float(loss) == pytest.approx(
        float(task.learner.fresh_loss(None, expected, None)[0]), rel=1e-5
    )
    assert isinstance(metrics, l2orl.UpdateMetrics)
    assert float(metrics.episodes) == 2.0  # one per update that ran
    assert float(metrics.return_sum) == pytest.approx(-2 * float(metrics.loss), rel=1e-6)
    # unroll = updates through the task's transform, then score.
    updated, stacked, active, k_loss = loop.updates(loop.transform(optimizer), agent, KEY)
    np.testing.assert_array_equal(active, [True, True, False, False, False])
    assert stacked.loss.shape == (5,) and int(updated.age) == 2
    scored, _ = loop.score(updated.learner, stacked, active, k_loss)
    assert float(scored) == float(loss)
    # The learned optimizer's own state, by its slot in the task's named chain.
    inner = loop.optimizer_state(agent.opt_state)
    assert eqx.tree_equal(inner, agent.opt_state[l2orl.OPTIMIZER_SLOT])
    assert eqx.tree_equal(inner, optimizer.as_optax().init(task.learner.params(learner)))
    zeros = jax.tree.map(jnp.zeros_like, inner)
    replaced = loop.with_optimizer_state(agent.opt_state, zeros)
    assert type(replaced) is type(agent.opt_state)
    assert eqx.tree_equal(loop.optimizer_state(replaced), zeros)
    clipped = l2orl.MetaTask("clipped", QuadraticLearner(), None, 0.5, update_scale=2.0)
    names = list(clipped.transform(optimizer).init({"x": jnp.zeros(4)}))
    assert names == ["clip", l2orl.OPTIMIZER_SLOT, "scale"]
    # A truncated algorithm's loop: its task, meta-loss, schedule and pipeline's lifetime.
    training = toy_training(2, "staggered", 3, schedule=l2orl.ConstantTruncation(5))
    own = training.inner_loop(0, 4)
    assert own.task is training.tasks[0] and own.meta_loss is training.meta_loss
    assert (own.length, own.max_length, own.lifetime) == (4, 5, 15)


def test_default_learners_follow_the_reference():
    catch = rl.default_learner("Catch", n_envs=1)
    assert isinstance(catch, rl.A2C) and catch.n_envs == 1 and catch.network.hidden_sizes == (256,)
    assert rl.default_learner("big_dense_long").network.torso == "conv"
    assert rl.default_learner("big_dense_long").n_envs == 512
    ppo = rl.default_learner("brax:ant")
    assert isinstance(ppo, rl.PPO) and ppo.network.value_hidden_sizes == (256,) * 5


def _leaves_equal(a, b) -> bool:
    """Two meta-training states equal bit for bit (keys compared by their data)."""
    a, b = (eqx.tree_at(lambda s: s.key, s, jax.random.key_data(s.key)) for s in (a, b))
    return all(
        np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )


def test_checkpoints_kept_continued_and_skipped_when_unreadable(tmp_path):
    training = toy_training(2, "staggered", 3)
    run = dict(checkpoint_every=1, progress=False)
    whole = l2orl.meta_train(training, 6, tmp_path / "whole", **run)
    names = sorted(p.name for p in (tmp_path / "whole" / "checkpoints").iterdir())
    assert names == ["step-000005.l2o", "step-000006.l2o"]  # keep_checkpoints=2
    l2orl.meta_train(training, 4, tmp_path / "grown", keep_checkpoints=0, **run)
    assert len(list((tmp_path / "grown" / "checkpoints").iterdir())) == 4  # 0 keeps all
    newest = tmp_path / "grown" / "checkpoints" / "step-000004.l2o"
    newest.write_bytes(newest.read_bytes()[:100])  # a write cut short
    with pytest.warns(UserWarning, match="skipping an unreadable checkpoint"):
        grown = l2orl.meta_train(training, 6, tmp_path / "grown", **run)
    assert _leaves_equal(grown, whole)  # from step 3 to a finished 6, bit for bit
    log = (tmp_path / "grown" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["meta_step"] for line in log] == [1, 2, 3, 4, 5, 6]
    # With no readable checkpoint left the run is refused, its log and checkpoints untouched.
    for path in (tmp_path / "grown" / "checkpoints").iterdir():
        path.write_bytes(path.read_bytes()[:100])
    before = {p.name: p.read_bytes() for p in (tmp_path / "grown").rglob("*") if p.is_file()}
    with (
        pytest.warns(UserWarning, match="skipping an unreadable checkpoint"),
        pytest.raises(l2orl.CheckpointError, match="no checkpoint of the run is readable"),
    ):
        l2orl.meta_train(training, 8, tmp_path / "grown", **run)
    after = {p.name: p.read_bytes() for p in (tmp_path / "grown").rglob("*") if p.is_file()}
    assert {k: v for k, v in after.items() if k != "lock"} == {
        k: v for k, v in before.items() if k != "lock"
    }


@pytest.mark.parametrize(
    "make",
    [
        lambda: toy_training(4, "staggered", 3, estimator=l2orl.PES(std=0.05)),
        _lifetime_training,
    ],
    ids=["truncated-pes", "lifetime"],
)
def test_a_resumed_run_ends_bit_identical_to_an_uninterrupted_one(make, tmp_path):
    """Stopped after 3 meta-steps (a checkpoint at each) and resumed to 7: the whole state
    (agents, estimator or search state, key) as 7 meta-steps in one go; so is a finished run
    continued to more meta-steps, and its log holds every meta-step once."""
    training = make()
    whole = l2orl.meta_train(training, 7, tmp_path / "whole", progress=False)
    run = dict(checkpoint_every=1, progress=False)
    assert int(l2orl.meta_train(training, 3, tmp_path / "resumed", **run).meta_step) == 3
    resumed = l2orl.meta_train(training, 7, tmp_path / "resumed", **run)
    assert _leaves_equal(resumed, whole)
    log = (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["meta_step"] for line in log] == list(range(1, 8))
    lines = (tmp_path / "whole" / "metrics.jsonl").read_text().splitlines()
    drop = ("seconds", "compile_seconds")
    assert [{k: v for k, v in json.loads(x).items() if k not in drop} for x in log] == [
        {k: v for k, v in json.loads(x).items() if k not in drop} for x in lines
    ]
    for folder in ("whole", "resumed"):
        saved = l2orl.load(tmp_path / folder / "optimizer.l2o")
        assert eqx.tree_equal(saved, training.optimizer_at(whole))


def test_a_refused_resume_names_each_differing_setting(tmp_path):
    training = toy_training(2, task_normalize=0.5)
    run = dict(progress=False, settings={"meta_lr": 1e-3})
    l2orl.meta_train(training, 1, tmp_path, **run)
    other = dataclasses.replace(training, task_normalize=1.0)
    with pytest.raises(ValueError, match=r"task_normalize: 0\.5 in the folder, 1\.0 now"):
        l2orl.meta_train(other, 1, tmp_path, **run)
    with pytest.raises(ValueError, match=r"settings\.meta_lr: 0\.001 in the folder, 0\.003 now"):
        l2orl.meta_train(training, 1, tmp_path, progress=False, settings={"meta_lr": 3e-3})
    lifetime = _lifetime_training()  # another algorithm in the folder
    with pytest.raises(ValueError, match=r"algorithm: \"TruncatedTraining\" in the folder"):
        l2orl.meta_train(lifetime, 1, tmp_path, **run)
    with pytest.raises(ValueError, match="keep_checkpoints must be an int ≥ 0, got -1"):
        l2orl.meta_train(training, 1, tmp_path, keep_checkpoints=-1, progress=False)
    with pytest.raises(ValueError, match="is a file, not a folder"):
        l2orl.meta_train(training, 1, tmp_path / "config.json", progress=False)
