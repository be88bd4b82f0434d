import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float, PyTree

from .._custom_types import Metrics, PRNGKey
from .._learner import UpdateMetrics
from .._utils import check_positive_int
from ._learner import AbstractActorCritic, LearnerState, NetworkSpec, Trajectory, as_float
from ._losses import ppo_loss
from ._returns import gae


class _Batch(eqx.Module):
    obs: Float[Array, "b *obs"]
    actions: Array
    log_probs: Float[Array, " b"]
    values: Float[Array, " b"]
    advantages: Float[Array, " b"]
    targets: Float[Array, " b"]


class PPO(AbstractActorCritic):
    """Proximal policy optimisation with GAE, minibatches and epochs.

    Each `step` rolls out `rollout_length` steps in `n_envs` environments (updating the
    observation statistics with them), computes GAE advantages with the behaviour values, then
    runs `n_epochs` passes of `n_minibatches` shuffled minibatches, one optax update each, on
    the loss of [`l2orl.rl.ppo_loss`][].

    **Arguments:** `n_envs` (64), `rollout_length` (64), `n_epochs` (4), `n_minibatches` (4),
    `gamma` (0.99), `lam` (0.95), `clip_eps` (0.2), `value_coef` (0.5), `entropy_coef` (0.01),
    `reward_scale` (1.0), `value_clip_eps` (None: no value clipping), `normalize_advantages`
    (True), `network` (default MLP 64-64 tanh, separate value MLP), `normalize_observations`
    (True), `bootstrap_truncation` (True).
    """

    n_envs: int = eqx.field(static=True, default=64)
    rollout_length: int = eqx.field(static=True, default=64)
    n_epochs: int = eqx.field(static=True, default=4)
    n_minibatches: int = eqx.field(static=True, default=4)
    gamma: Float[Array, ""] = eqx.field(converter=as_float, default=0.99)
    lam: Float[Array, ""] = eqx.field(converter=as_float, default=0.95)
    clip_eps: Float[Array, ""] = eqx.field(converter=as_float, default=0.2)
    value_coef: Float[Array, ""] = eqx.field(converter=as_float, default=0.5)
    entropy_coef: Float[Array, ""] = eqx.field(converter=as_float, default=0.01)
    reward_scale: Float[Array, ""] = eqx.field(converter=as_float, default=1.0)
    value_clip_eps: float | None = eqx.field(static=True, default=None)
    normalize_advantages: bool = eqx.field(static=True, default=True)
    network: NetworkSpec = eqx.field(
        default_factory=lambda: NetworkSpec("mlp", (64, 64), "tanh", value_hidden_sizes=(64, 64))
    )
    normalize_observations: bool = eqx.field(static=True, default=True)
    bootstrap_truncation: bool = eqx.field(static=True, default=True)

    def __check_init__(self):
        for name in ("n_envs", "rollout_length", "n_epochs", "n_minibatches"):
            check_positive_int(name, getattr(self, name))
        if (self.n_envs * self.rollout_length) % self.n_minibatches:
            raise ValueError(
                f"n_envs·rollout_length = {self.n_envs * self.rollout_length} transitions do not "
                f"split into n_minibatches={self.n_minibatches} equal minibatches"
            )

    def loss(
        self, network, state: LearnerState, batch: _Batch, key: PRNGKey
    ) -> tuple[Float[Array, ""], Metrics]:
        """The PPO loss of `network` on one minibatch (differentiable in `network`)."""
        dist, values = jax.vmap(network)(self.observe(state, batch.obs))
        log_probs = jax.vmap(network.policy.log_prob)(dist, batch.actions)
        entropies = jax.vmap(network.policy.entropy)(dist, jax.random.split(key, dist.shape[0]))
        return ppo_loss(
            log_probs,
            batch.log_probs,
            batch.advantages,
            values,
            batch.values,
            batch.targets,
            entropies,
            self.clip_eps,
            self.value_coef,
            self.entropy_coef,
            self.normalize_advantages,
            self.value_clip_eps,
        )

    def _batch(self, state: LearnerState, trajectory: Trajectory) -> _Batch:
        next_values = jax.vmap(jax.vmap(state.network.value))(
            self.observe(state, trajectory.next_obs)
        )
        done = trajectory.terminated | trajectory.truncated
        terminal = trajectory.terminated if self.bootstrap_truncation else done
        advantages = gae(
            self.reward_scale * trajectory.rewards,
            trajectory.values,
            next_values,
            terminal,
            done,
            self.gamma,
            self.lam,
        )
        flat = lambda x: x.reshape(-1, *x.shape[2:])  # noqa: E731
        return _Batch(
            flat(trajectory.obs),
            flat(trajectory.actions),
            flat(trajectory.log_probs),
            flat(trajectory.values),
            flat(advantages),
            flat(advantages + trajectory.values),
        )

    def trajectory_loss(
        self, network, state: LearnerState, trajectory: Trajectory, key: PRNGKey
    ) -> Float[Array, ""]:
        return self.loss(network, state, self._batch(state, trajectory), key)[0]

    def optimizer_updates_per_step(self) -> int:
        """`n_epochs · n_minibatches`: one update per minibatch."""
        return self.n_epochs * self.n_minibatches

    def step(
        self,
        env,
        state: LearnerState,
        tx: optax.GradientTransformation,
        opt_state: PyTree,
        key: PRNGKey,
    ) -> tuple[LearnerState, PyTree, UpdateMetrics]:
        k_roll, k_epochs = jax.random.split(key)
        state, trajectory, episodes = self.rollout(env, state, k_roll)
        batch = self._batch(state, trajectory)  # values bootstrapped with the acting statistics
        state = self.update_statistics(state, trajectory)
        size = batch.log_probs.shape[0] // self.n_minibatches
        grad_fn = eqx.filter_value_and_grad(self.loss, has_aux=True)

        n_updates = self.n_epochs * self.n_minibatches

        def minibatch(carry, inputs):
            state, opt_state = carry
            indices, key, position = inputs
            mb = jax.tree.map(lambda x: x[indices], batch)
            (loss, loss_metrics), grads = grad_fn(state.network, state, mb, key)
            context = self.update_context(state, mb.obs, key, position / n_updates)
            state, opt_state = self.apply_update(state, grads, tx, opt_state, context)
            return (state, opt_state), {**loss_metrics, "loss": loss}

        def epoch(carry, inputs):
            index, key = inputs
            k_perm, k_mb = jax.random.split(key)
            order = jax.random.permutation(k_perm, batch.log_probs.shape[0]).reshape(
                self.n_minibatches, size
            )
            positions = index * self.n_minibatches + jnp.arange(self.n_minibatches)
            return jax.lax.scan(
                minibatch,
                carry,
                (order, jax.random.split(k_mb, self.n_minibatches), positions),
            )

        (state, opt_state), loss_metrics = jax.lax.scan(
            epoch,
            (state, opt_state),
            (jnp.arange(self.n_epochs), jax.random.split(k_epochs, self.n_epochs)),
        )
        loss_metrics = jax.tree.map(jnp.mean, loss_metrics)
        return state, opt_state, episodes.with_loss(loss_metrics.pop("loss"), loss_metrics)
