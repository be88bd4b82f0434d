import equinox as eqx
import jax
import optax
from jaxtyping import Array, Float, PyTree

from .._custom_types import Metrics, PRNGKey
from .._learner import UpdateMetrics
from .._utils import check_positive_int
from ._learner import AbstractActorCritic, LearnerState, NetworkSpec, Trajectory, as_float
from ._losses import a2c_loss
from ._returns import td_lambda


class A2C(AbstractActorCritic):
    """Advantage actor-critic, as the Optim4RL reference trains its agents.

    Each `step` rolls out `rollout_length` steps in `n_envs` environments, computes TD(λ)
    targets and the loss of [`l2orl.rl.a2c_loss`][] (averaged over all steps and envs), and
    applies one update through the given optax transform.

    **Arguments:** `n_envs` (64), `rollout_length` (20), `gamma` (0.995), `lam` (0.95),
    `value_coef` (0.5), `entropy_coef` (0.01), `reward_scale` (1.0), `network`
    ([`l2orl.rl.NetworkSpec`][]; the default shared 64-64 tanh MLP is not a reference net: see
    [`l2orl.rl.default_learner`][]), `normalize_observations` (False), `bootstrap_truncation`
    (True: a time-limit end bootstraps from the reached state's value; False treats it as
    terminal, as the reference does), `normalize_advantages` (False, as the reference: the
    policy term weighs raw TD(λ) errors; True normalises them over the batch, as PPO does).
    """

    n_envs: int = eqx.field(static=True, default=64)
    rollout_length: int = eqx.field(static=True, default=20)
    gamma: Float[Array, ""] = eqx.field(converter=as_float, default=0.995)
    lam: Float[Array, ""] = eqx.field(converter=as_float, default=0.95)
    value_coef: Float[Array, ""] = eqx.field(converter=as_float, default=0.5)
    entropy_coef: Float[Array, ""] = eqx.field(converter=as_float, default=0.01)
    reward_scale: Float[Array, ""] = eqx.field(converter=as_float, default=1.0)
    network: NetworkSpec = eqx.field(default_factory=NetworkSpec)
    normalize_observations: bool = eqx.field(static=True, default=False)
    bootstrap_truncation: bool = eqx.field(static=True, default=True)
    normalize_advantages: bool = eqx.field(static=True, default=False)

    def __check_init__(self):
        for name in ("n_envs", "rollout_length"):
            check_positive_int(name, getattr(self, name))

    def loss(
        self, network, state: LearnerState, trajectory: Trajectory, key: PRNGKey
    ) -> tuple[Float[Array, ""], Metrics]:
        """The A2C loss of `network` on `trajectory` (differentiable in `network`)."""
        obs = self.observe(state, trajectory.obs)
        dist, values = jax.vmap(jax.vmap(network))(obs)
        next_values = jax.lax.stop_gradient(
            jax.vmap(jax.vmap(network.value))(self.observe(state, trajectory.next_obs))
        )
        done = trajectory.terminated | trajectory.truncated
        terminal = trajectory.terminated if self.bootstrap_truncation else done
        targets = td_lambda(
            self.reward_scale * trajectory.rewards,
            jax.lax.stop_gradient(values),
            next_values,
            terminal,
            done,
            self.gamma,
            self.lam,
        )
        log_probs = jax.vmap(jax.vmap(network.policy.log_prob))(dist, trajectory.actions)
        keys = jax.random.split(key, dist.shape[:2])
        entropies = jax.vmap(jax.vmap(network.policy.entropy))(dist, keys)
        return a2c_loss(
            log_probs,
            entropies,
            values,
            targets,
            self.value_coef,
            self.entropy_coef,
            self.normalize_advantages,
        )

    def trajectory_loss(
        self, network, state: LearnerState, trajectory: Trajectory, key: PRNGKey
    ) -> Float[Array, ""]:
        return self.loss(network, state, trajectory, key)[0]

    def optimizer_updates_per_step(self) -> int:
        """1: one update per rollout."""
        return 1

    def step(
        self,
        env,
        state: LearnerState,
        tx: optax.GradientTransformation,
        opt_state: PyTree,
        key: PRNGKey,
    ) -> tuple[LearnerState, PyTree, UpdateMetrics]:
        k_roll, k_loss = jax.random.split(key)
        state, trajectory, episodes = self.rollout(env, state, k_roll)
        state = self.update_statistics(state, trajectory)
        (loss, loss_metrics), grads = eqx.filter_value_and_grad(self.loss, has_aux=True)(
            state.network, state, trajectory, k_loss
        )
        obs = trajectory.obs.reshape(-1, *trajectory.obs.shape[2:])
        context = self.update_context(state, obs, k_loss)
        state, opt_state = self.apply_update(state, grads, tx, opt_state, context)
        return state, opt_state, episodes.with_loss(loss, loss_metrics)
