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
from l2orl._preprocess._tensor import roles_from_paths


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
    context = l2orl.UpdateContext(roles=net.tensor_roles())
    features, _ = l2orl.TensorFeatures()(params, None, params, context)
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


def _actor_critic():
    return rl.NetworkSpec("mlp", (8,), "tanh").build(
        (4,), rl.make("CartPole-v1").action_space(None), KEY
    )


def _actor_critic_params():
    return eqx.filter(_actor_critic(), eqx.is_inexact_array)


def _spec_id(spec: rl.NetworkSpec) -> str:
    value = "" if spec.value_hidden_sizes is None else f"-value{spec.value_hidden_sizes}"
    return f"{spec.torso}{spec.hidden_sizes}{value}"


# Every kind of network the library builds (shared or separate value torso, MLP or conv, for
# discrete or continuous actions), and those its environment families train by default.
NETWORKS = [
    (rl.NetworkSpec("mlp", (8, 8), "tanh"), "CartPole-v1"),
    (rl.NetworkSpec("mlp", (8, 8), "tanh", (8, 8)), "Pendulum-v1"),
    (rl.NetworkSpec("conv", (8,), "relu"), "big_dense_short"),
    (rl.NetworkSpec("conv", (8,), "relu", (8,)), "big_dense_short"),
    *(
        (rl.default_learner(name).network, name)
        for name in ("small_dense_short", "big_dense_short", "Catch", "Pendulum-v1")
    ),
    (rl.default_learner("brax:ant").network, "Pendulum-v1"),
]


@pytest.mark.parametrize(
    "spec, env_name", NETWORKS, ids=[f"{_spec_id(s)}-{e}" for s, e in NETWORKS]
)
def test_library_networks_label_their_tensors_as_their_paths_say(spec, env_name):
    """The roles an actor-critic gives are those its parameter paths gave, so the optimizer
    sees the same inputs and noise whichever it reads."""
    env = rl.make(env_name)
    obs, _ = env.reset(KEY, env.default_params)
    net = spec.build(obs.shape, env.action_space(env.default_params), KEY)
    params = eqx.filter(net, eqx.is_inexact_array)
    paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(params)[0]]
    roles = jax.tree.leaves(net.tensor_roles())
    assert roles == roles_from_paths(paths)
    shared = set() if spec.value_hidden_sizes else {"shared"}
    assert set(roles) == {"actor", "critic", *shared}
    context = l2orl.UpdateContext(key=KEY, roles=net.tensor_roles())
    labelled, _ = l2orl.TensorFeatures()(params, None, params, context)
    guessed, _ = l2orl.TensorFeatures(role_source="paths")(params, None, params)
    for a, b in zip(jax.tree.leaves(labelled), jax.tree.leaves(guessed), strict=True):
        np.testing.assert_array_equal(a, b)
    head = l2orl.NoisyHead(l2orl.LinearHead(), ("actor", "shared"))
    guess = l2orl.NoisyHead(l2orl.LinearHead(), ("actor", "shared"), role_source="paths")
    np.testing.assert_array_equal(
        head.noise(params, context), guess.noise(params, l2orl.UpdateContext(key=KEY))
    )


