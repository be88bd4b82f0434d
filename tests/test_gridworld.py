"""The LPG gridworlds: maps, reset, movement, objects, truncation, and jit/vmap/scan.

Compilation dominates the run time, so the tests share a few jitted batched functions (one per
layout, always called with `N_DRAWS` cases) and assert on NumPy copies.
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import l2orl.rl as rl
from l2orl.rl._gridworld import EnvState

# name: (rows, cols, empty cells, objects, max_steps, respawn_prob)
EXPECTED = {
    "small_sparse_short": (5, 10, 24, 2, 50, 0.05),
    "small_sparse_long": (10, 5, 24, 2, 500, 0.05),
    "small_dense_short": (6, 8, 24, 2, 50, 0.5),
    "small_dense_long": (8, 6, 24, 2, 500, 0.5),
    "big_sparse_short": (12, 14, 120, 4, 50, 0.05),
    "big_sparse_long": (14, 12, 120, 4, 500, 0.05),
    "big_dense_short": (11, 15, 117, 4, 50, 0.5),
    "big_dense_long": (15, 11, 117, 4, 500, 0.5),
}
N_DRAWS = 4000  # cases per batched step, and draws per statistical test
SCALE = 10.0  # reward_scale of the environments under test


def _within_5_sigma(successes: int, n: int, p: float) -> bool:
    """Whether a Binomial(n, p) count is within 5 standard deviations of its mean."""
    return abs(successes - n * p) <= 5 * math.sqrt(n * p * (1 - p))


@functools.cache
def _env(name: str) -> rl.Gridworld:
    return rl.Gridworld(name, reward_scale=SCALE)


def _state(agent, objects, time=0, batch=()) -> EnvState:
    """A hand-built state; `agent` of shape `(*batch, 2)` or `(2,)` (then broadcast)."""
    agent = np.asarray(agent, dtype=np.int32)
    objects = np.asarray(objects, dtype=np.int32)
    return EnvState(
        agent_pos=jnp.asarray(np.broadcast_to(agent, (*batch, 2))),
        object_pos=jnp.asarray(np.broadcast_to(objects, (*batch, *objects.shape))),
        terminated=jnp.zeros(batch, dtype=bool),
        time=jnp.full(batch, time, dtype=jnp.int32),
    )


def _numpy(tree):
    return jax.tree.map(np.asarray, tree)


@functools.cache
def _step_batch(env: rl.Gridworld):
    """`step_env` over a batch of keys, states and actions, jitted."""
    return jax.jit(jax.vmap(env.step_env, in_axes=(0, 0, 0, None)))


def _step_many(env: rl.Gridworld, agent, objects, actions, seed: int = 0):
    """`N_DRAWS` steps (independent keys) from the given positions; actions broadcast."""
    keys = jax.random.split(jax.random.key(seed), N_DRAWS)
    state = _state(agent, objects, batch=(N_DRAWS,))
    actions = jnp.asarray(np.broadcast_to(np.asarray(actions, np.int32), (N_DRAWS,)))
    return _numpy(_step_batch(env)(keys, state, actions, env.default_params))


def _expected_obs(env: rl.Gridworld, agent, objects) -> np.ndarray:
    obs = np.zeros((env.num_objects + 1, env.layout.rows, env.layout.cols), np.float32)
    for channel, (r, c) in enumerate([*objects, agent]):
        if r >= 0:
            obs[channel, r, c] = 1
    return obs


def test_layout_table():
    assert list(rl.LAYOUTS) == list(EXPECTED)


@pytest.mark.parametrize("name", list(EXPECTED))
def test_layout(name):
    rows, cols, n_empty, n_objects, max_steps, respawn = EXPECTED[name]
    env = _env(name)
    assert env.name == name
    assert env.walls.shape == (rows, cols)
    assert env.walls[0].all() and env.walls[-1].all()
    assert env.walls[:, 0].all() and env.walls[:, -1].all()
    assert not env.walls[1:-1, 1:-1].any()
    assert len(env.empty_cells) == n_empty == int((~env.walls).sum())
    assert env.num_objects == n_objects
    assert env.default_params.max_steps_in_episode == max_steps
    half = n_objects // 2
    assert env.layout.objects == ((1.0, 0.0, respawn),) * half + ((-1.0, 0.5, respawn),) * half
    assert env.num_actions == 9 and env.action_space(env.default_params).n == 9
    space = env.observation_space(env.default_params)
    assert space.shape == (n_objects + 1, rows, cols) and space.dtype == jnp.float32
    obs, state = jax.eval_shape(env.reset, jax.random.key(0))
    assert obs.shape == space.shape and obs.dtype == jnp.float32
    assert state.object_pos.shape == (n_objects, 2) and state.agent_pos.shape == (2,)


def test_reset_every_layout():
    envs = [_env(name) for name in EXPECTED]

    @jax.jit
    def reset_all(key):
        keys = jax.random.split(key, N_DRAWS)
        return [jax.vmap(env.reset, in_axes=(0, None))(keys, env.default_params) for env in envs]

    for env, (obs, state) in zip(envs, _numpy(reset_all(jax.random.key(1))), strict=True):
        n = env.num_objects
        assert obs.shape == (N_DRAWS, n + 1, env.layout.rows, env.layout.cols)
        assert obs.dtype == np.float32
        assert state.agent_pos.dtype == state.object_pos.dtype == state.time.dtype == np.int32
        assert np.all(state.time == 0) and not np.any(state.terminated)
        positions = np.concatenate([state.object_pos, state.agent_pos[:, None]], axis=1)
        rows, cols = positions[..., 0], positions[..., 1]
        assert not env.walls[rows, cols].any()
        same = (rows[:, :, None] == rows[:, None, :]) & (cols[:, :, None] == cols[:, None, :])
        assert np.all(same.sum(axis=(1, 2)) == n + 1)  # agent and objects on distinct cells
        # Binary, one channel per object, agent channel last.
        expected = np.zeros_like(obs)
        expected[np.arange(N_DRAWS)[:, None], np.arange(n + 1), rows, cols] = 1
        np.testing.assert_array_equal(obs, expected)
        # Each of them is uniform over the empty cells.
        n_empty = len(env.empty_cells)
        cell_index = rows * env.layout.cols + cols
        for i in range(n + 1):
            counts = np.bincount(cell_index[:, i], minlength=env.walls.size)[~env.walls.ravel()]
            assert all(_within_5_sigma(int(c), N_DRAWS, 1 / n_empty) for c in counts)


# small_sparse_short: 5 × 10, interior rows 1..3, cols 1..8. Objects parked out of the way.
MOVES = [
    ((1, 1), 0, (1, 1)),  # stay
    ((2, 2), 1, (1, 2)),  # up
    ((2, 2), 2, (2, 3)),  # right
    ((2, 2), 3, (3, 2)),  # down
    ((2, 2), 4, (2, 1)),  # left
    ((2, 2), 5, (3, 1)),  # down-left
    ((2, 2), 6, (3, 3)),  # down-right
    ((2, 2), 7, (1, 3)),  # up-right
    ((2, 2), 8, (1, 1)),  # up-left
    ((1, 1), 1, (1, 1)),  # wall above
    ((1, 1), 4, (1, 1)),  # wall left
    ((1, 1), 8, (1, 1)),  # wall diagonally
    ((1, 1), 7, (1, 1)),  # up-right into the top wall
    ((3, 8), 3, (3, 8)),  # wall below
    ((3, 8), 6, (3, 8)),  # corner
    ((3, 8), 2, (3, 8)),  # wall right
    ((3, 8), 8, (2, 7)),  # diagonally away from the corner
    ((3, 5), 5, (3, 5)),  # down-left into the bottom wall
]


def test_movement():
    env = _env("small_sparse_short")
    objects = [(1, 6), (1, 7)]
    cases = np.resize(np.arange(len(MOVES)), N_DRAWS)  # each case many times over
    starts, actions, ends = (np.array(x)[cases] for x in zip(*MOVES, strict=True))
    obs, new, reward, terminated, info = _step_many(env, starts, objects, actions)
    np.testing.assert_array_equal(new.agent_pos, ends)
    assert new.agent_pos.dtype == np.int32
    for end, env_obs in zip(ends, obs, strict=True):
        np.testing.assert_array_equal(env_obs, _expected_obs(env, end, objects))
    assert np.all(reward == 0) and not np.any(terminated) and np.all(info["discount"] == 1)
    assert np.all(new.time == 1)
    assert np.all(new.object_pos == np.array(objects))
    # gymnax's `observe` hook agrees with the step's observation.
    first = jax.tree.map(lambda x: jnp.asarray(x[0]), new)
    observed = env.observe(jax.random.key(0), first, int(actions[0]), env.default_params)
    np.testing.assert_array_equal(observed, obs[0])


def test_collect_positive_object():
    env = _env("small_dense_short")  # respawn_prob 0.5
    obs, new, reward, terminated, info = _step_many(env, (2, 2), [(2, 3), (4, 6)], actions=2)
    assert np.all(new.agent_pos == [2, 3])
    assert np.all(reward == SCALE) and reward.dtype == np.float32
    assert not np.any(terminated) and np.all(info["discount"] == 1)
    assert np.all(new.object_pos[:, 1] == [4, 6])  # the other object stays
    # Collected, then respawned with probability 0.5 on an empty cell, else absent.
    pos = new.object_pos[:, 0]
    respawned = pos[:, 0] >= 0
    assert np.all(pos[~respawned] == -1)
    assert not env.walls[pos[respawned, 0], pos[respawned, 1]].any()
    assert _within_5_sigma(int(respawned.sum()), N_DRAWS, 0.5)
    # The observation shows it where it is, and nowhere when absent.
    assert np.all(obs[:, 0].sum(axis=(1, 2)) == respawned)
    assert np.all(obs[respawned, 0, pos[respawned, 0], pos[respawned, 1]] == 1)


def test_collect_negative_object_terminates_half_the_time():
    env = _env("small_sparse_short")
    _, new, reward, terminated, info = _step_many(env, (2, 2), [(1, 6), (3, 3)], actions=6)
    assert np.all(reward == -SCALE)
    assert _within_5_sigma(int(terminated.sum()), N_DRAWS, 0.5)
    assert np.all(new.terminated == terminated)
    assert np.all(info["discount"] == np.where(terminated, 0.0, 1.0))


def test_big_layout_collects_one_of_four():
    env = _env("big_dense_short")
    objects = [(1, 1), (2, 2), (5, 6), (3, 3)]  # the agent lands on the first -1 object
    _, new, reward, terminated, _ = _step_many(env, (5, 5), objects, actions=2)
    assert np.all(reward == -SCALE)
    assert _within_5_sigma(int(terminated.sum()), N_DRAWS, 0.5)
    for i in (0, 1, 3):
        assert np.all(new.object_pos[:, i] == objects[i])
    pos = new.object_pos[:, 2]
    assert _within_5_sigma(int((pos[:, 0] >= 0).sum()), N_DRAWS, 0.5)


@pytest.mark.parametrize("name", ["small_sparse_short", "small_dense_short", "big_dense_short"])
def test_respawn_frequency(name):
    env = _env(name)
    p = EXPECTED[name][5]
    absent = [(-1, -1)] * env.num_objects
    obs, new, reward, terminated, _ = _step_many(env, (1, 1), absent, actions=0, seed=1)
    assert np.all(reward == 0) and not np.any(terminated)
    pos = new.object_pos
    present = pos[..., 0] >= 0
    assert np.all(pos[~present] == -1)
    assert not env.walls[pos[present][:, 0], pos[present][:, 1]].any()
    for i in range(env.num_objects):
        assert _within_5_sigma(int(present[:, i].sum()), N_DRAWS, p)
    np.testing.assert_array_equal(obs[:, :-1].sum(axis=(2, 3)), present.astype(np.float32))
    # Respawns cover the empty cells: with p = 0.5 each cell expects ≥ 68 hits.
    if p == 0.5:
        assert len({tuple(c) for c in pos[present]}) == len(env.empty_cells)


@functools.cache
def _gymnax_step_keys(env: rl.Gridworld):
    """gymnax's `step` (auto-reset, truncation) from one state under a batch of keys, jitted."""
    return jax.jit(jax.vmap(env.step, in_axes=(0, None, None, None)))


