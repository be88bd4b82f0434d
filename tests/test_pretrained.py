import equinox as eqx
import jax
import jax.numpy as jnp
import optax
import pytest

import l2orl

GRIDWORLDS = [
    "small_dense_long",
    "small_dense_short",
    "big_sparse_short",
    "big_dense_short",
    "big_sparse_long",
    "big_dense_long",
]


def test_pretrained_gridworld_optimizer_and_manifest():
    opt = l2orl.pretrained("optim4rl-gridworld")
    assert isinstance(opt, l2orl.MomentRatioOptimizer)
    assert opt.n_meta_parameters == l2orl.optim4rl().n_meta_parameters
    manifest = l2orl.pretrained_manifest("optim4rl-gridworld")
    assert isinstance(manifest["version"], str) and manifest["version"]
    assert manifest["command"] == "python examples/pretrain_gridworld.py"
    settings = manifest["config"]["settings"]
    assert settings["env"] == GRIDWORLDS
    assert settings["reward_scale"] == [1000, 100, 100, 10, 10, 1]
    assert [t["update_scale"] for t in manifest["config"]["tasks"]] == [1, 3, 3, 3, 1, 3]
    training = manifest["training"]
    assert training["meta_steps"] == settings["meta_steps"]
    assert 0 <= training["skipped"] < training["meta_steps"]
    assert set(training["agent_return_last_tenth"]) == set(GRIDWORLDS)
    leaves = jax.tree.leaves(eqx_arrays(opt))
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in leaves)


def eqx_arrays(module):
    return eqx.filter(module, eqx.is_inexact_array)


def test_pretrained_step_size_and_use_as_optax():
    base = l2orl.pretrained("optim4rl-gridworld")
    opt = l2orl.pretrained("optim4rl-gridworld", step_size=3e-2)
    assert opt.step_size == 3e-2
    pairs = zip(jax.tree.leaves(eqx_arrays(opt)), jax.tree.leaves(eqx_arrays(base)), strict=True)
    assert all(bool(jnp.array_equal(a, b)) for a, b in pairs)
    # A learned optimizer that went through meta-training still descends a quadratic.
    target = jnp.linspace(-1.0, 1.0, 20)
    loss = lambda p: jnp.sum((p["w"] - target) ** 2)  # noqa: E731
    tx = opt.as_optax()
    params = {"w": jnp.zeros(20)}
    state = tx.init(params)
    for _ in range(100):
        updates, state = tx.update(jax.grad(loss)(params), state, params)
        params = optax.apply_updates(params, updates)
    assert loss(params) < 0.5 * loss({"w": jnp.zeros(20)})


def test_pretrained_bad_names_and_step_sizes():
    with pytest.raises(ValueError, match=r"unknown pretrained optimizer 'optim4rl'; available: "):
        l2orl.pretrained("optim4rl")
    with pytest.raises(ValueError, match="unknown pretrained optimizer"):
        l2orl.pretrained_manifest("adam")
    with pytest.raises(ValueError, match="step_size"):
        l2orl.pretrained("optim4rl-gridworld", step_size=0.0)
    assert set(l2orl.PRETRAINED) == {"optim4rl-gridworld"}