def test_a_users_labelling_is_used_and_unlabelled_tensors_are_shared():
    params = {"policy": {"w": jnp.ones((2, 3)), "b": jnp.ones(3)}, "value": jnp.ones(4)}
    grads = jax.tree.map(lambda p: 0.5 * p, params)
    # The paths would say actor and critic; the user says otherwise, once for a subtree.
    labels = {"policy": "critic", "value": "actor"}
    context = l2orl.UpdateContext(key=KEY, roles=labels)
    assert isinstance(context.roles, l2orl.TensorRoles) and jax.tree.leaves(context) == [KEY]
    assert context.roles.of(grads) == ["critic", "critic", "actor"]
    assert l2orl.TensorRoles("actor").of(grads) == ["actor"] * 3

    def roles_read(features):
        return [
            tuple(np.asarray(f.reshape(-1, 5)[0, 1:4]).tolist()) for f in jax.tree.leaves(features)
        ]

    read = roles_read(l2orl.TensorFeatures()(grads, None, params, context)[0])
    assert read == [(0.0, 1.0, 0.0)] * 2 + [(1.0, 0.0, 0.0)]
    paths = roles_read(l2orl.TensorFeatures(role_source="paths")(grads, None, params, context)[0])
    assert paths == [(1.0, 0.0, 0.0)] * 2 + [(0.0, 1.0, 0.0)]
    unlabelled = roles_read(l2orl.TensorFeatures()(grads, None, params)[0])
    assert unlabelled == [(0.0, 0.0, 1.0)] * 3

    noise = l2orl.NoisyHead(l2orl.LinearHead()).noise(grads, context)
    assert not jnp.any(noise[:9]) and bool(jnp.all(noise[9:] != 0))
    assert not jnp.any(
        l2orl.NoisyHead(l2orl.LinearHead()).noise(grads, context.merge(roles="shared"))
    )

    # Through optax and jit: the labels are static, part of the context's structure.
    traces = []

    def update(grads, state, params, context):
        traces.append(None)
        return tx.update(grads, state, params, context=context)

    opt = l2orl.open_like(key=KEY)
    opt = eqx.tree_at(lambda o: o.branch.cell.readout.bias, opt, jnp.asarray([0.0, 0.0, 1.0]))
    tx = l2orl.with_context(opt.as_optax(), roles=labels)
    state, jitted = tx.init(params), eqx.filter_jit(update)
    noisy, _ = jitted(grads, state, params, l2orl.UpdateContext(key=KEY))
    again, _ = jitted(grads, state, params, l2orl.UpdateContext(key=KEY))
    assert len(traces) == 1
    quiet, _ = jitted(grads, state, params, l2orl.UpdateContext())
    np.testing.assert_array_equal(noisy["value"], again["value"])
    assert bool(jnp.all(noisy["value"] != quiet["value"]))
    for name in ("w", "b"):
        np.testing.assert_array_equal(noisy["policy"][name], quiet["policy"][name])

    with pytest.raises(ValueError, match="tensor roles are among"):
        l2orl.UpdateContext(roles={"policy": "policy", "value": "critic"})
    with pytest.raises(ValueError, match="labelled for a tree of structure"):
        l2orl.TensorRoles({"a": "actor"}).of(grads)
    with pytest.raises(ValueError, match="reads the tensor roles from one of"):
        l2orl.TensorFeatures(role_source="names")
    with pytest.raises(ValueError, match="reads the tensor roles from one of"):
        l2orl.NoisyHead(l2orl.LinearHead(), role_source="names")


def test_the_noisy_head_is_exact_at_zero_scale_reproducible_and_masked():
    head = l2orl.NoisyHead(l2orl.GainBiasHead())
    out, g, xi = jnp.asarray([0.1, -0.2, 0.3, 0.0]), jnp.float32(0.5), jnp.float32(2.0)
    deterministic = l2orl.GainBiasHead()(out[:3], g)
    assert head(out, g, xi) == deterministic and head(out, g) == deterministic
    assert head(out.at[3].set(0.5), g, xi) == deterministic + 1.0
    net = _actor_critic()
    params = eqx.filter(net, eqx.is_inexact_array)
    context = l2orl.UpdateContext(key=KEY, roles=net.tensor_roles())
    noise = head.noise(params, context)
    np.testing.assert_array_equal(noise, head.noise(params, context))
    assert not jnp.any(head.noise(params, l2orl.UpdateContext(roles=net.tensor_roles())))
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
    net = _actor_critic()
    params = eqx.filter(net, eqx.is_inexact_array)
    grads = jax.tree.map(lambda p: 0.01 * jnp.ones_like(p), params)
    tx, roles = opt.as_optax(), net.tensor_roles()
    state, update = tx.init(params), eqx.filter_jit(tx.update)
    # The network's roles, told once by the loop or with every update.
    plain, _ = eqx.filter_jit(l2orl.with_context(tx, roles=roles).update)(grads, state, params)
    again, _ = update(grads, state, params, context=l2orl.UpdateContext(roles=roles))
    noisy, _ = update(grads, state, params, context=l2orl.UpdateContext(key=KEY, roles=roles))
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
