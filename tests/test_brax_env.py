"""`BraxEnv`: real brax environments behind gymnax 1.0's API (no mocks).

brax compiles are slow on CPU, so most checks use brax's trivial `fast` env (never terminates;
observation `[pos, vel]`, velocity grows while the action is positive) and share compiled
rollouts through module-scoped fixtures; one test runs `inverted_pendulum` on `spring`.
"""

import subprocess
import sys

import brax.envs
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import l2orl.rl as rl
from l2orl.rl._brax import BraxEnvParams, BraxEnvState

N_ENVS = 4
N_STEPS = 12


def make_rollout(env: rl.BraxEnv, n_envs: int, n_steps: int):
    """A jitted function: vmapped reset, then `lax.scan` of vmapped steps, random actions."""
    params = env.default_params
    reset = jax.vmap(env.reset, in_axes=(0, None))
    step = jax.vmap(env.step, in_axes=(0, 0, 0, None))

    @jax.jit
    def rollout(key):
        k_reset, k_steps = jax.random.split(key)
        obs0, state0 = reset(jax.random.split(k_reset, n_envs), params)

        def body(state, key):
            k_act, k_env = jax.random.split(key)
            actions = jax.random.uniform(k_act, (n_envs, env.num_actions), minval=-1, maxval=1)
            keys = jax.random.split(k_env, n_envs)
            obs, state, reward, terminated, truncated, info = step(keys, state, actions, params)
            out = (obs, reward, terminated, truncated, info["final_observation"], state.time)
            return state, out

        state, traj = jax.lax.scan(body, state0, jax.random.split(k_steps, n_steps))
        return obs0, state0, state, traj

    return rollout


def leaf_types(tree) -> list:
    return [(x.shape, x.dtype, x.weak_type) for x in jax.tree.leaves(tree)]


@pytest.fixture(scope="module")
def fast_env() -> rl.BraxEnv:
    return rl.BraxEnv("fast", episode_length=5)


@pytest.fixture(scope="module")
def fast_rollout(fast_env):
    return make_rollout(fast_env, N_ENVS, N_STEPS)(jax.random.key(0))


def test_spaces_match_outputs(fast_env, fast_rollout):
    params = fast_env.default_params
    assert isinstance(params, BraxEnvParams) and params.max_steps_in_episode == 5
    assert fast_env.name == "brax:fast" and fast_env.num_actions == 1
    obs_space, action_space = fast_env.observation_space(params), fast_env.action_space(params)
    assert obs_space.shape == (2,) and obs_space.dtype == jnp.float32
    assert action_space.shape == (1,) and (action_space.low, action_space.high) == (-1.0, 1.0)
    obs0, state0, _, (obs, *_) = fast_rollout
    assert isinstance(state0, BraxEnvState)
    assert obs0.shape == (N_ENVS, *obs_space.shape) and obs0.dtype == obs_space.dtype
    assert obs.shape == (N_STEPS, N_ENVS, *obs_space.shape) and obs.dtype == obs_space.dtype
    # A single, un-vmapped reset, with a legacy uint32 key.
    obs1, state1 = fast_env.reset(jax.random.PRNGKey(1))
    assert obs1.shape == obs_space.shape and state1.time.dtype == jnp.int32
    sample = action_space.sample(jax.random.key(2))
    assert sample.shape == (1,) and bool(action_space.contains(sample))


def test_rollout_dtypes_stable_and_finite(fast_env, fast_rollout):
    _, state0, state, (obs, reward, terminated, truncated, final_obs, time) = fast_rollout
    assert leaf_types(state) == leaf_types(state0)
    assert not any(weak for *_, weak in leaf_types(state0))
    assert reward.dtype == jnp.float32 and reward.shape == (N_STEPS, N_ENVS)
    assert terminated.dtype == jnp.bool_ and truncated.dtype == jnp.bool_
    assert time.dtype == jnp.int32 and state0.time.dtype == jnp.int32
    assert not any(x.weak_type for x in (obs, reward, terminated, truncated, final_obs, time))
    assert np.isfinite(obs).all() and np.isfinite(reward).all() and np.isfinite(final_obs).all()
    # The step's outputs have exactly the types of its inputs: a stable `lax.scan` carry.
    action = jnp.zeros((1,), jnp.float32)
    single = jax.tree.map(lambda x: x[0], state0)
    out = jax.eval_shape(fast_env.step, jax.random.key(0), single, action)
    assert leaf_types(out[1]) == leaf_types(single)