def test_truncation_and_auto_reset():
    env = _env("small_sparse_short")
    params = env.default_params
    max_steps = params.max_steps_in_episode
    objects = [(1, 6), (3, 8)]
    keys = jax.random.split(jax.random.key(3), 64)
    step = _gymnax_step_keys(env)

    before = _state((2, 2), objects, time=max_steps - 2)
    obs, state, _, terminated, truncated, info = _numpy(step(keys, before, 2, params))
    assert not np.any(terminated) and not np.any(truncated)
    assert np.all(state.time == max_steps - 1) and np.all(state.agent_pos == [2, 3])
    np.testing.assert_array_equal(info["final_observation"], obs)

    last = _state((2, 3), objects, time=max_steps - 1)
    obs, state, reward, terminated, truncated, info = _numpy(step(keys, last, 2, params))
    assert np.all(truncated) and not np.any(terminated) and np.all(reward == 0)
    assert reward.dtype == np.float32
    assert np.all(info["truncated"]) and not np.any(info["terminated"])
    np.testing.assert_array_equal(
        info["final_observation"], np.broadcast_to(_expected_obs(env, (2, 4), objects), obs.shape)
    )
    # Auto-reset: fresh episodes, whose observations are returned.
    assert np.all(state.time == 0) and not np.any(state.terminated)
    assert state.time.dtype == np.int32
    for i in range(len(keys)):
        expected = _expected_obs(env, state.agent_pos[i], state.object_pos[i])
        np.testing.assert_array_equal(obs[i], expected)
    assert len({p.tobytes() for p in state.agent_pos}) > 1


