"""The RL loop's context: what learners tell optimizers, the parts that read it, the noisy
head, and the OPEN-like and VeLO-like presets."""

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import l2orl
import l2orl.rl as rl
from helpers import KEY, SMALL_NET, grads_like, params_tree


class _Seen(NamedTuple):
    training: jax.Array
    batch: jax.Array
    dormancy: jax.Array
    keyed: jax.Array


def _recorder(n: int) -> optax.GradientTransformationExtraArgs:
    """SGD that also records, for its first `n` updates, each update's context facts."""

    def init(params):
        return 0, jax.tree.map(lambda _: jnp.full((n,), -1.0), _Seen(0, 0, 0, 0))

    def update(updates, state, params=None, context=None):
        count, seen = state
        context = l2orl.UpdateContext() if context is None else context
        dormancy = context.dormancy
        fact = _Seen(
            context.scalar("training_proportion"),
            context.scalar("batch_proportion"),
            jnp.mean(jnp.stack(jax.tree.leaves(dormancy))) if dormancy is not None else -2.0,
            jnp.float32(context.key is not None),
        )
        seen = jax.tree.map(lambda s, f: s.at[count].set(f), seen, fact)
        return jax.tree.map(lambda g: -1e-3 * g, updates), (count + 1, seen)

    return optax.GradientTransformationExtraArgs(init, update)


def test_a_context_merges_known_fields_and_names_unknown_ones():
    context = l2orl.UpdateContext(batch_proportion=jnp.float32(0.5))
    merged = context.merge(training_proportion=jnp.float32(0.25), key=None)
    assert (
        merged.scalar("training_proportion") == 0.25 and merged.scalar("batch_proportion") == 0.5
    )
    assert merged.key is None and l2orl.UpdateContext().scalar("batch_proportion") == 0.0
    with pytest.raises(ValueError, match=r"unknown context field\(s\) \['epoch'\]"):
        l2orl.with_context(optax.sgd(1.0), epoch=1)


def test_with_context_adds_to_the_callers_context_and_plain_optax_ignores_it():
    params = {"w": jnp.ones(3)}
    tx = l2orl.with_context(_recorder(1), training_proportion=jnp.float32(0.75))
    given = l2orl.UpdateContext(batch_proportion=jnp.float32(0.5))
    _, (_, seen) = tx.update(params, tx.init(params), params, context=given)
    assert seen.training[0] == 0.75 and seen.batch[0] == 0.5
    adam = l2orl.with_context(optax.adam(0.1), training_proportion=jnp.float32(0.5))
    updates, _ = adam.update(params, adam.init(params), params)
    reference, _ = optax.adam(0.1).update(params, optax.adam(0.1).init(params), params)
    np.testing.assert_array_equal(updates["w"], reference["w"])


def test_ppo_and_a2c_tell_the_optimizer_their_batch_and_training_proportions():
    """PPO's minibatch j of an update with 2 epochs × 2 minibatches has batch proportion j/4,
    with dormancy and a key; the update loop's update i of an agent `age` old has training
    proportion (age + i) / lifetime."""
    env = rl.make("CartPole-v1")
    ppo = rl.PPO(n_envs=2, rollout_length=8, n_epochs=2, n_minibatches=2, network=SMALL_NET)
    state = ppo.init(env, KEY)
    tx = l2orl.with_context(_recorder(8), training_proportion=jnp.float32(0.5))
    step = eqx.filter_jit(ppo.step)
    _, (_, facts), _ = step(env, state, tx, tx.init(ppo.params(state)), KEY)
    np.testing.assert_allclose(facts.batch[:4], [0.0, 0.25, 0.5, 0.75])
    np.testing.assert_allclose(facts.training[:4], 0.5)
    assert np.all(facts.keyed[:4] == 1.0)
    assert np.all((facts.dormancy[:4] >= 0) & (facts.dormancy[:4] <= 1))

    a2c = rl.A2C(n_envs=2, rollout_length=5, network=SMALL_NET)
    catch = rl.make("Catch")
    learner = a2c.init(catch, KEY)
    tx = _recorder(3)
    opt_state = tx.init(a2c.params(learner))
    keys = jax.random.split(KEY, 3)
    _, (_, facts), _, _ = l2orl._learner.scan_updates(
        a2c, catch, tx, learner, opt_state, keys, progress=(jnp.int32(6), 12)
    )
    np.testing.assert_allclose(facts.training, [0.5, 7 / 12, 8 / 12], rtol=1e-6)
    np.testing.assert_allclose(facts.batch, 0.0)