def test_truncation_and_auto_reset(fast_rollout):
    obs0, _, _, (obs, _, terminated, truncated, final_obs, time) = fast_rollout
    assert not terminated.any()  # `fast` never terminates
    expected = np.zeros((N_STEPS, N_ENVS), bool)
    expected[[4, 9]] = True  # episodes of 5 steps
    np.testing.assert_array_equal(truncated, expected)
    np.testing.assert_array_equal(time[:, 0], [1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1, 2])
    # After a truncation the env restarts from its reset observation; final_observation keeps
    # the last observation of the episode; otherwise the two are the same.
    np.testing.assert_array_equal(obs[4], obs0)
    np.testing.assert_array_equal(obs[9], obs0)
    np.testing.assert_array_equal(final_obs[~truncated], obs[~truncated])
    # At a truncation, final_observation continues the episode: the velocity grew by 0 or
    # 0.02 over the previous step's.
    for t in (4, 9):
        dvel = np.asarray(final_obs[t, :, 1] - obs[t - 1, :, 1])
        assert (np.isclose(dvel, 0.0, atol=1e-6) | np.isclose(dvel, 0.02, atol=1e-6)).all()
    assert (final_obs[np.array([4, 9])] != obs[np.array([4, 9])]).any()


def test_action_repeat_sums_rewards_and_truncates_in_agent_steps(fast_env):
    repeat = rl.BraxEnv("fast", episode_length=5, action_repeat=2)
    assert repeat.default_params.max_steps_in_episode == 3  # ceil(5 / 2), as brax truncates
    action = jnp.ones((1,), jnp.float32)
    key = jax.random.key(0)
    _, single_state = fast_env.reset(key)
    single_rewards = []
    for _ in range(4):
        _, single_state, reward, *_ = fast_env.step(key, single_state, action)
        single_rewards.append(float(reward))
    _, state = repeat.reset(key)
    truncations = []
    for i in range(2):
        _, state, reward, terminated, truncated, _ = repeat.step(key, state, action)
        np.testing.assert_allclose(reward, sum(single_rewards[2 * i : 2 * i + 2]), rtol=1e-6)
        truncations.append(bool(truncated))
        assert reward.dtype == jnp.float32 and not bool(terminated)
    _, state, _, _, truncated, _ = repeat.step(key, state, action)
    assert truncations == [False, False] and bool(truncated) and int(state.time) == 0


def test_fresh_reset_matches_first_state_reset_on_deterministic_env(fast_rollout):
    fresh = rl.BraxEnv("fast", episode_length=5, fresh_reset=True)
    obs0, state0, _, traj = make_rollout(fresh, N_ENVS, N_STEPS)(jax.random.key(0))
    assert state0.initial_state is None
    np.testing.assert_array_equal(obs0, fast_rollout[0])
    # `fast` resets to zeros, so both auto-reset modes give the same rollout.
    for a, b in zip(traj, fast_rollout[3], strict=True):
        np.testing.assert_array_equal(a, b)


class InPlaceFast(brax.envs.fast.Fast):
    """brax's `fast`, but like hopper its `step` updates `metrics` in place, with a Python float,
    and returns a Python-float `done`."""

    def reset(self, rng):
        return super().reset(rng).replace(metrics={"vel": jnp.zeros(()), "bonus": jnp.zeros(())})

    def step(self, state, action):
        new = super().step(state, action)  # shares `state.metrics`, as `State.replace` does
        state.metrics.update(vel=new.obs[1], bonus=1.0)
        return new.replace(done=0.0)


@pytest.fixture(scope="module")
def in_place_env():
    brax.envs.register_environment("l2orl_test_in_place_fast", InPlaceFast)
    yield rl.BraxEnv("l2orl_test_in_place_fast", episode_length=6, action_repeat=2)
    del brax.envs._envs["l2orl_test_in_place_fast"]


