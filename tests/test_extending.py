"""A user extends l2orl with one new final class per part, and everything composes."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float

import l2orl


class SignFeature(l2orl.AbstractElementwisePreprocessor):
    @property
    def n_features(self) -> int:
        return 1

    def features(
        self, grad: Float[Array, "*s"], param: Float[Array, "*s"] | None
    ) -> Float[Array, "*s 1"]:
        return jnp.sign(grad)[..., None]


class StepCounter(l2orl.AbstractPreprocessor):
    """A stateful preprocessor: the number of updates so far, as a feature."""

    @property
    def n_features(self) -> int:
        return 1

    def init(self, params):
        return jnp.zeros((), jnp.int32)

    def __call__(self, grads, state, params, context=None):
        return jax.tree.map(
            lambda g: jnp.full((*g.shape, 1), state, jnp.float32), grads
        ), state + 1


class Tanh(l2orl.AbstractStatelessCell):
    n_features: int
    n_out: int
    weight: Float[Array, "n_out n_features"]

    def forward(self, features):
        return jnp.tanh(self.weight @ features)


class LeakyAccumulator(l2orl.AbstractCell):
    """A recurrent cell: h ← decay·h + x, out = w·h."""

    n_features: int
    n_out: int
    decay: float
    w: Float[Array, "n_out n_features"]

    def init_hidden(self):
        return jnp.zeros((self.n_features,), jnp.float32)

    def __call__(self, features, hidden):
        hidden = self.decay * hidden + features
        return self.w @ hidden, hidden

    def rows(self, features, hidden):
        return l2orl.vmapped_rows(self, features, hidden)

    def rows_vjp(self, features, hidden, d_out, d_hidden):
        return l2orl.autodiff_rows_vjp(self, features, hidden, d_out, d_hidden)


class LearnedSGD(l2orl.AbstractLearnedOptimizer):
    """The smallest learned optimizer: SGD with a learned log step size."""

    log_lr: Float[Array, ""]

    def init(self, params):
        return optax.EmptyState()

    def update(self, updates, state, params=None, **extra_args):
        return jax.tree.map(lambda g: -jnp.exp(self.log_lr) * g, updates), state


def test_user_parts_compose_into_an_optimizer():
    pre = l2orl.Concatenate(SignFeature(), StepCounter())
    cell = LeakyAccumulator(2, 1, 0.5, jnp.asarray([[1.0, 0.0]]))
    opt = l2orl.PerCoordinateOptimizer(pre, cell, l2orl.SignExpHead(), step_size=0.1)
    params = {"x": jnp.zeros(3)}
    state = opt.init(params)
    assert isinstance(state, l2orl.BranchState)
    grads = {"x": jnp.asarray([1.0, -1.0, 2.0])}
    for _ in range(2):
        updates, state = opt.update(grads, state, params)
    # After two steps h = 0.5·sign(g) + sign(g), so Δθ = -0.1·sign(g)·exp(1.5·sign(g)).
    s = np.sign(np.asarray(grads["x"]))
    np.testing.assert_allclose(updates["x"], -0.1 * s * np.exp(1.5 * s), rtol=1e-6)
    assert int(state.preprocessor[1]) == 2


def test_user_stateless_cell_in_the_moment_ratio_structure():
    opt = l2orl.MomentRatioOptimizer(
        m_branch=l2orl.Branch(l2orl.Identity(), Tanh(1, 1, jnp.ones((1, 1))), l2orl.SignExpHead()),
        v_branch=l2orl.Branch(l2orl.Square(), Tanh(1, 1, jnp.zeros((1, 1))), l2orl.ExpHead()),
        step_size=0.01,
    )
    params = {"x": jnp.zeros(2)}
    state = opt.init(params)
    assert isinstance(state, l2orl.MomentRatioState)
    updates, _ = opt.update({"x": jnp.asarray([0.5, -2.0])}, state, params)
    expected = -0.01 * np.sign([0.5, -2.0]) * np.exp(np.tanh([0.5, -2.0])) / np.sqrt(1.0 + 1e-8)
    np.testing.assert_allclose(updates["x"], expected, rtol=1e-6)


def test_user_learned_optimizer_gets_as_optax_and_meta_gradients():
    opt = LearnedSGD(jnp.log(jnp.asarray(0.1)))
    assert opt.n_meta_parameters == 1

    def meta_loss(o):
        tx = o.as_optax()
        params = jnp.asarray(3.0)
        state = tx.init(params)
        for _ in range(3):
            updates, state = tx.update(2 * params, state, params)
            params = optax.apply_updates(params, updates)
        return params**2

    grad = eqx.filter_grad(meta_loss)(opt).log_lr
    # params_3 = 3·(1 - 2e^a)^3, so d/da params_3² = 2·params_3·3·3·(1-2e^a)²·(-2e^a).
    lr = 0.1
    p3 = 3 * (1 - 2 * lr) ** 3
    np.testing.assert_allclose(grad, 2 * p3 * 9 * (1 - 2 * lr) ** 2 * (-2 * lr), rtol=1e-5)


def test_abstract_classes_cannot_be_instantiated():
    for cls in (
        l2orl.AbstractPreprocessor,
        l2orl.AbstractCell,
        l2orl.AbstractHead,
        l2orl.AbstractLearnedOptimizer,
    ):
        try:
            cls()
        except TypeError:
            continue
        raise AssertionError(f"{cls.__name__} could be instantiated")


def test_adafac_state_per_leaf():
    state = l2orl.AdafacFeatures().init({"m": jnp.ones((3, 5)), "v": jnp.ones(4)})
    assert isinstance(state["m"], l2orl.AdafacState) and state["m"].row.shape == (3, 3)
    assert state["m"].col.shape == (5, 3)
    assert state["v"].col is None and state["v"].row.shape == (4, 3)
