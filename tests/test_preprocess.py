import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import l2orl
from helpers import PREPROCESSORS, grads_like, ids, params_tree


def _dtypes_and_shapes(tree):
    return jax.tree.map(lambda x: (x.shape, x.dtype), tree)


@pytest.mark.parametrize("pre", PREPROCESSORS, ids=ids(PREPROCESSORS))
def test_feature_shapes_dtypes_and_state(pre):
    params = params_tree()
    grads = grads_like(params)
    state = pre.init(params)
    features, new_state = pre(grads, state, params)
    for f, p in zip(jax.tree.leaves(features), jax.tree.leaves(params), strict=True):
        assert f.shape == (*p.shape, pre.n_features)
        assert f.dtype == jnp.float32
        assert jnp.all(jnp.isfinite(f))
    # The state keeps its structure, shapes and dtypes, so it can be carried through a scan.
    assert _dtypes_and_shapes(new_state) == _dtypes_and_shapes(state)


@pytest.mark.parametrize("pre", PREPROCESSORS, ids=ids(PREPROCESSORS))
def test_jit_matches_eager(pre):
    params = params_tree()
    grads = grads_like(params)
    state = pre.init(params)
    eager = pre(grads, state, params)
    jitted = eqx.filter_jit(lambda p, g, s, x: p(g, s, x))(pre, grads, state, params)
    assert jax.tree.all(
        jax.tree.map(lambda a, b: np.allclose(a, b, rtol=1e-5, atol=1e-6), eager, jitted)
    )


@pytest.mark.parametrize("pre", PREPROCESSORS, ids=ids(PREPROCESSORS))
def test_vmap_over_a_batch_of_agents(pre):
    params = params_tree()
    batch_params = jax.tree.map(lambda p: jnp.stack([p, 2 * p]), params)
    batch_grads = jax.tree.map(lambda g: jnp.stack([g, -g]), grads_like(params))
    states = jax.vmap(pre.init)(batch_params)
    features, _ = jax.vmap(pre)(batch_grads, states, batch_params)
    single, _ = pre(grads_like(params), pre.init(params), params)
    for fb, fs in zip(jax.tree.leaves(features), jax.tree.leaves(single), strict=True):
        assert fb.shape == (2, *fs.shape)
        np.testing.assert_allclose(fb[0], fs, rtol=1e-5, atol=1e-6)


def test_identity_square_clip_param_value():
    g = jnp.asarray([-2.0, 0.01, 3.0])
    p = jnp.asarray([1.0, 2.0, 3.0])
    np.testing.assert_array_equal(l2orl.Identity().features(g, p)[..., 0], g)
    np.testing.assert_array_equal(l2orl.Square().features(g, p)[..., 0], g**2)
    np.testing.assert_array_equal(
        l2orl.Clip(1.0).features(g, p)[..., 0], np.asarray([-1.0, 0.01, 1.0], np.float32)
    )
    np.testing.assert_array_equal(l2orl.ParamValue().features(g, p)[..., 0], p)


def test_signlog_equals_its_piecewise_formula():
    p, eps = 10.0, 1e-8
    values = [-3.0, -1e-2, -1e-5, -1e-7, 0.0, 2e-6, 4.6e-5, 4.5e-5, 1e-3, 0.7, 50.0]
    features = l2orl.SignLog(p=p, eps=eps).features(jnp.asarray(values), None)
    for g, (a, b) in zip(values, np.asarray(features), strict=True):
        log_mag = np.log(abs(g) + eps) / p
        if log_mag >= -1.0:
            expected = (log_mag, np.sign(g))
        else:
            expected = (-1.0, np.exp(p) * g)
        np.testing.assert_allclose((a, b), expected, rtol=1e-5, atol=1e-7)


def test_momentum_is_an_ema_at_each_decay():
    pre = l2orl.Momentum((0.5, 0.9))
    params = {"x": jnp.zeros((2,))}
    state = pre.init(params)
    gs = [jnp.asarray([1.0, -2.0]), jnp.asarray([3.0, 0.5])]
    for g in gs:
        features, state = pre({"x": g}, state, params)
    for j, beta in enumerate((0.5, 0.9)):
        m = np.zeros(2)
        for g in gs:
            m = beta * m + (1 - beta) * np.asarray(g)
        np.testing.assert_allclose(features["x"][:, j], m, rtol=1e-6)