def test_env_that_mutates_its_state_in_place(in_place_env):
    assert in_place_env.name == "brax:l2orl_test_in_place_fast"
    _, state0, state, traj = make_rollout(in_place_env, N_ENVS, N_STEPS)(jax.random.key(0))
    _, _, terminated, truncated, _, time = traj
    assert leaf_types(state) == leaf_types(state0)
    assert not any(weak for *_, weak in leaf_types(state0))
    assert not terminated.any() and truncated[2::3].all() and not truncated[time > 0].any()
    # The metrics dict of the restored first state was not overwritten by later steps.
    np.testing.assert_array_equal(state0.initial_state.metrics["bonus"], 0.0)
    np.testing.assert_array_equal(state.initial_state.metrics["bonus"], 0.0)
    *_, info = in_place_env.step(
        jax.random.key(1), jax.tree.map(lambda x: x[0], state0), jnp.ones((1,))
    )
    assert float(info["metrics"]["bonus"]) == 1.0 and info["metrics"]["bonus"].dtype == jnp.float32
    np.testing.assert_allclose(info["metrics"]["vel"], 0.04)  # two brax steps of +0.02


class SmoothFast(brax.envs.fast.Fast):
    """brax's `fast` with a differentiable step: the velocity grows by `action·dt`, the position
    by `velocity·dt`, and the reward is the position."""

    def step(self, state, action):
        pipeline = state.pipeline_state
        vel = pipeline.xd.vel + action[0] * self._dt
        pos = pipeline.x.pos + vel * self._dt
        pipeline = pipeline.replace(x=pipeline.x.replace(pos=pos), xd=pipeline.xd.replace(vel=vel))
        obs = jnp.stack([pos[0], vel[0]])
        return state.replace(pipeline_state=pipeline, obs=obs, reward=pos[0], done=jnp.zeros(()))


@pytest.fixture(scope="module")
def smooth_name():
    brax.envs.register_environment("l2orl_test_smooth_fast", SmoothFast)
    yield "l2orl_test_smooth_fast"
    del brax.envs._envs["l2orl_test_smooth_fast"]


def return_gradient(env: rl.BraxEnv, n_steps: int) -> jax.Array:
    """The gradient of an `n_steps` rollout's return with respect to its actions."""
    _, state0 = env.reset(jax.random.key(0))

    def rollout_return(actions):
        def body(state, action):
            _, state, reward, *_ = env.step(jax.random.key(1), state, action)
            return state, reward

        return jnp.sum(jax.lax.scan(body, state0, actions)[1])

    return jax.jit(jax.grad(rollout_return))(jnp.full((n_steps, 1), 0.5, jnp.float32))


def test_physics_gradient_switch_stops_or_passes_the_simulator_gradient(smooth_name):
    off = rl.BraxEnv(smooth_name, episode_length=100)
    on = rl.BraxEnv(smooth_name, episode_length=100, physics_gradient=True)
    assert not off.physics_gradient and on.physics_gradient
    assert off.with_transition_gradients().physics_gradient  # gymnax's name for the switch
    assert rl.make("brax:fast", physics_gradient=True).physics_gradient
    n, dt = 6, 0.02
    np.testing.assert_array_equal(return_gradient(off, n), 0.0)  # stopped at the simulator
    # On: the return Σ_t pos_t, pos_t = dt²·Σ_{s≤t} Σ_{u≤s} a_u, so ∂/∂a_u = dt²·(n−u)(n−u+1)/2.
    u = np.arange(n)
    expected = dt**2 * (n - u) * (n - u + 1) / 2
    np.testing.assert_allclose(return_gradient(on, n)[:, 0], expected, rtol=1e-5)


