import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import l2orl
import l2orl.rl as rl

CATCH_NET = rl.NetworkSpec("mlp", (256,), "relu")


@pytest.fixture(scope="module")
def catch():
    return rl.make("Catch")


def _phase_means(returns, n=10):
    r = np.asarray(returns)
    return np.nanmean(r[:, :n], axis=1), np.nanmean(r[:, -n:], axis=1)


def test_a2c_with_adam_learns_catch(catch):
    """Each seed improves on the random policy's -0.6 within 1e5 steps (full runs: benchmarks)."""
    result = rl.train(
        rl.A2C(n_envs=64, network=CATCH_NET),
        catch,
        optax.adam(1e-3),
        jax.random.split(jax.random.key(0), 2),
        80,
    )
    assert result.returns.shape == (2, 80) and result.env_steps[-1] == 80 * 64 * 20
    first, last = _phase_means(result.returns)
    assert np.all(first < -0.4) and np.all(last > first + 0.15)
    assert jnp.all(result.final_state.env_steps == 80 * 64 * 20)
    for name in ("loss", "policy_loss", "value_loss", "entropy"):
        assert np.all(np.isfinite(result.metrics[name]))


def test_a2c_with_an_untrained_learned_optimizer_in_a_chain(catch):
    """Behind a clip, untrained Optim4RL is sign descent with a step of about α: each of three
    A2C updates moves every parameter leaf, and no coordinate by more than 1.1α."""
    alpha = 1e-3
    tx = optax.chain(optax.clip(1.0), l2orl.optim4rl(alpha).as_optax())
    learner = rl.A2C(n_envs=16, network=CATCH_NET)
    state = learner.init(catch, jax.random.key(2))
    opt_state = tx.init(learner.params(state))
    step = eqx.filter_jit(learner.step)
    for key in jax.random.split(jax.random.key(3), 3):
        before = learner.params(state)
        state, opt_state, _ = step(catch, state, tx, opt_state, key)
        moved = jax.tree.map(
            lambda a, b: float(jnp.max(jnp.abs(a - b))), learner.params(state), before
        )
        assert all(0 < m <= 1.1 * alpha for m in jax.tree.leaves(moved))


def test_ppo_improves_on_cartpole():
    env = rl.make("CartPole-v1")
    result = rl.train(
        rl.PPO(n_envs=16, rollout_length=64),
        env,
        optax.adam(3e-4),
        jax.random.split(jax.random.key(0), 2),
        30,
    )
    first, last = np.asarray(result.returns[:, 0]), _phase_means(result.returns)[1]
    assert np.all(first < 40) and np.all(last > 2 * first)  # random play lasts ~22 steps
    assert np.all(np.isfinite(result.metrics["approx_kl"]))


def test_seeds_are_independent_and_reproducible(catch):
    learner, tx = rl.A2C(n_envs=8, rollout_length=10, network=CATCH_NET), optax.sgd(1e-2)
    keys = jax.random.split(jax.random.key(3), 2)
    a = rl.train(learner, catch, tx, keys, 5)
    b = rl.train(learner, catch, tx, keys, 5)
    assert type(a) is rl.TrainResult and a.returns.shape == a.episodes.shape == (2, 5)
    assert a.env_steps.tolist() == [80, 160, 240, 320, 400]  # 8 envs x 10 steps per update
    assert "episodes" not in a.metrics and a.metrics["loss"].shape == (2, 5)
    assert np.array_equal(a.metrics["loss"], b.metrics["loss"])
    assert not np.array_equal(a.metrics["loss"][0], a.metrics["loss"][1])


def test_hyperparameters_are_traced_not_static(catch):
    """Changing a float hyperparameter reuses the compiled training (no retrace)."""
    traces = []
    learner, tx = rl.A2C(n_envs=4, rollout_length=5, network=CATCH_NET), optax.sgd(1e-2)
    state = learner.init(catch, jax.random.key(0))

    @eqx.filter_jit
    def step(learner, state, opt_state, key):
        traces.append(1)
        return learner.step(catch, state, tx, opt_state, key)

    step(learner, state, tx.init(state.params), jax.random.key(1))
    step(
        eqx.tree_at(lambda a2c: a2c.gamma, learner, jnp.float32(0.9)),
        state,
        tx.init(state.params),
        jax.random.key(1),
    )
    assert len(traces) == 1 and isinstance(learner.gamma, jax.Array)


def test_bad_arguments(catch):
    learner = rl.A2C(n_envs=4, network=CATCH_NET)
    with pytest.raises(ValueError, match="n_updates must be a positive int, got 0"):
        rl.train(learner, catch, optax.sgd(0.1), jax.random.split(jax.random.key(0), 2), 0)
    with pytest.raises(ValueError, match="batch of PRNG keys"):
        rl.train(learner, catch, optax.sgd(0.1), jax.random.key(0), 3)
    with pytest.raises(ValueError, match="n_envs must be a positive int, got -1"):
        rl.A2C(n_envs=-1)
    with pytest.raises(ValueError, match="do not split into n_minibatches=3"):
        rl.PPO(n_envs=4, rollout_length=4, n_minibatches=3)


def test_rollout_gives_a_trajectory_with_time_and_env_axes(catch):
    learner = rl.A2C(n_envs=4, rollout_length=7, network=CATCH_NET)
    assert isinstance(learner, rl.AbstractActorCritic)
    state = learner.init(catch, jax.random.key(0))
    assert isinstance(state, rl.LearnerState)
    assert isinstance(state.network.policy, rl.AbstractPolicyHead)
    assert isinstance(state.network.policy_torso, rl.AbstractTorso)
    new_state, trajectory, stats = learner.rollout(catch, state, jax.random.key(1))
    assert isinstance(trajectory, rl.Trajectory)
    assert trajectory.obs.shape == (7, 4, 10, 5) and trajectory.rewards.shape == (7, 4)
    assert int(new_state.env_steps) == 28
    # Catch episodes last 9 steps: no episode has ended after 7.
    assert isinstance(stats, rl.EpisodeStats)
    assert float(stats.episodes) == 0.0 and not bool(jnp.any(trajectory.terminated))
    new_state, _, stats = learner.rollout(catch, new_state, jax.random.key(2))
    assert float(stats.episodes) == 4.0  # each env ends one episode at step 9
    assert float(stats.length_sum) == 4 * 9.0 and abs(float(stats.return_sum)) <= 4.0
