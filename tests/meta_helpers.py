"""A smooth toy inner problem behind the learner protocol, for testing meta-gradient estimators."""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float


class QuadraticState(eqx.Module):
    x: Float[Array, " d"]
    target: Float[Array, " d"]

    @property
    def params(self):
        return {"x": self.x}


class QuadraticLearner(eqx.Module):
    """Gradient steps on `½|x - target|²` with noise-free gradients; `fresh_loss` is the loss."""

    dim: int = eqx.field(static=True, default=4)
    n_envs: int = eqx.field(static=True, default=1)
    rollout_length: int = eqx.field(static=True, default=1)

    def init(self, env, key):
        k1, k2 = jax.random.split(key)
        return QuadraticState(
            jax.random.normal(k1, (self.dim,)), jax.random.normal(k2, (self.dim,))
        )

    def _loss(self, x, target):
        return 0.5 * jnp.sum(jnp.square(x - target))

    def step(self, env, state, tx, opt_state, key):
        loss, g = jax.value_and_grad(self._loss)(state.x, state.target)
        updates, opt_state = tx.update({"x": g}, opt_state, state.params)
        metrics = {"loss": loss, "return_sum": -loss, "episodes": jnp.ones(())}
        return QuadraticState(state.x + updates["x"], state.target), opt_state, metrics

    def fresh_loss(self, env, state, key):
        return self._loss(state.x, state.target), state