def test_physics_gradient_reaches_a_learners_policy_through_its_actions(smooth_name):
    """The gradient of a PPO rollout's rewards with respect to the policy's parameters, which
    reach the env only through the (reparameterised) actions: zero with the switch off,
    nonzero and finite with it on."""
    ppo = rl.PPO(
        n_envs=2,
        rollout_length=5,
        n_minibatches=1,
        n_epochs=1,
        network=rl.NetworkSpec("mlp", (8,)),
    )

    def gradient(physics_gradient):
        env = rl.BraxEnv(smooth_name, episode_length=100, physics_gradient=physics_gradient)
        state = ppo.init(env, jax.random.key(0))

        def rewards(network):
            _, trajectory, _ = ppo.rollout(
                env, eqx.tree_at(lambda s: s.network, state, network), jax.random.key(1)
            )
            return jnp.sum(trajectory.rewards)

        grads = eqx.filter_jit(eqx.filter_grad(rewards))(state.network)
        return jnp.concatenate([g.ravel() for g in jax.tree.leaves(grads)])

    off, on = gradient(False), gradient(True)
    np.testing.assert_array_equal(off, 0.0)
    assert np.isfinite(on).all() and np.abs(on).max() > 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"name": "nope"}, r"unknown brax environment 'nope'.*'inverted_pendulum'"),
        ({"name": "hopper", "backend": "warp"}, r"unknown brax backend 'warp'.*'spring'"),
        ({"name": "hopper", "episode_length": 0}, r"episode_length must be a positive int, got 0"),
        ({"name": "hopper", "episode_length": -3}, r"episode_length .* got -3"),
        ({"name": "hopper", "episode_length": True}, r"episode_length .* got True"),
        ({"name": "hopper", "action_repeat": 0}, r"action_repeat must be a positive int, got 0"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        rl.BraxEnv(**kwargs)


def test_import_l2orl_does_not_import_brax():
    code = "import sys, l2orl, l2orl.rl; print('brax' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.slow  # spring's step compiles for a minute on a shared 2-core CPU
def test_inverted_pendulum_spring_terminates_and_restores_first_state():
    env = rl.BraxEnv("inverted_pendulum", backend="spring", episode_length=40)
    n_envs, n_steps = 8, 100
    params = env.default_params
    assert env.observation_space(params).shape == (4,) and env.action_space(params).shape == (1,)
    obs0, state0, state, traj = make_rollout(env, n_envs, n_steps)(jax.random.key(3))
    obs, reward, terminated, truncated, final_obs, time = traj
    assert obs0.shape == (n_envs, 4) and obs.shape == (n_steps, n_envs, 4)
    assert leaf_types(state) == leaf_types(state0)
    assert not any(weak for *_, weak in leaf_types(state0))
    assert reward.dtype == jnp.float32 and np.isfinite(obs).all() and np.isfinite(final_obs).all()
    np.testing.assert_array_equal(reward, 1.0)
    assert terminated.any(), "random actions should drop the pole within 100 steps"
    assert not (terminated & truncated).any()
    done = terminated | truncated
    np.testing.assert_array_equal(time == 0, done)
    # brax ends an episode when the hinge angle (obs[1]) passes 0.2 rad.
    assert (np.abs(final_obs[terminated][:, 1]) > 0.2).all()
    assert (np.abs(final_obs[~terminated][:, 1]) <= 0.2).all()
    # Every ended episode restarts from that env's own first reset state.
    t_idx, env_idx = np.nonzero(done)
    np.testing.assert_array_equal(obs[t_idx, env_idx], obs0[env_idx])
    np.testing.assert_array_equal(final_obs[~done], obs[~done])


@pytest.mark.slow  # fresh_reset's logic is tested on `fast` above
def test_inverted_pendulum_fresh_reset_draws_new_initial_states():
    env = rl.BraxEnv("inverted_pendulum", backend="spring", episode_length=40, fresh_reset=True)
    n_envs, n_steps = 8, 100
    obs0, state0, state, traj = make_rollout(env, n_envs, n_steps)(jax.random.key(3))
    obs, _, terminated, truncated, final_obs, time = traj
    assert state0.initial_state is None and leaf_types(state) == leaf_types(state0)
    done = terminated | truncated
    assert terminated.any()
    np.testing.assert_array_equal(time == 0, done)
    # A new episode starts from a fresh draw of brax's reset noise (uniform in ±0.01), not
    # from the env's first state.
    t_idx, env_idx = np.nonzero(done)
    assert np.abs(obs[t_idx, env_idx]).max() <= 0.01
    assert (obs[t_idx, env_idx] != obs0[env_idx]).any(axis=-1).all()
    np.testing.assert_array_equal(final_obs[~done], obs[~done])


def test_mjx_refuses_the_physics_gradient_where_its_solver_loops():
    """MJX's constraint solver runs `opt.iterations` in a `lax.while_loop`, which reverse-mode
    autodiff refuses: the switch is refused for such a model, up front."""
    with pytest.raises(ValueError, match=r"mjx: .* 100 iterations in a jax.lax.while_loop"):
        rl.BraxEnv("inverted_pendulum", backend="mjx", physics_gradient=True)
    env = rl.BraxEnv("inverted_pendulum", backend="mjx")
    with pytest.raises(ValueError, match="reverse-mode autodiff does not support"):
        env.with_transition_gradients()
    assert rl.BraxEnv("ant", backend="mjx", physics_gradient=True).physics_gradient  # 1 iteration


@pytest.mark.slow  # each backend compiles for minutes on a 2-core CPU
@pytest.mark.parametrize("backend", ["positional", "generalized", "mjx"])
def test_backend_steps_auto_resets_and_trains_ppo(backend):
    """inverted_pendulum on each of brax's other physics backends: the gymnax 6-tuple, finite
    observations and rewards, stable state types, auto-reset at the time limit, and a PPO
    update."""
    env = rl.make("brax:inverted_pendulum", backend=backend, episode_length=5)
    assert env.backend == env.brax_env.backend == backend  # brax built that pipeline
    params = env.default_params
    obs0, state0 = env.reset(jax.random.key(0), params)
    out = env.step(jax.random.key(1), state0, jnp.zeros((1,), jnp.float32), params)
    assert len(out) == 6  # (obs, state, reward, terminated, truncated, info)
    obs, state, reward, terminated, truncated, info = out
    assert obs.shape == obs0.shape == (4,) and isinstance(state, BraxEnvState)
    assert (reward.dtype, terminated.dtype, truncated.dtype) == (jnp.float32, jnp.bool_, jnp.bool_)
    assert {"final_observation", "discount", "terminated", "truncated", "metrics"} <= set(info)

    n_envs, n_steps = 4, 12
    obs0, state0, state, traj = make_rollout(env, n_envs, n_steps)(jax.random.key(3))
    obs, reward, terminated, truncated, final_obs, time = traj
    assert leaf_types(state) == leaf_types(state0)
    assert not any(weak for *_, weak in leaf_types(state0))
    assert np.isfinite(obs).all() and np.isfinite(final_obs).all() and np.isfinite(reward).all()
    np.testing.assert_array_equal(reward, 1.0)  # inverted_pendulum's alive reward
    done = terminated | truncated
    assert done.any() and not (terminated & truncated).any()
    # `time` counts each episode's steps and restarts at 0 when one ends; truncation comes
    # exactly at the 5-step limit, termination when the hinge angle passes 0.2 rad.
    reached = np.concatenate([np.zeros((1, n_envs), np.int32), time[:-1]]) + 1
    np.testing.assert_array_equal(time, np.where(done, 0, reached))
    np.testing.assert_array_equal(truncated, (reached == 5) & ~terminated)
    assert (np.abs(final_obs[terminated][:, 1]) > 0.2).all()
    t_idx, env_idx = np.nonzero(done)
    np.testing.assert_array_equal(obs[t_idx, env_idx], obs0[env_idx])  # auto-reset
    np.testing.assert_array_equal(final_obs[~done], obs[~done])

    ppo = rl.PPO(
        n_envs=2,
        rollout_length=4,
        n_epochs=1,
        n_minibatches=1,
        network=rl.NetworkSpec("mlp", (8,)),
    )
    tx = optax.adam(1e-2)
    learner = ppo.init(env, jax.random.key(4))
    opt_state = tx.init(ppo.params(learner))
    new, _, metrics = eqx.filter_jit(ppo.step)(env, learner, tx, opt_state, jax.random.key(5))
    assert np.isfinite(float(metrics.loss)) and int(new.env_steps) == 8
    assert not eqx.tree_equal(ppo.params(new), ppo.params(learner))