def test_termination_resets():
    env = _env("small_sparse_short")
    state = _state((2, 2), [(1, 6), (2, 3)], time=5)
    keys = jax.random.split(jax.random.key(4), 64)
    _, new, reward, terminated, truncated, info = _numpy(
        _gymnax_step_keys(env)(keys, state, 2, env.default_params)
    )
    assert np.all(reward == -SCALE) and not np.any(truncated)
    assert 0 < int(terminated.sum()) < 64
    assert np.all(np.where(terminated, new.time == 0, new.time == 6))
    # The final observation shows the agent on the collected object's cell.
    assert np.all(info["final_observation"][:, -1, 2, 3] == 1)


def test_jit_vmap_scan():
    env = _env("big_dense_long")
    params = env.default_params
    n_envs, n_steps = 64, 100

    def one_step(carry, key):
        obs, state = carry
        key_act, key_step = jax.random.split(key)
        actions = jax.random.randint(key_act, (n_envs,), 0, env.num_actions)
        keys = jax.random.split(key_step, n_envs)
        obs, state, reward, terminated, truncated, _ = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
            keys, state, actions, params
        )
        return (obs, state), (reward, terminated, truncated)

    @jax.jit
    def run(key):
        key_reset, key_steps = jax.random.split(key)
        keys = jax.random.split(key_reset, n_envs)
        start = jax.vmap(env.reset, in_axes=(0, None))(keys, params)
        end, outs = jax.lax.scan(one_step, start, jax.random.split(key_steps, n_steps))
        return start, end, outs

    start, end, (reward, terminated, truncated) = run(jax.random.key(6))

    def signature(tree):
        return [(x.shape, x.dtype, x.weak_type) for x in jax.tree.leaves(tree)]

    assert signature(end) == signature(start)
    assert not any(x.weak_type for x in jax.tree.leaves(start))
    obs, state = _numpy(end)
    assert state.object_pos.shape == (n_envs, 4, 2)
    assert reward.shape == (n_steps, n_envs) and reward.dtype == jnp.float32
    assert terminated.dtype == truncated.dtype == jnp.bool_
    # Objects may respawn on one cell, so one step can collect several: sums of ±SCALE.
    assert set(np.unique(np.asarray(reward) / SCALE).tolist()) <= {-2.0, -1.0, 0.0, 1.0, 2.0}
    assert np.any(np.asarray(reward) != 0) and np.any(np.asarray(terminated))
    assert not np.any(np.asarray(truncated))  # 100 < 500 steps
    assert np.all(state.time <= n_steps)
    assert np.all((obs == 0) | (obs == 1)) and np.all(obs[:, -1].sum((1, 2)) == 1)


def test_unknown_layout():
    with pytest.raises(ValueError, match="unknown gridworld layout") as error:
        rl.Gridworld("small_sparse")
    for name in rl.LAYOUTS:
        assert name in str(error.value)


@pytest.mark.parametrize("scale", [0.0, -1.0, math.inf, math.nan])
def test_bad_reward_scale(scale):
    with pytest.raises(ValueError, match="reward_scale"):
        rl.Gridworld("small_sparse_short", reward_scale=scale)


def test_integer_reward_scale():
    assert rl.Gridworld("small_sparse_short", reward_scale=100).reward_scale == 100.0
    assert rl.Gridworld("small_sparse_short").reward_scale == 1.0
