"""The public state and result types, and the small public helpers: what each holds, that
every state survives a checkpoint, and the errors they raise."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import l2orl
import l2orl.rl as rl
from helpers import (
    KEY,
    SEARCH_STRATEGIES,
    SMALL_NET,
    grads_like,
    params_tree,
    toy_optimizer,
    toy_task,
    toy_training,
)


def _round_trip(tree, tmp_path):
    path = l2orl.save_tree(tmp_path / "state.l2o", tree)
    return l2orl.load_tree(path, like=tree)


def _optimizer_states():
    params = params_tree()
    star = l2orl.star()
    star_state = star.init(params)
    _, adafactor_state = l2orl.find_part(
        star.branch.preprocessor, l2orl.AdafacFeatures, star_state.preprocessor
    )
    return [
        (l2orl.MomentRatioState, l2orl.optim4rl().init(params)),
        (l2orl.BranchState, l2orl.l2lgd2().init(params)),
        (l2orl.AdafacState, adafactor_state["w"]),  # one per parameter leaf
    ]


@pytest.mark.parametrize(("cls", "state"), _optimizer_states(), ids=lambda x: str(x)[:20])
def test_optimizer_states_survive_a_checkpoint(cls, state, tmp_path):
    assert type(state) is cls
    restored = _round_trip(state, tmp_path)
    assert type(restored) is cls and eqx.tree_equal(restored, state)


def test_meta_states_survive_a_checkpoint(tmp_path):
    training = toy_training(2, estimator=l2orl.PES())
    state = training.init(KEY)
    assert type(state) is l2orl.TruncatedState and type(state.agents[0]) is l2orl.AgentsState
    assert isinstance(state, l2orl.AbstractMetaState)
    assert type(state.estimator_states[0]) is l2orl.PESState
    assert type(state.estimator_states[0].negative) is l2orl.AgentsState
    restored = _round_trip(state, tmp_path)
    assert type(restored) is l2orl.TruncatedState and eqx.tree_equal(restored, state)
    np.testing.assert_array_equal(state.agents[0].age, [0, 0])
    # After a meta-step too: the agents have aged and the PES pairs accumulated noise.
    stepped, _ = eqx.filter_jit(type(training).step)(training, state)
    np.testing.assert_array_equal(stepped.agents[0].age, [4, 4])
    assert eqx.tree_equal(_round_trip(stepped, tmp_path), stepped)


@pytest.mark.parametrize("strategy", SEARCH_STRATEGIES, ids=lambda s: type(s).__name__)
def test_lifetime_states_survive_a_checkpoint(strategy, tmp_path):
    training = l2orl.LifetimeTraining(toy_optimizer(), (toy_task(),), 2, strategy=strategy)
    state = training.init(KEY)
    assert type(state) is l2orl.LifetimeState and isinstance(state, l2orl.AbstractMetaState)
    stepped, _ = eqx.filter_jit(type(training).step)(training, state)
    for s in (state, stepped):
        restored = _round_trip(s, tmp_path)
        assert type(restored) is l2orl.LifetimeState
        assert jax.tree.structure(restored) == jax.tree.structure(s)
        # bit for bit; evosax's `best_solution` starts as NaN
        a, b = (eqx.tree_at(lambda x: x.key, x, jax.random.key_data(x.key)) for x in (s, restored))
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
            assert x.dtype == y.dtype and np.array_equal(x, y, equal_nan=True)
    assert int(stepped.meta_step) == 1


def test_estimate_metrics_log_the_mean_return_of_all_agents_and_of_the_older_half():
    unrolls = l2orl.UpdateMetrics(
        loss=jnp.asarray([0.1, 0.2, 0.3, 0.4]),
        return_sum=jnp.asarray([1.0, 2.0, 9.0, 12.0]),
        episodes=jnp.asarray([1.0, 1.0, 3.0, 3.0]),
    )
    ages = jnp.asarray([3, 40, 90, 2])  # the older half: agents 1 and 2
    metrics = l2orl.EstimateMetrics.of(jnp.float32(0.5), unrolls, ages, length=4)
    log = metrics.log()
    assert set(log) == {"meta_loss", "agent_return", "late_return", "agent_loss", "episodes"}
    assert float(log["agent_return"]) == 24.0 / 8.0
    assert float(log["late_return"]) == 11.0 / 4.0
    assert int(metrics.inner_updates) == 16 and metrics.unrolls == 4
    assert float(l2orl.mean_return(jnp.float32(0.0), jnp.float32(0.0))) == 0.0  # no episode


def test_learner_state_trajectory_and_episode_stats():
    learner = rl.A2C(n_envs=3, rollout_length=4, network=SMALL_NET)
    catch = rl.make("Catch")
    state = learner.init(catch, KEY)
    assert type(state) is rl.LearnerState
    assert eqx.tree_equal(learner.params(state), state.params)
    state, trajectory, stats = learner.rollout(catch, state, KEY)
    assert type(trajectory) is rl.Trajectory and trajectory.rewards.shape == (4, 3)
    assert type(stats) is rl.EpisodeStats
    metrics = stats.with_loss(jnp.float32(1.5), {"entropy": jnp.float32(0.3)})
    assert type(metrics) is l2orl.UpdateMetrics
    assert set(metrics.as_dict()) == {"loss", "return_sum", "episodes", "length_sum", "entropy"}


def test_compare_runs_baselines_on_the_same_seeds_behind_one_clip():
    learner = rl.A2C(n_envs=4, rollout_length=10, network=SMALL_NET)  # episodes last 9 steps
    common = dict(learner=learner, seeds=2, key=3)
    result = rl.compare(
        {}, "Catch", 12, lr=1e-2, baselines=("adam",), clip=optax.clip(1.0), **common
    )
    assert type(result) is rl.Evaluation and result.final_fraction == rl.FINAL_FRACTION
    assert list(result.results) == ["adam 0.01"]
    assert all(type(r) is rl.OptimizerResult for r in result.results.values())
    # The row is Adam behind the clip, on the seeds evaluate gives the same key.
    alone = rl.evaluate(
        {"adam": optax.chain(optax.clip(1.0), optax.adam(1e-2))},
        learner,
        rl.make("Catch"),
        12,
        seeds=2,
        key=3,
        final_fraction=rl.FINAL_FRACTION,
    )
    np.testing.assert_array_equal(result.results["adam 0.01"].curves, alone.results["adam"].curves)
    with pytest.raises(ValueError, match="unknown baseline 'adamw2'"):
        rl.compare({}, "Catch", 12, baselines=("adamw2",), **common)


def test_resolve_optimizer_by_preset_and_path(tmp_path):
    assert l2orl.resolve_optimizer("Optim4RL") == l2orl.optim4rl()
    assert l2orl.resolve_optimizer("STAR", step_size=0.5).step_size == 0.5
    path = l2orl.save(tmp_path / "o.l2o", l2orl.l2lgd2(step_size=0.2))
    assert l2orl.resolve_optimizer(path) == l2orl.l2lgd2(step_size=0.2)
    with pytest.raises(ValueError, match="'adamw' is neither a preset"):
        l2orl.resolve_optimizer("adamw")


def test_presets_are_factories_of_general_classes():
    assert set(l2orl.PRESETS) == {
        "Optim4RL",
        "Optim4RL-scale-free",
        "Optim4RL-scale-free-context",
        "Optim4RL-scale-free-Adam",
        "L2LGD2",
        "LinearOptim",
        "STAR",
        "OPEN-like",
        "VeLO-like",
    }
    star = l2orl.star(step_size=0.1)
    by_hand = l2orl.NominalStepOptimizer(star.branch, 0.1, 1e-3)
    assert by_hand == star
    params, grads = params_tree(), grads_like(params_tree())
    update = eqx.filter_jit(lambda o, g, p: o.update(g, o.init(p), p)[0])
    a, b = update(star, grads, params), update(by_hand, grads, params)
    assert eqx.tree_equal(a, b)
    no_accumulators = l2orl.Branch(
        l2orl.Identity(), l2orl.MLPCell(1, (4,), 4, key=KEY), l2orl.DirectionMagnitudeHead(n_in=4)
    )
    with pytest.raises(ValueError, match="has none"):
        l2orl.NominalStepOptimizer(no_accumulators, 0.1, 1e-3)
    k1, k2 = jax.random.split(jax.random.key(0))
    m_in = l2orl.ScaleFree(l2orl.Concatenate(l2orl.Identity(), l2orl.Momentum((0.9,))))
    scale_free = l2orl.MomentRatioOptimizer(
        l2orl.Branch(m_in, l2orl.GRUCell(2, key=k1), l2orl.SignExpHead()),
        l2orl.Branch(
            l2orl.ScaleFree(l2orl.Square(), 2), l2orl.GRUCell(1, key=k2), l2orl.ExpHead()
        ),
    )

    def readouts(o):
        return [o.m_branch.cell.readout, o.v_branch.cell.readout]

    zeros = [jax.tree.map(jnp.zeros_like, r) for r in readouts(scale_free)]
    assert eqx.tree_equal(eqx.tree_at(readouts, scale_free, zeros), l2orl.optim4rl_scale_free())


def test_find_part_searches_combinators():
    inner = l2orl.Momentum((0.9,))
    pre = l2orl.Concatenate(l2orl.Identity(), l2orl.RMSNormalize(l2orl.Concatenate(inner)))
    state = pre.init(params_tree())
    part, part_state = l2orl.find_part(pre, l2orl.Momentum, state)
    assert part is inner and eqx.tree_equal(part_state, inner.init(params_tree()))
    assert l2orl.find_part(pre, l2orl.Square) is None


def test_plot_metrics_reads_a_log_and_names_bad_input(tmp_path):
    log = tmp_path / "metrics.jsonl"
    log.write_text('{"meta_step": 1, "meta_loss": 0.5, "t/agent_return": 0.1}\n')
    png = l2orl.plot_metrics(log)
    assert png == log.with_suffix(".png") and png.stat().st_size > 1000
    with pytest.raises(ValueError, match=r"\['nope'\] not in the log"):
        l2orl.plot_metrics(log, ["nope"])
    log.write_text("not json\n")
    with pytest.raises(ValueError, match="is not a metrics log"):
        l2orl.plot_metrics(log)


def test_configured_env_gridworld_and_abstract_parts():
    env = rl.make("CartPole-v1", episode_length=20)
    assert type(env) is rl.ConfiguredEnv and env.default_params.max_steps_in_episode == 20
    grid = rl.Gridworld("small_dense_short", reward_scale=2.0)
    assert grid.reward_scale == 2.0 and grid.name == "small_dense_short"
    for abstract in (rl.AbstractTorso, rl.AbstractPolicyHead, rl.AbstractActorCritic):
        with pytest.raises(TypeError):
            abstract()


def test_env_families_make_their_envs():
    family = rl.env_family("small_dense_long")
    assert type(family) is rl.EnvFamily and "reward_scale" in family.options
    assert family.make("small_dense_long", reward_scale=3.0).reward_scale == 3.0
    custom = rl.EnvFamily(
        lambda: ("catch-alias",), lambda name: rl.make("Catch"), rl.default_learner
    )
    assert custom.make("catch-alias").name == rl.make("Catch").name
