"""A smooth toy inner problem behind the learner contract, for testing meta-gradient estimators:
a learner that is not an actor-critic and has no environment."""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

import l2orl


class QuadraticState(eqx.Module):
    x: Float[Array, " d"]
    target: Float[Array, " d"]


class QuadraticLearner(l2orl.AbstractLearner):
    """Gradient steps on `½|x - target|²` with noise-free gradients, `updates` of them (each
    through `tx`) per `step`; `fresh_loss` is the loss and every step reports one "episode" of
    return `-loss`, the loss before the step."""

    dim: int = eqx.field(static=True, default=4)
    updates: int = eqx.field(static=True, default=1)

    def init(self, env, key):
        k1, k2 = jax.random.split(key)
        return QuadraticState(
            jax.random.normal(k1, (self.dim,)), jax.random.normal(k2, (self.dim,))
        )

    def params(self, state):
        return {"x": state.x}

    def _loss(self, x, target):
        return 0.5 * jnp.sum(jnp.square(x - target))

    def step(self, env, state, tx, opt_state, key):
        loss = self._loss(state.x, state.target)
        for _ in range(self.updates):
            g = jax.grad(self._loss)(state.x, state.target)
            updates, opt_state = tx.update({"x": g}, opt_state, self.params(state))
            state = QuadraticState(state.x + updates["x"], state.target)
        metrics = l2orl.UpdateMetrics(loss=loss, return_sum=-loss, episodes=jnp.ones(()))
        return state, opt_state, metrics

    def fresh_loss(self, env, state, key):
        return self._loss(state.x, state.target), state

    def env_steps_per_update(self):
        return 1

    def optimizer_updates_per_step(self):
        return self.updates