def test_dormancy_counts_dead_relu_units_per_layer():
    h = jnp.asarray([[0.0, 1.0, 2.0, 0.0], [0.0, 3.0, 2.0, 0.0]])  # units 0 and 3 never fire
    assert rl.dormant_fraction(h) == 0.5
    assert rl.dormant_fraction(jnp.ones((5, 4))) == 0.0
    net = rl.NetworkSpec("mlp", (8, 8), "relu").build(
        (4,), rl.make("CartPole-v1").action_space(None), KEY
    )
    # Kill the first layer's units 0-3 with a large negative bias.
    net = eqx.tree_at(
        lambda n: n.policy_torso.layers[0].bias, net, jnp.asarray([-1e3] * 4 + [0.0] * 4)
    )
    tree = net.dormancy(jax.random.normal(KEY, (32, 4)))
    params = eqx.filter(net, eqx.is_inexact_array)
    assert jax.tree.structure(tree) == jax.tree.structure(params)
    assert tree.policy_torso.layers[0].weight == tree.policy_torso.layers[0].bias == 0.5
    assert tree.policy_out.weight == tree.value_out.bias == 0.0


def test_context_features_read_the_loop_and_default_to_zero():
    params, pre = params_tree(), l2orl.ContextFeatures()
    grads = grads_like(params)
    dormancy = jax.tree.map(lambda p: jnp.float32(p.ndim / 10), params)
    context = l2orl.UpdateContext(jnp.float32(0.3), jnp.float32(0.5), dormancy)
    features, _ = pre(grads, pre.init(params), params, context)
    np.testing.assert_allclose(features["w"][0, 0], [0.3, 0.5, 0.2])
    np.testing.assert_allclose(features["nested"][0][1, 0, 2], [0.3, 0.5, 0.3])
    empty, _ = pre(grads, None, params)
    assert not any(jnp.any(f) for f in jax.tree.leaves(empty))
    with pytest.raises(ValueError, match="ContextFeatures reads one or more"):
        l2orl.ContextFeatures(("age",))


@pytest.mark.parametrize("shared", [True, False])
def test_tensor_features_know_roles_and_depths_of_actor_critics(shared):
    spec = rl.NetworkSpec("mlp", (8, 8), "tanh", None if shared else (8, 8))
    net = spec.build((4,), rl.make("CartPole-v1").action_space(None), KEY)
    params = eqx.filter(net, eqx.is_inexact_array)
    features, _ = l2orl.TensorFeatures()(params, None, params)
    first = jax.tree.map(lambda f: np.asarray(f.reshape(-1, 5)[0]), features)
    torso = "shared" if shared else "actor"
    roles = ("actor", "critic", "shared")
    for layer, depth in zip(first.policy_torso.layers, (0.0, 0.5), strict=True):
        np.testing.assert_allclose(layer.weight, [depth, *(r == torso for r in roles), 0.0])
        np.testing.assert_allclose(layer.bias, [depth, *(r == torso for r in roles), 1.0])
    np.testing.assert_allclose(first.policy_out.weight, [1.0, 1, 0, 0, 0])
    np.testing.assert_allclose(first.value_out.bias, [1.0, 0, 1, 0, 1])
    if not shared:
        np.testing.assert_allclose(first.value_torso.layers[0].weight, [0.0, 0, 1, 0, 0])


def _actor_critic_params():
    net = rl.NetworkSpec("mlp", (8,), "tanh").build(
        (4,), rl.make("CartPole-v1").action_space(None), KEY
    )
    return eqx.filter(net, eqx.is_inexact_array)


