import equinox as eqx
import jax
import jax.numpy as jnp
import optax
import pytest

import l2orl
import l2orl._pretrained as shipping

METADATA = {
    "description": "a test optimizer",
    "command": "python examples/paper/pretrain.py l2orl-rl",
    "config": {"settings": {"optimizer": "Optim4RL-scale-free", "seed": 0}},
    "training": {"meta_steps": 2, "skipped": 0},
    "validation": {"beats_initialisation": True},
}


@pytest.fixture
def shipped(tmp_path, monkeypatch):
    """A shipped optimizer named "test-rl": a real `.l2o` file in the registry's directory."""
    trained = jax.tree.map(
        lambda x: x - 0.1 if eqx.is_inexact_array(x) else x, l2orl.optim4rl_scale_free()
    )
    l2orl.save(tmp_path / "test-rl.l2o", trained, metadata=METADATA)
    monkeypatch.setattr(shipping, "_DIRECTORY", tmp_path)
    monkeypatch.setitem(l2orl.PRETRAINED, "test-rl", METADATA["description"])
    return trained


def eqx_arrays(module):
    return eqx.filter(module, eqx.is_inexact_array)


def test_no_optimizer_ships_that_has_not_beaten_its_initialisation():
    """Every shipped optimizer's manifest holds validation figures that say it beats its
    untrained initialisation on every validation task, and it loads as what it says."""
    assert l2orl.PRETRAINED
    for name in l2orl.PRETRAINED:
        manifest = l2orl.pretrained_manifest(name)
        validation = manifest["validation"]
        assert validation["suite"] == "validation" and validation["beats_initialisation"] is True
        assert set(validation["tasks"]) == {
            "Catch",
            "small_dense_short",
            "CartPole-v1",
            "brax:inverted_pendulum",
        }
        assert all(
            t["candidate_minus_untrained"]["ci95"][1] >= 0 for t in validation["tasks"].values()
        )
        settings = manifest["config"]["settings"]
        assert manifest["training"]["meta_steps"] > 0 and manifest["training"]["skipped"] == 0
        opt = l2orl.pretrained(name)
        init = l2orl.PRESETS[settings["optimizer"]](
            step_size=settings["step_size"], key=jax.random.key(settings["seed"])
        )
        assert jax.tree.structure(eqx_arrays(opt)) == jax.tree.structure(eqx_arrays(init))
        assert not eqx.tree_equal(eqx_arrays(opt), eqx_arrays(init))


def test_a_shipped_optimizer_loads_by_name_with_its_manifest(shipped):
    opt = l2orl.pretrained("test-rl")
    assert eqx.tree_equal(opt, shipped)
    manifest = l2orl.pretrained_manifest("test-rl")
    assert isinstance(manifest["version"], str) and manifest["version"]
    assert manifest["name"] == "test-rl"
    assert {k: manifest[k] for k in METADATA} == METADATA
    assert eqx.tree_equal(l2orl.resolve_optimizer("test-rl"), opt)


def test_pretrained_step_size_and_use_as_optax(shipped):
    base = l2orl.pretrained("test-rl")
    opt = l2orl.pretrained("test-rl", step_size=3e-2)
    assert opt.step_size == 3e-2
    pairs = zip(jax.tree.leaves(eqx_arrays(opt)), jax.tree.leaves(eqx_arrays(base)), strict=True)
    assert all(bool(jnp.array_equal(a, b)) for a, b in pairs)
    # A learned optimizer that went through meta-training still descends a quadratic.
    target = jnp.linspace(-1.0, 1.0, 20)
    loss = lambda p: jnp.sum((p["w"] - target) ** 2)  # noqa: E731
    tx = opt.as_optax()

    @jax.jit
    def step(params, state):
        updates, state = tx.update(jax.grad(loss)(params), state, params)
        return optax.apply_updates(params, updates), state

    params = {"w": jnp.zeros(20)}
    state = tx.init(params)
    for _ in range(100):
        params, state = step(params, state)
    assert loss(params) < 0.5 * loss({"w": jnp.zeros(20)})
    with pytest.raises(ValueError, match="step_size"):
        l2orl.pretrained("test-rl", step_size=0.0)


def test_pretrained_bad_names():
    with pytest.raises(ValueError, match=r"unknown pretrained optimizer 'optim4rl'; available: "):
        l2orl.pretrained("optim4rl")
    with pytest.raises(ValueError, match="unknown pretrained optimizer"):
        l2orl.pretrained_manifest("adam")
    with pytest.raises(ValueError, match=r"'optim4rl-gridworld'; available: \['optim4rl-brax'"):
        l2orl.pretrained("optim4rl-gridworld")  # withdrawn
