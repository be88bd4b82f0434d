import jax
import jax.numpy as jnp
import numpy as np
import pytest

import l2orl.rl as rl


def _naive_gae(r, v, nv, term, done, gamma, lam):
    adv, next_adv = np.zeros_like(r), np.zeros_like(r[0])
    for t in reversed(range(len(r))):
        delta = r[t] + gamma * (1 - term[t]) * nv[t] - v[t]
        next_adv = delta + gamma * lam * (1 - done[t]) * next_adv
        adv[t] = next_adv
    return adv


def _episode_data(seed=0, T=12, B=3):
    rng = np.random.default_rng(seed)
    r = rng.normal(size=(T, B)).astype(np.float32)
    v = rng.normal(size=(T, B)).astype(np.float32)
    nv = rng.normal(size=(T, B)).astype(np.float32)
    term = rng.random((T, B)) < 0.15
    trunc = (rng.random((T, B)) < 0.15) & ~term
    return r, v, nv, term, term | trunc


def test_gae_matches_a_python_loop():
    r, v, nv, term, done = _episode_data()
    got = rl.gae(*map(jnp.asarray, (r, v, nv, term, done)), 0.99, 0.9)
    np.testing.assert_allclose(
        got, _naive_gae(r, v, nv, term, done, 0.99, 0.9), rtol=1e-5, atol=1e-6
    )


def test_td_lambda_is_gae_plus_values_and_lambda_one_is_the_discounted_return():
    r, v, nv, term, done = _episode_data(1)
    args = tuple(map(jnp.asarray, (r, v, nv, term, done)))
    np.testing.assert_allclose(
        rl.td_lambda(*args, 0.9, 0.7), rl.gae(*args, 0.9, 0.7) + v, rtol=1e-5
    )
    # One episode that terminates at the end: λ = 1 targets are Monte-Carlo returns.
    rewards = jnp.asarray([1.0, 2.0, 3.0])
    ends = jnp.asarray([False, False, True])
    g = rl.td_lambda(rewards, jnp.zeros(3), jnp.asarray([0.0, 0.0, 100.0]), ends, ends, 0.5, 1.0)
    np.testing.assert_allclose(g, [1 + 0.5 * 2 + 0.25 * 3, 2 + 0.5 * 3, 3.0], rtol=1e-6)


def test_truncation_bootstraps_and_termination_does_not():
    r, v, nv = jnp.zeros(1), jnp.zeros(1), jnp.asarray([10.0])
    truncated = rl.td_lambda(r, v, nv, jnp.asarray([False]), jnp.asarray([True]), 0.9, 0.95)
    terminated = rl.td_lambda(r, v, nv, jnp.asarray([True]), jnp.asarray([True]), 0.9, 0.95)
    assert float(truncated[0]) == pytest.approx(9.0) and float(terminated[0]) == 0.0


def test_a2c_loss_terms_and_gradients():
    log_probs = jnp.log(jnp.asarray([0.5, 0.25]))
    values, targets = jnp.asarray([1.0, 0.0]), jnp.asarray([2.0, -1.0])
    entropies = jnp.asarray([0.7, 0.3])
    loss, m = rl.a2c_loss(log_probs, entropies, values, targets, 0.5, 0.01)
    td = np.asarray([1.0, -1.0])
    expected_pg = -np.mean(td * np.log([0.5, 0.25]))
    assert float(m["policy_loss"]) == pytest.approx(expected_pg)
    assert float(m["value_loss"]) == pytest.approx(1.0)
    assert float(loss) == pytest.approx(expected_pg + 0.5 - 0.01 * 0.5)
    # No gradient flows into the targets.
    g = jax.grad(lambda t: rl.a2c_loss(log_probs, entropies, values, t)[0])(targets)
    assert jnp.all(g == 0)


def test_a2c_loss_with_normalized_advantages_ignores_the_td_errors_scale():
    """Normalised over the batch, the policy term is the same for TD errors `δ` and `c·δ + b`;
    raw, it scales with them."""
    log_probs = jnp.log(jnp.asarray([0.5, 0.25, 0.4]))
    values, targets = jnp.asarray([1.0, 0.0, 0.5]), jnp.asarray([2.0, -1.0, 0.0])
    entropies = jnp.zeros(3)

    def policy_loss(scale, shift, normalize):
        _, m = rl.a2c_loss(
            log_probs,
            entropies,
            scale * values,
            scale * targets + shift,
            normalize_advantages=normalize,
        )
        return float(m["policy_loss"])

    assert policy_loss(100.0, 3.0, True) == pytest.approx(policy_loss(1.0, 0.0, True), rel=1e-5)
    assert policy_loss(100.0, 0.0, False) != pytest.approx(policy_loss(1.0, 0.0, False))
    td = np.asarray([1.0, -1.0, -0.5])
    expected = -np.mean((td - td.mean()) / td.std() * np.log([0.5, 0.25, 0.4]))
    assert policy_loss(1.0, 0.0, True) == pytest.approx(expected, rel=1e-5)