def test_the_noisy_head_is_exact_at_zero_scale_reproducible_and_masked():
    head = l2orl.NoisyHead(l2orl.GainBiasHead())
    out, g, xi = jnp.asarray([0.1, -0.2, 0.3, 0.0]), jnp.float32(0.5), jnp.float32(2.0)
    deterministic = l2orl.GainBiasHead()(out[:3], g)
    assert head(out, g, xi) == deterministic and head(out, g) == deterministic
    assert head(out.at[3].set(0.5), g, xi) == deterministic + 1.0
    params = _actor_critic_params()
    noise = head.noise(params, KEY)
    np.testing.assert_array_equal(noise, head.noise(params, KEY))
    assert not jnp.any(head.noise(params, None))
    flat = jax.tree_util.tree_flatten_with_path(params)[0]
    offset = 0
    for path, leaf in flat:
        part = noise[offset : offset + leaf.size]
        offset += leaf.size
        actor = "policy_out" in jax.tree_util.keystr(path)
        assert bool(jnp.all(part != 0)) == actor and bool(jnp.any(part != 0)) == actor
    with pytest.raises(ValueError, match="NoisyHead perturbs one or more of the roles"):
        l2orl.NoisyHead(l2orl.LinearHead(), roles=("policy",))


def test_open_like_is_deterministic_without_a_key_and_perturbs_only_the_actor_with_one():
    opt = l2orl.open_like(key=KEY)
    # A nonzero noise scale everywhere: the readout bias of σ.
    opt = eqx.tree_at(lambda o: o.branch.cell.readout.bias, opt, jnp.asarray([0.0, 0.0, 1.0]))
    params = _actor_critic_params()
    grads = jax.tree.map(lambda p: 0.01 * jnp.ones_like(p), params)
    tx = opt.as_optax()
    state, update = tx.init(params), eqx.filter_jit(tx.update)
    plain, _ = update(grads, state, params)
    again, _ = update(grads, state, params, context=l2orl.UpdateContext())
    noisy, _ = update(grads, state, params, context=l2orl.UpdateContext(key=KEY))
    for path, a, b, c in zip(
        *zip(*jax.tree_util.tree_flatten_with_path(plain)[0], strict=True),
        jax.tree.leaves(again),
        jax.tree.leaves(noisy),
        strict=True,
    ):
        np.testing.assert_array_equal(a, b)
        assert bool(jnp.any(a != c)) == ("policy_out" in jax.tree_util.keystr(path))


def test_velo_like_starts_as_normalised_gradient_descent_and_refuses_the_coordinate_route():
    opt = l2orl.velo_like(step_size=0.1)
    params = params_tree()
    grads = grads_like(params)
    updates, _ = eqx.filter_jit(opt.update)(grads, opt.init(params), params)
    for u, g in zip(jax.tree.leaves(updates), jax.tree.leaves(grads), strict=True):
        rms = jnp.sqrt(jnp.mean(g**2) + 1e-12)
        np.testing.assert_allclose(u, -0.1 * g / rms, rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="coordinate"):
        l2orl.TruncatedBPTT(coordinate_fraction=0.5).check_optimizer(opt)


def test_a_hand_built_hypernetwork_checks_its_tensor_cell():
    pre = l2orl.Concatenate(l2orl.Identity(), l2orl.ParamValue())
    with pytest.raises(ValueError, match=r"n_features=3 statistics .* n_out=5"):
        l2orl.HypernetworkOptimizer(pre, l2orl.LSTMCell(2, 4, 5, key=KEY), bank_size=4, key=KEY)
    opt = l2orl.HypernetworkOptimizer(
        pre, l2orl.LSTMCell(3, 4, 5, key=KEY), bank_size=4, mlp_width=6, key=KEY
    )
    assert opt.w1.shape == (4, 2, 6) and opt.skip[:, 0, 0].tolist() == [1.0] * 4
    state = opt.init(params_tree())
    assert type(state) is l2orl.HypernetworkState
    assert all(h.shape[-1] == len(jax.tree.leaves(params_tree())) for h in jax.tree.leaves(state))
