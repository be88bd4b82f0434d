import dataclasses
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
from helpers import KEY, SMALL_NET, toy_optimizer, toy_task


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


def test_tbptt_equals_the_gradient_of_the_full_unroll():
    """When K covers the whole horizon, truncated BPTT is exactly jax.grad of the unrolled loss."""
    task = toy_task(3)
    trainer = l2orl.MetaTrainer(toy_optimizer(), (task,), schedule=l2orl.ConstantTruncation(6))
    state = trainer.init(KEY)
    params, static = eqx.partition(trainer.optimizer, eqx.is_inexact_array)
    agents = state.agents[0]
    grad, *_ = l2orl.TruncatedBPTT().estimate(
        optimizer=trainer.optimizer,
        task=task,
        meta_loss=l2orl.AgentLoss(),
        agents=agents,
        state=None,
        length=jnp.int32(6),
        max_length=6,
        key=jax.random.key(5),
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
    task = toy_task(6)
    trainer = l2orl.MetaTrainer(toy_optimizer(), (task,))
    state = trainer.init(KEY)
    args = dict(
        optimizer=trainer.optimizer,
        task=task,
        meta_loss=l2orl.AgentLoss(),
        agents=state.agents[0],
        state=None,
        length=3,
        max_length=3,
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
    task = toy_task(256)
    trainer = l2orl.MetaTrainer(toy_optimizer(), (task,), estimator=estimator)
    state = trainer.init(KEY)
    params = eqx.filter(trainer.optimizer, eqx.is_inexact_array)
    common = dict(optimizer=trainer.optimizer, task=task, meta_loss=l2orl.AgentLoss())

    def estimate(estimator, agents, state, k, key):
        return estimator.estimate(
            **common,
            agents=agents,
            state=state,
            length=jnp.int32(k),
            max_length=k,
            key=jax.random.key(key),
        )

    exact, *_ = estimate(l2orl.TruncatedBPTT(), state.agents[0], None, 5, 1)
    es_state = estimator.init(params, state.agents[0], KEY)
    approx, agents, es_state, _ = estimate(estimator, state.agents[0], es_state, 5, 2)
    assert _cosine(approx, exact) > 0.5
    if isinstance(estimator, l2orl.PES):
        # A second unroll: PES estimates the gradient through both (an exact K = 10 unroll).
        assert isinstance(es_state, l2orl.PESState)
        exact10, *_ = estimate(l2orl.TruncatedBPTT(), state.agents[0], None, 10, 1)
        approx2, *_ = estimate(estimator, agents, es_state, 5, 3)
        assert _cosine(approx2, exact10) > 0.5


def test_full_es_agrees_with_the_exact_lifetime_gradient():
    """On the smooth toy problem the final-return objective is differentiable: FullES's
    estimate (64 antithetic lifetimes of 5 updates) points along its exact gradient."""
    task = toy_task(64)
    estimator, meta_loss = l2orl.FullES(lifetime=5, std=0.01), l2orl.LifetimeReturn(0.4)
    optimizer = toy_optimizer()
    trainer = l2orl.MetaTrainer(optimizer, (task,), estimator=estimator, meta_loss=meta_loss)
    state = trainer.init(KEY)
    key = jax.random.key(7)
    grad, agents, _, metrics = estimator.estimate(
        optimizer=optimizer,
        task=task,
        meta_loss=meta_loss,
        agents=state.agents[0],
        state=None,
        length=1,
        max_length=1,
        key=key,
    )
    assert agents is state.agents[0]  # the pipeline's agents are not used
    params, static = eqx.partition(optimizer, eqx.is_inexact_array)
    k_init = jax.random.split(key, 3)[0]  # the fresh agents FullES starts from

    def objective(params):
        optimizer = eqx.combine(params, static)
        fresh = task.fresh_agents(optimizer, jax.random.split(k_init, 64))
        run = jax.vmap(lambda s, o: l2orl.unroll(optimizer, task, meta_loss, s, o, 5, 5, KEY)[0])
        return jnp.mean(run(*fresh))

    exact = jax.grad(objective)(params)
    assert _cosine(grad, exact) > 0.5  # as for the truncated ES estimators above
    # -return of the last 40% of 5 updates = the mean loss of updates 4 and 5 > 0.
    assert float(metrics.meta_loss) > 0


def test_stateless_estimators_keep_no_state():
    for estimator in (l2orl.TruncatedBPTT(), l2orl.TruncatedES(), l2orl.FullES(lifetime=2)):
        assert isinstance(estimator, l2orl.AbstractStatelessEstimator)
        trainer = l2orl.MetaTrainer(toy_optimizer(), (toy_task(2),), estimator=estimator)
        assert trainer.init(KEY).estimator_states == (None,)
    assert not isinstance(l2orl.PES(), l2orl.AbstractStatelessEstimator)
    with pytest.raises(ValueError, match=r"std must be a positive finite number, got 0\.0"):
        l2orl.PES(std=0.0)


def test_tbptt_rejects_a_non_differentiable_meta_loss():
    with pytest.raises(
        ValueError, match="TruncatedBPTT needs a differentiable meta-loss; UnrollReturn"
    ):
        l2orl.MetaTrainer(toy_optimizer(), (toy_task(2),), meta_loss=l2orl.UnrollReturn())


# --- the meta-trainer -------------------------------------------------------------------


class NaNSometimes(l2orl.AbstractStatelessEstimator):
    """TruncatedBPTT, but about half of the meta-gradients are NaN (chosen from the step's key)."""

    inner: l2orl.TruncatedBPTT

    def estimate(self, **kwargs):
        grad, agents, state, metrics = self.inner.estimate(**kwargs)
        inject = jax.random.uniform(kwargs["key"]) < 0.5
        grad = jax.tree.map(lambda g: jnp.where(inject, jnp.nan, g), grad)
        return grad, agents, state, metrics


def test_a_nan_meta_gradient_is_skipped_and_counted():
    estimator = NaNSometimes(l2orl.TruncatedBPTT())
    trainer = l2orl.MetaTrainer(
        toy_optimizer(), (toy_task(2),), estimator=estimator, meta_optimizer=optax.sgd(0.1)
    )
    step = eqx.filter_jit(type(trainer).step)
    state = trainer.init(KEY)
    injected = []
    for _ in range(8):
        new, metrics = step(trainer, state)
        injected.append(not np.isfinite(float(metrics["grad_norm"])))
        assert int(new.skipped) == int(state.skipped) + injected[-1]
        # applied iff finite: agents and meta-parameters stay as they were otherwise
        assert eqx.tree_equal(new.meta_params, state.meta_params) == injected[-1]
        assert eqx.tree_equal(new.agents, state.agents) == injected[-1]
        assert all(bool(jnp.all(jnp.isfinite(p))) for p in jax.tree.leaves(new.meta_params))
        state = new
    assert 0 < sum(injected) < 8 and int(state.skipped) == sum(injected)


def _catch_trainer(estimator=None, kind="staggered", meta_loss=None):
    learner = rl.A2C(n_envs=1, rollout_length=5, network=SMALL_NET)
    task = l2orl.MetaTask(
        "catch", learner, rl.make("Catch"), l2orl.Pipeline(4, 3, kind), grad_clip=1.0
    )
    return l2orl.MetaTrainer(
        l2orl.optim4rl(),
        (task,),
        estimator=estimator or l2orl.TruncatedBPTT(),
        meta_loss=meta_loss or l2orl.AgentLoss(),
        schedule=l2orl.ConstantTruncation(2),
    )


@pytest.mark.slow  # the same property on the toy problem: test_strategies.py
@pytest.mark.parametrize(
    "trainer",
    [
        _catch_trainer(kind="random"),
        _catch_trainer(l2orl.TruncatedBPTT(remat=True)),
        _catch_trainer(kind="none"),
        _catch_trainer(l2orl.PES(), meta_loss=l2orl.UnrollReturn()),
        _catch_trainer(l2orl.FullES(lifetime=3), meta_loss=l2orl.LifetimeReturn()),
    ],
    ids=["random", "tbptt-remat", "none", "pes-return", "fulles"],
)
def test_variants_change_by_one_argument_and_compile_once(trainer, tmp_path):
    traces = []

    def step(trainer, state):
        traces.append(1)
        return trainer.step(state)

    step = eqx.filter_jit(step)
    state = trainer.init(KEY)
    for _ in range(3):
        state, metrics = step(trainer, state)
    assert len(traces) == 1  # carries keep their shapes, dtypes and placements: one compile
    assert int(state.meta_step) == 3 and np.isfinite(float(metrics["meta_loss"]))
    assert isinstance(state, l2orl.MetaState) and isinstance(state.agents[0], l2orl.AgentsState)


def test_multi_task_run_logs_checkpoints_and_config(tmp_path):
    toy = toy_task(2, "staggered", reset_interval=3)
    tasks = (
        toy,
        l2orl.MetaTask("toy2", toy.learner, None, l2orl.Pipeline(2, 4), 1.0, update_scale=3.0),
    )
    trainer = l2orl.MetaTrainer(
        toy_optimizer(), tasks, schedule=l2orl.LogUniformTruncation(1, 3), task_normalize=0.5
    )
    state = trainer.run(3, tmp_path, checkpoint_every=2, progress=False, settings={"note": "test"})
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
    assert [t["name"] for t in config["tasks"]] == ["toy", "toy2"]
    assert config["optimizer"] == l2orl.describe(toy_optimizer())
    optimizer = l2orl.load(tmp_path / "optimizer.l2o")
    assert eqx.tree_equal(eqx.filter(optimizer, eqx.is_inexact_array), state.meta_params)
    restored = l2orl.load_tree(
        tmp_path / "checkpoints" / "step-000003.l2o", like=trainer.init(KEY)
    )
    assert eqx.tree_equal(restored, state)
    with pytest.raises(ValueError, match="another configuration"):
        dataclasses.replace(trainer, task_normalize=1.0).run(1, tmp_path, progress=False)
    # A run recorded before a field with a default existed resumes; other changes are refused.
    recorded = json.loads((tmp_path / "config.json").read_text())
    del recorded["meta_loss"]["fields"]["normalize_advantages"]
    (tmp_path / "config.json").write_text(json.dumps(recorded))
    assert int(trainer.run(4, tmp_path, progress=False, settings={"note": "test"}).meta_step) == 4
    normalizing = dataclasses.replace(
        trainer, meta_loss=l2orl.AgentLoss(normalize_advantages=True)
    )
    with pytest.raises(ValueError, match=r"normalize_advantages: false in the folder, true now"):
        normalizing.run(5, tmp_path, progress=False, settings={"note": "test"})
    with pytest.raises(Exception, match="no_such_option"):  # the options reach XLA
        trainer.run(
            5,
            tmp_path,
            progress=False,
            settings={"note": "test"},
            compiler_options={"no_such_option": 1},
        )


def test_progress_is_a_bar_on_a_terminal_and_nothing_elsewhere(tmp_path, monkeypatch, capsys):
    trainer = l2orl.MetaTrainer(toy_optimizer(), (toy_task(4, "staggered", reset_interval=4),))
    trainer.run(3, tmp_path / "piped", progress=True)
    assert capsys.readouterr().err == ""  # not a terminal: no redraws in logs
    monkeypatch.setenv("TTY_COMPATIBLE", "1")
    monkeypatch.setenv("COLUMNS", "200")  # one line, not wrapped
    trainer.run(3, tmp_path / "terminal", progress=False)
    assert capsys.readouterr().err == ""
    trainer.run(3, tmp_path / "terminal", progress=True, resume=False)
    bar = capsys.readouterr().err
    record = json.loads((tmp_path / "terminal" / "metrics.jsonl").read_text().splitlines()[-1])
    assert "meta-step" in bar and "3/3" in bar
    assert f"meta-loss {record['meta_loss']:.4g}" in bar
    assert f"return (older half) {record['toy/late_return']:.3f}" in bar
    assert "env-steps/s" in bar and "ETA" in bar


def test_a_signal_ends_the_run_checkpointed_and_a_busy_folder_is_refused(tmp_path):
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("Python handles signals in the main thread only")
    trainer = l2orl.MetaTrainer(toy_optimizer(), (toy_task(2, "staggered", reset_interval=3),))
    log, refusals = tmp_path / "metrics.jsonl", []

    def meanwhile():  # another thread: a second run in the folder, then SIGTERM to us
        while not (log.exists() and len(log.read_text().splitlines()) >= 2):
            time.sleep(0.005)
        try:
            trainer.run(1, tmp_path, progress=False)
        except ValueError as error:
            refusals.append(str(error))
        os.kill(os.getpid(), signal.SIGTERM)

    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    threading.Thread(target=meanwhile, daemon=True).start()
    with pytest.raises(l2orl.RunInterrupted) as stopped:
        trainer.run(10**6, tmp_path, checkpoint_every=10**6, progress=False)
    step = stopped.value.meta_step
    assert stopped.value.signal == signal.SIGTERM and stopped.value.exit_code == 143
    assert 2 <= step < 10**6 and len(log.read_text().splitlines()) == step
    assert (tmp_path / "checkpoints" / f"step-{step:06d}.l2o").is_file()
    assert refusals == [
        f"{tmp_path} is in use by a running meta-training (pid {os.getpid()} on "
        f"{socket.gethostname()}); wait for it to end or use another out_dir"
    ]
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == handlers
    state = trainer.run(step + 2, tmp_path, progress=False)  # resumes; the lock is free
    assert int(state.meta_step) == step + 2 and (tmp_path / "optimizer.l2o").is_file()


_DEVICES_SCRIPT = textwrap.dedent(
    """
    import json, sys, tempfile, jax, optax, l2orl, l2orl.rl as rl
    chunk = int(sys.argv[1]) or None
    fraction = float(sys.argv[2]) or None
    learner = rl.A2C(n_envs=1, rollout_length=5, network=rl.NetworkSpec("mlp", (16,), "relu"))
    task = l2orl.MetaTask("catch", learner, rl.make("Catch"), l2orl.Pipeline(4, 3))
    traces = []
    class Counting(l2orl.AbstractStatelessEstimator):  # counts the meta-step's traces
        inner: l2orl.TruncatedBPTT
        def estimate(self, **kwargs):
            traces.append(1)
            return self.inner.estimate(**kwargs)
    trainer = l2orl.MetaTrainer(l2orl.optim4rl(), (task,), schedule=l2orl.ConstantTruncation(2),
                                estimator=Counting(l2orl.TruncatedBPTT(
                                    agents_per_chunk=chunk, coordinate_fraction=fraction)),
                                meta_optimizer=optax.sgd(1.0))
    with tempfile.TemporaryDirectory() as out:  # compiled from shapes; then resumed
        trainer.run(1, out, checkpoint_every=1, progress=False)
        state = trainer.run(2, out, progress=False)
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
    # One trace and compile per run: the state's shardings stay as compiled, resumed too.
    assert one["traces"] == four["traces"] == chunked["traces"] == by_coordinates["traces"] == 2
    for other in (four, chunked, by_coordinates):  # sgd(1): params - meta-gradient
        for a, b in zip(one["params"], other["params"], strict=True):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)


def test_abstract_parts_and_the_unroll_function():
    assert isinstance(l2orl.AgentLoss(), l2orl.AbstractMetaLoss) and l2orl.AgentLoss.differentiable
    assert not l2orl.UnrollReturn.differentiable and not l2orl.LifetimeReturn.differentiable
    assert isinstance(l2orl.LogUniformTruncation(1, 4), l2orl.AbstractTruncationSchedule)
    task = toy_task(1)
    learner = task.learner.init(None, KEY)
    optimizer = toy_optimizer()
    opt_state = task.transform(optimizer).init(task.learner.params(learner))
    # Two of at most five updates run; the rest of the scan leaves the state alone.
    loss, state, _, metrics = l2orl.unroll(
        optimizer, task, l2orl.AgentLoss(), learner, opt_state, jnp.int32(2), 5, KEY
    )
    tx = optimizer.as_optax()
    expected, o = learner, tx.init(task.learner.params(learner))
    for _ in range(2):
        expected, o, _ = task.learner.step(None, expected, tx, o, None)
    np.testing.assert_allclose(state.x, expected.x, rtol=1e-6)
    assert float(loss) == pytest.approx(
        float(task.learner.fresh_loss(None, expected, None)[0]), rel=1e-5
    )
    assert isinstance(metrics, l2orl.UpdateMetrics)
    assert float(metrics.episodes) == 2.0  # one per update that ran
    assert float(metrics.return_sum) == pytest.approx(-2 * float(metrics.loss), rel=1e-6)


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
    trainer = l2orl.MetaTrainer(toy_optimizer(), (toy_task(2, "staggered", 3),))
    whole = trainer.run(6, tmp_path / "whole", checkpoint_every=1, progress=False)
    names = sorted(p.name for p in (tmp_path / "whole" / "checkpoints").iterdir())
    assert names == ["step-000005.l2o", "step-000006.l2o"]  # keep_checkpoints=2
    trainer.run(4, tmp_path / "grown", checkpoint_every=1, keep_checkpoints=0, progress=False)
    assert len(list((tmp_path / "grown" / "checkpoints").iterdir())) == 4  # 0 keeps all
    newest = tmp_path / "grown" / "checkpoints" / "step-000004.l2o"
    newest.write_bytes(newest.read_bytes()[:100])  # a write cut short
    with pytest.warns(UserWarning, match="skipping an unreadable checkpoint"):
        grown = trainer.run(6, tmp_path / "grown", checkpoint_every=1, progress=False)
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
        trainer.run(8, tmp_path / "grown", checkpoint_every=1, progress=False)
    after = {p.name: p.read_bytes() for p in (tmp_path / "grown").rglob("*") if p.is_file()}
    assert {k: v for k, v in after.items() if k != "lock"} == {
        k: v for k, v in before.items() if k != "lock"
    }


def test_a_refused_resume_names_each_differing_setting(tmp_path):
    trainer = l2orl.MetaTrainer(toy_optimizer(), (toy_task(2),), task_normalize=0.5)
    trainer.run(1, tmp_path, progress=False, settings={"meta_lr": 1e-3})
    other = dataclasses.replace(trainer, task_normalize=1.0)
    with pytest.raises(ValueError, match=r"task_normalize: 0\.5 in the folder, 1\.0 now"):
        other.run(1, tmp_path, progress=False, settings={"meta_lr": 1e-3})
    with pytest.raises(ValueError, match=r"settings\.meta_lr: 0\.001 in the folder, 0\.003 now"):
        trainer.run(1, tmp_path, progress=False, settings={"meta_lr": 3e-3})
    with pytest.raises(ValueError, match="keep_checkpoints must be an int ≥ 0, got -1"):
        trainer.run(1, tmp_path, keep_checkpoints=-1, progress=False)
    with pytest.raises(ValueError, match="is a file, not a folder"):
        trainer.run(1, tmp_path / "config.json", progress=False)