def test_ppo_loss_clips_the_ratio():
    old = jnp.zeros(4)
    adv = jnp.asarray([1.0, 1.0, -1.0, -1.0])
    new = jnp.log(jnp.asarray([1.5, 1.05, 0.5, 0.95]))  # ratios
    kw = dict(clip_eps=0.2, value_coef=0.0, entropy_coef=0.0, normalize_advantages=False)
    grads = jax.grad(
        lambda lp: rl.ppo_loss(
            lp, old, adv, jnp.zeros(4), jnp.zeros(4), jnp.zeros(4), jnp.zeros(4), **kw
        )[0]
    )(new)
    # Outside the trust region in the direction of the advantage: clipped, no gradient.
    assert grads[0] == 0 and grads[2] == 0
    assert grads[1] != 0 and grads[3] != 0
    _, m = rl.ppo_loss(new, old, adv, jnp.zeros(4), jnp.zeros(4), jnp.zeros(4), jnp.zeros(4), **kw)
    assert float(m["clip_fraction"]) == pytest.approx(0.5)


def test_ppo_value_clipping_and_advantage_normalisation():
    z = jnp.zeros(2)
    values, old_values, targets = jnp.asarray([2.0, 0.0]), jnp.zeros(2), jnp.asarray([2.0, 0.0])
    plain = rl.ppo_loss(z, z, jnp.ones(2), values, old_values, targets, z, value_coef=1.0)[1][
        "value_loss"
    ]
    clipped = rl.ppo_loss(
        z, z, jnp.ones(2), values, old_values, targets, z, value_coef=1.0, value_clip_eps=0.5
    )[1]
    assert float(plain) == 0.0 and float(clipped["value_loss"]) == pytest.approx(1.5**2 / 2)
    # Normalised advantages are shift- and scale-invariant.
    a = rl.ppo_loss(jnp.asarray([0.1, -0.1]), z, jnp.asarray([1.0, 3.0]), z, z, z, z)[0]
    b = rl.ppo_loss(jnp.asarray([0.1, -0.1]), z, jnp.asarray([10.0, 30.0]) + 5.0, z, z, z, z)[0]
    assert float(a) == pytest.approx(float(b), rel=1e-5)


def test_running_mean_std_equals_the_statistics_of_all_data():
    rng = np.random.default_rng(0)
    batches = [rng.normal(3.0, 2.0, size=(n, 4)).astype(np.float32) for n in (5, 17, 1, 40)]
    stats = rl.RunningMeanStd.create((4,))
    for b in batches:
        stats = stats.update(jnp.asarray(b))
    allx = np.concatenate(batches)
    np.testing.assert_allclose(stats.mean, allx.mean(0), rtol=1e-5)
    np.testing.assert_allclose(stats.var, allx.var(0), rtol=1e-4)
    assert float(stats.count) == len(allx)
    normed = stats.normalize(jnp.asarray(allx))
    np.testing.assert_allclose(np.mean(normed, 0), 0.0, atol=1e-4)


def test_categorical_policy():
    head = rl.Categorical(3)
    logits = jnp.asarray([0.0, 1.0, -1.0])
    probs = np.exp([rl.Categorical(3).log_prob(logits, jnp.asarray(a)) for a in range(3)])
    assert probs.sum() == pytest.approx(1.0, rel=1e-6)
    p = np.exp(np.asarray(logits)) / np.exp(np.asarray(logits)).sum()
    assert float(head.entropy(logits, jax.random.key(0))) == pytest.approx(
        -(p * np.log(p)).sum(), rel=1e-5
    )
    samples = jax.vmap(lambda k: head.sample(logits, k))(jax.random.split(jax.random.key(0), 4000))
    np.testing.assert_allclose(np.bincount(np.asarray(samples), minlength=3) / 4000, p, atol=0.03)


def test_tanh_gaussian_log_prob_is_the_density_of_the_env_action():
    head = rl.TanhGaussian(1, low=-2.0, high=2.0)
    params = jnp.asarray([0.3, -0.5])
    # Density of y = tanh(x): p_y(y) = p_x(x) / (1 - tanh(x)²). Check by integrating over y.
    xs = jnp.linspace(-8, 8, 20001)
    log_p = jax.vmap(lambda x: head.log_prob(params, x[None]))(xs)
    ys = jnp.tanh(xs)
    mass = np.trapezoid(np.exp(np.asarray(log_p)), np.asarray(ys))
    assert mass == pytest.approx(1.0, abs=2e-3)
    action = head.to_env(head.sample(params, jax.random.key(0)))
    assert -2.0 <= float(action[0]) <= 2.0


def test_networks_shapes_and_sharing():
    key = jax.random.key(0)
    conv = rl.ConvTorso((5, 15, 11), key=key)
    assert conv(jnp.ones((5, 15, 11))).shape == (32,)
    # Conv 2×2 over (H, W): 16·5·4 + 16 weights, then dense 16·15·11 → 32.
    assert conv.kernel.size + conv.bias.size == 336 and conv.dense.weight.shape == (32, 2640)
    shared = rl.ActorCritic(rl.Categorical(9), conv, key=key)
    dist, value = shared(jnp.ones((5, 15, 11)))
    assert dist.shape == (9,) and value.shape == ()
    mlp = rl.MLPTorso(4, (8, 8), "tanh", key=key)
    separate = rl.ActorCritic(
        rl.TanhGaussian(2), mlp, rl.MLPTorso(4, (16,), "tanh", key=key), key=key
    )
    dist, value = separate(jnp.ones(4))
    assert dist.shape == (4,) and float(value) == pytest.approx(float(separate.value(jnp.ones(4))))
    with pytest.raises(ValueError, match="unknown torso 'cnn'"):
        rl.NetworkSpec(torso="cnn")