def test_debiased_momentum_is_adams_bias_corrected_first_moment():
    """With `debias`, the features are `m_t / (1 - βᵗ)`: the first one is `g` itself at every
    decay, and the state carries the moments and the update count."""
    pre = l2orl.Momentum((0.5, 0.9), debias=True)
    params = {"x": jnp.zeros((2,)), "y": (jnp.zeros(()),)}
    state = pre.init(params)
    assert state[0]["x"].shape == (2, 2) and int(state[1]) == 0
    gs = [jnp.asarray([1.0, -2.0]), jnp.asarray([3.0, 0.5]), jnp.asarray([-1.0, 4.0])]
    for t, g in enumerate(gs, start=1):
        features, state = pre({"x": g, "y": (g[0],)}, state, params)
        if t == 1:
            np.testing.assert_allclose(features["x"], np.stack([g, g], axis=-1), rtol=1e-6)
    for j, beta in enumerate((0.5, 0.9)):
        m = np.zeros(2)
        for g in gs:
            m = beta * m + (1 - beta) * np.asarray(g)
        np.testing.assert_allclose(features["x"][:, j], m / (1 - beta**3), rtol=1e-6)
        np.testing.assert_allclose(features["y"][0][j], m[0] / (1 - beta**3), rtol=1e-6)
    assert int(state[1]) == 3


def test_rms_normalize_gives_unit_second_moment_per_tensor():
    pre = l2orl.RMSNormalize(l2orl.Identity(), eps=1e-12)
    grads = {"a": jnp.asarray([[1.0, 3.0], [5.0, -7.0]]), "b": jnp.asarray(1e-3)}
    features, _ = pre(grads, None, None)
    np.testing.assert_allclose(jnp.mean(features["a"] ** 2), 1.0, rtol=1e-5)
    np.testing.assert_allclose(features["b"], [1.0], rtol=1e-4)
    # Per tensor: the ratios within a tensor are unchanged.
    np.testing.assert_allclose(
        features["a"][..., 0] / features["a"][0, 0, 0], grads["a"], rtol=1e-5
    )


def test_scale_free_features_do_not_change_with_the_gradient_scale():
    pre = l2orl.ScaleFree(l2orl.Concatenate(l2orl.Identity(), l2orl.Momentum((0.9,))))
    square = l2orl.ScaleFree(l2orl.Square(), degree=2)
    stream = jax.random.normal(jax.random.key(0), (5, 3, 4))

    def run(p, scale):
        state, out = p.init({"w": jnp.zeros((3, 4))}), []
        assert type(state) is l2orl.ScaleFreeState and int(state.count) == 0
        for g in stream:
            features, state = p({"w": scale * g}, state, None)
            out.append(features["w"])
        return jnp.stack(out)

    for p in (pre, square):
        np.testing.assert_allclose(run(p, 1e-4), run(p, 1.0), rtol=1e-4)
        np.testing.assert_allclose(run(p, 1e3), run(p, 1.0), rtol=1e-4)
    # Bias-corrected: the first step's normalised gradient is its sign, and Adam's m/√v̂.
    first = run(pre, 1.0)[0]
    np.testing.assert_allclose(first[..., 0], jnp.sign(stream[0]), rtol=1e-4)
    np.testing.assert_allclose(first[..., 1], 0.1 * jnp.sign(stream[0]), rtol=1e-4)
    np.testing.assert_allclose(run(square, 1.0)[0][..., 0], 1.0, rtol=1e-4)
    # The state: the running mean of g² (not bias-corrected) and the count.
    _, state = square({"w": stream[0]}, square.init({"w": stream[0]}), None)
    np.testing.assert_allclose(state.second_moment["w"], 1e-3 * stream[0] ** 2, rtol=1e-5)
    assert int(state.count) == 1


