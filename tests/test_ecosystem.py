"""Learned optimizers inside other JAX code: flax `TrainState`s saved by flax serialization and
by orbax, and optax's `apply_if_finite` skipping non-finite gradients."""

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest
from flax.training.train_state import TrainState

import l2orl
from helpers import in_slow_tier

PARAMS = {
    "dense": {"kernel": jnp.ones((3, 2)) * 0.1, "bias": jnp.zeros(2)},
    "log_std": jnp.zeros(2),
}


def _grads(i: int):
    return jax.tree.map(lambda p: jnp.sin(p + i) + 0.1 * i, PARAMS)


def _trained(make) -> TrainState:
    """A purejaxrl-style `TrainState` (clipping chained before the learned optimizer) after
    three updates, so every part of the optimizer's state has moved."""
    tx = optax.chain(optax.clip_by_global_norm(0.5), make().as_optax())
    state = TrainState.create(apply_fn=lambda p, x: x, params=PARAMS, tx=tx)
    for i in range(3):
        state = state.apply_gradients(grads=_grads(i))
    return state


def _assert_same(a, b):
    if isinstance(a, TrainState):  # their transforms are other function objects: not compared
        a, b = (a.step, a.params, a.opt_state), (b.step, b.params, b.opt_state)
    a_leaves, a_def = jax.tree.flatten(a)
    b_leaves, b_def = jax.tree.flatten(b)
    assert a_def == b_def
    for x, y in zip(a_leaves, b_leaves, strict=True):
        assert np.array_equal(np.asarray(x), np.asarray(y))


@pytest.mark.parametrize("name", [in_slow_tier(n, n) for n in sorted(l2orl.PRESETS)])
def test_train_state_round_trips_through_flax_serialization(name):
    state = _trained(l2orl.PRESETS[name])
    blank = _trained(l2orl.PRESETS[name]).replace(
        step=0, params=jax.tree.map(jnp.zeros_like, PARAMS)
    )
    blank = blank.replace(opt_state=jax.tree.map(jnp.zeros_like, blank.opt_state))
    restored = flax.serialization.from_bytes(blank, flax.serialization.to_bytes(state))
    _assert_same(restored.opt_state, state.opt_state)
    assert int(restored.step) == 3
    # the restored state goes on exactly as the original
    _assert_same(restored.apply_gradients(grads=_grads(3)), state.apply_gradients(grads=_grads(3)))


@pytest.mark.parametrize("name", [in_slow_tier(n, n) for n in sorted(l2orl.PRESETS)])
def test_train_state_round_trips_through_orbax(name, tmp_path):
    state = _trained(l2orl.PRESETS[name])
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(tmp_path / "state", state)
        checkpointer.wait_until_finished()
        restored = checkpointer.restore(tmp_path / "state", state)
    assert type(restored.opt_state[1][0]) is type(state.opt_state[1][0])  # the state's classes
    _assert_same(restored.opt_state, state.opt_state)
    _assert_same(restored.apply_gradients(grads=_grads(3)), state.apply_gradients(grads=_grads(3)))


def test_apply_if_finite_skips_a_nan_step_and_keeps_the_hidden_state_clean():
    tx = optax.apply_if_finite(l2orl.optim4rl().as_optax(), max_consecutive_errors=3)
    state = tx.init(PARAMS)
    _, state = tx.update(_grads(0), state, PARAMS)
    nan = jax.tree.map(lambda g: g.at[..., 0].set(jnp.nan), _grads(1))
    updates, skipped = tx.update(nan, state, PARAMS)
    assert all(np.all(np.asarray(u) == 0) for u in jax.tree.leaves(updates))  # no move
    assert int(skipped.notfinite_count) == 1
    _assert_same(skipped.inner_state, state.inner_state)  # hidden state untouched by the NaN
    # the next finite step is the one a run that never saw the NaN takes
    after, _ = tx.update(_grads(1), skipped, PARAMS)
    clean, _ = tx.update(_grads(1), state, PARAMS)
    _assert_same(after, clean)
    assert all(np.all(np.isfinite(u)) for u in jax.tree.leaves(after))