def test_time_features_count_steps():
    pre = l2orl.TimeFeatures((1.0, 10.0), offset=1.0)
    params = {"x": jnp.zeros((3,))}
    state = pre.init(params)
    assert state.dtype == jnp.int32 and int(state) == 0
    for t in range(3):
        features, state = pre(params, state, params)
        np.testing.assert_allclose(
            features["x"][0], np.tanh(np.asarray([t / 1.0, t / 10.0]) - 1.0), rtol=1e-6
        )
    assert int(state) == 3


def test_concatenate_joins_features_in_order():
    pre = l2orl.Concatenate(l2orl.Identity(), l2orl.Square())
    g = {"x": jnp.asarray([2.0, -3.0])}
    features, state = pre(g, pre.init(g), g)
    assert pre.n_features == 2 and state == (None, None)
    np.testing.assert_array_equal(features["x"], [[2.0, 4.0], [-3.0, 9.0]])


def test_adafac_features_first_step_values():
    pre = l2orl.AdafacFeatures()
    assert pre.n_features == 26
    params = {"matrix": jnp.ones((3, 5)), "vector": jnp.ones((4,))}
    grads = {
        "matrix": jnp.arange(15.0).reshape(3, 5) / 10 + 0.1,
        "vector": jnp.asarray([0.5, -1.0, 2.0, 0.1]),
    }
    features, state = pre(grads, pre.init(params), params)
    g = np.asarray(grads["vector"])
    f = np.asarray(features["vector"])
    betas = np.asarray([0.9, 0.99, 0.999])
    np.testing.assert_allclose(
        f[:, 0:3], (1 - betas) * g[:, None], rtol=1e-4
    )  # momenta, float32 1-β
    np.testing.assert_allclose(f[:, 3], 0.001 * g**2, rtol=1e-4)  # rms
    # The factored accumulators of the matrix are row/column means of g², one per decay.
    gm = np.asarray(grads["matrix"])
    np.testing.assert_allclose(
        state["matrix"].row[:, 0], 0.1 * np.mean(gm**2 + 1e-30, axis=1), rtol=1e-5
    )
    np.testing.assert_allclose(
        state["matrix"].col[:, 0], 0.1 * np.mean(gm**2 + 1e-30, axis=0), rtol=1e-5
    )
    # The nominal direction is the mean over momenta of m·rsqrt(rms + 1e-6).
    nominal = pre.nominal_direction(state)["vector"]
    expected = np.mean((1 - betas) * g[:, None] / np.sqrt(0.001 * g[:, None] ** 2 + 1e-6), axis=-1)
    np.testing.assert_allclose(nominal, expected, rtol=1e-4)
    # Decay offsets are meta-parameters.
    assert eqx.filter(pre, eqx.is_inexact_array).momentum_offset.shape == (3,)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: l2orl.Clip(0.0), "Clip bound must be a positive finite number, got 0.0"),
        (lambda: l2orl.SignLog(p=-1.0), "SignLog p must be a positive finite number, got -1.0"),
        (lambda: l2orl.RMSNormalize(eps=0.0), "RMSNormalize eps must be a positive"),
        (lambda: l2orl.Momentum((0.9, 1.0)), r"\[0, 1\)"),
        (lambda: l2orl.TimeFeatures((1.0, 0.0)), "TimeFeatures timescale must be a positive"),
        (lambda: l2orl.TimeFeatures(()), "at least one timescale"),
        (lambda: l2orl.ScaleFree(degree=3), "ScaleFree degree must be 1 or 2, got 3"),
        (lambda: l2orl.ScaleFree(decay=1.0), r"ScaleFree decay must be in \(0, 1\), got 1.0"),
        (lambda: l2orl.Concatenate(), "at least one"),
        (lambda: l2orl.AdafacFeatures((0.9,), 0.999, (0.9, 0.99)), "as many momentum"),
    ],
)
def test_bad_configuration_raises(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_param_value_without_params_raises():
    with pytest.raises(ValueError, match="needs the parameters"):
        l2orl.ParamValue()({"x": jnp.ones(2)}, None, None)
