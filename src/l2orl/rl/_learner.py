import abc

import equinox as eqx
import gymnax.environments.spaces as spaces
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Bool, Float, Int, PyTree

from .._context import UpdateContext, update_with_context
from .._custom_types import Metrics, Params, PRNGKey
from .._learner import AbstractRolloutLearner, UpdateMetrics
from ._networks import ActorCritic, ConvTorso, MLPTorso
from ._normalize import RunningMeanStd
from ._policies import AbstractPolicyHead, Categorical, TanhGaussian


def as_float(x: float | Array) -> Float[Array, ""]:
    """A float32 scalar: learner hyperparameters are traced, so changing one never retraces."""
    return jnp.asarray(x, jnp.float32)


class NetworkSpec(eqx.Module):
    """Which actor-critic to build for an environment.

    **Arguments:** `torso` (`"mlp"`, default, or `"conv"`, the gridworld `C16_D32` net),
    `hidden_sizes` (the MLP's widths, or the conv net's dense width; default `(64, 64)`),
    `activation` (default `"tanh"`), and `value_hidden_sizes` (default `None`: the torso is
    shared between policy and value; a tuple gives the value its own MLP).
    """

    torso: str = eqx.field(static=True, default="mlp")
    hidden_sizes: tuple[int, ...] = eqx.field(static=True, default=(64, 64))
    activation: str = eqx.field(static=True, default="tanh")
    value_hidden_sizes: tuple[int, ...] | None = eqx.field(static=True, default=None)

    def __check_init__(self):
        if self.torso not in ("mlp", "conv"):
            raise ValueError(f"unknown torso {self.torso!r}; expected 'mlp' or 'conv'")
        if self.torso == "conv" and len(self.hidden_sizes) != 1:
            raise ValueError(
                f"the conv torso has one dense layer: hidden_sizes={self.hidden_sizes}"
            )

    def build(self, obs_shape: tuple[int, ...], action_space, key: PRNGKey) -> ActorCritic:
        """A freshly initialised network for observations of `obs_shape` and `action_space`."""
        k_pol, k_val, k_out = jax.random.split(key, 3)
        if self.torso == "conv":
            torso = ConvTorso(
                obs_shape, self.hidden_sizes[0], activation=self.activation, key=k_pol
            )
        else:
            torso = MLPTorso(
                int(np.prod(obs_shape)), self.hidden_sizes, self.activation, key=k_pol
            )
        value_torso = None
        if self.value_hidden_sizes is not None:
            value_torso = MLPTorso(
                int(np.prod(obs_shape)), self.value_hidden_sizes, self.activation, key=k_val
            )
        return ActorCritic(policy_for(action_space), torso, value_torso, key=k_out)


def policy_for(action_space) -> AbstractPolicyHead:
    """`Categorical` for a discrete action space, `TanhGaussian` for a box."""
    if isinstance(action_space, spaces.Discrete):
        return Categorical(int(action_space.n))
    if isinstance(action_space, spaces.Box):
        low, high = float(np.min(action_space.low)), float(np.max(action_space.high))
        return TanhGaussian(int(np.prod(action_space.shape)), low=low, high=high)
    raise TypeError(f"unsupported action space {action_space!r}: expected Discrete or Box")


class LearnerState(eqx.Module):
    """Everything an agent carries between updates (except its optimizer state).

    **Attributes:** `network`; `normalizer` (observation statistics); `env_state`, `obs`
    `(n_envs, *obs_shape)`; the running `episode_return`/`episode_length` `(n_envs,)`;
    `env_steps` (int32 total).
    """

    network: ActorCritic
    normalizer: RunningMeanStd
    env_state: PyTree
    obs: Float[Array, "n_envs *obs"]
    episode_return: Float[Array, " n_envs"]
    episode_length: Int[Array, " n_envs"]
    env_steps: Int[Array, ""]

    @property
    def params(self) -> PyTree:
        """The trainable arrays of the network: what `tx.init` and `tx.update` see."""
        return eqx.filter(self.network, eqx.is_inexact_array)


class Trajectory(eqx.Module):
    """A rollout of `T` steps of `n_envs` environments (leading axes `(T, n_envs)`; one step's
    transition, built inside the rollout's scan, has leading axis `(n_envs,)`).

    **Attributes:** `obs`, `actions` (raw, as the policy samples them), `rewards`, `terminated`,
    `truncated`, `next_obs` (the observation each step reached, before any auto-reset, so values
    can be bootstrapped through a time-limit truncation), and the behaviour policy's
    `log_probs` and `values`.
    """

    obs: Float[Array, "..."]
    actions: Array
    rewards: Float[Array, "*steps"]
    terminated: Bool[Array, "*steps"]
    truncated: Bool[Array, "*steps"]
    next_obs: Float[Array, "..."]
    log_probs: Float[Array, "*steps"]
    values: Float[Array, "*steps"]


class EpisodeStats(eqx.Module):
    """The episodes that ended during a rollout: their summed returns and lengths, and how
    many there were (float32 scalars)."""

    return_sum: Float[Array, ""]
    length_sum: Float[Array, ""]
    episodes: Float[Array, ""]

    def with_loss(self, loss: Float[Array, ""], extra: Metrics) -> UpdateMetrics:
        """An update's metrics: these episodes, the update's `loss` and `extra` metrics."""
        return UpdateMetrics(
            loss, self.return_sum, self.episodes, {"length_sum": self.length_sum, **extra}
        )


class AbstractActorCritic(AbstractRolloutLearner):
    """An actor-critic RL algorithm on a gymnax-API environment: the shared rollout,
    observation normalisation and update of [`l2orl.rl.A2C`][] and [`l2orl.rl.PPO`][].

    Subclasses hold hyperparameters (scan lengths static ints, floats as traced arrays) and
    implement `step`: one rollout and one update (or, for PPO, several minibatch updates), and
    `trajectory_loss`.
    """

    n_envs: eqx.AbstractVar[int]
    rollout_length: eqx.AbstractVar[int]
    network: eqx.AbstractVar[NetworkSpec]
    normalize_observations: eqx.AbstractVar[bool]

    @abc.abstractmethod
    def step(
        self,
        env,
        state: LearnerState,
        tx: optax.GradientTransformation,
        opt_state: PyTree,
        key: PRNGKey,
    ) -> tuple[LearnerState, PyTree, UpdateMetrics]:
        """One rollout and update. **Returns:** `(state, opt_state, metrics)`."""

    @abc.abstractmethod
    def trajectory_loss(
        self, network: ActorCritic, state: LearnerState, trajectory: Trajectory, key: PRNGKey
    ) -> Float[Array, ""]:
        """The learner's loss of `network` on a rollout `trajectory` (differentiable in it)."""

    def with_fresh_envs(self, env, state: LearnerState, key: PRNGKey) -> LearnerState:
        """`state`'s network and observation statistics with `n_envs` freshly reset
        environments."""
        fresh = self.init(env, key)
        return eqx.tree_at(
            lambda s: (s.network, s.normalizer), fresh, (state.network, state.normalizer)
        )

    def fresh_loss(
        self, env, state: LearnerState, key: PRNGKey
    ) -> tuple[Float[Array, ""], LearnerState]:
        """The learner's loss of `state.network` on a fresh rollout (Optim4RL's meta-loss).

        Differentiable in `state.network`; **returns** `(loss, state)`, the state advanced by
        the rollout (environments and statistics; the network unchanged).
        """
        k_roll, k_loss = jax.random.split(key)
        state, trajectory, _ = self.rollout(env, state, k_roll)
        return self.trajectory_loss(state.network, state, trajectory, k_loss), state

    def params(self, state: LearnerState) -> Params:
        return state.params

    def env_steps_per_update(self) -> int:
        return self.n_envs * self.rollout_length

    def init(self, env, key: PRNGKey) -> LearnerState:
        """A fresh agent: new network parameters, `n_envs` reset environments, zero statistics."""
        params = env.default_params
        k_net, k_env = jax.random.split(key)
        obs, env_state = jax.vmap(env.reset, in_axes=(0, None))(
            jax.random.split(k_env, self.n_envs), params
        )
        network = self.network.build(obs.shape[1:], env.action_space(params), k_net)
        zeros = jnp.zeros((self.n_envs,), jnp.float32)
        return LearnerState(
            network=network,
            normalizer=RunningMeanStd.create(obs.shape[1:]),
            env_state=env_state,
            obs=obs.astype(jnp.float32),
            episode_return=zeros,
            episode_length=jnp.zeros((self.n_envs,), jnp.int32),
            env_steps=jnp.zeros((), jnp.int32),
        )

    def observe(self, state: LearnerState, obs: Float[Array, "*batch"]) -> Float[Array, "*batch"]:
        """What the network sees: `obs`, normalised by the running statistics if enabled."""
        return state.normalizer.normalize(obs) if self.normalize_observations else obs

    def rollout(
        self, env, state: LearnerState, key: PRNGKey
    ) -> tuple[LearnerState, Trajectory, EpisodeStats]:
        """Act for `rollout_length` steps in every environment with the current policy.

        **Returns:** the advanced state, the `Trajectory` and the `EpisodeStats` of the
        episodes that ended during the rollout.
        """
        params = env.default_params
        network = state.network
        step_env = jax.vmap(env.step, in_axes=(0, 0, 0, None))

        def act(carry, key):
            env_state, obs, ep_return, ep_length = carry
            k_act, k_env = jax.random.split(key)
            dist, value = jax.vmap(network)(self.observe(state, obs))
            actions = jax.vmap(network.policy.sample)(dist, jax.random.split(k_act, self.n_envs))
            log_probs = jax.vmap(network.policy.log_prob)(dist, actions)
            env_actions = jax.vmap(network.policy.to_env)(actions)
            next_obs, env_state, reward, terminated, truncated, info = step_env(
                jax.random.split(k_env, self.n_envs), env_state, env_actions, params
            )
            reward = reward.astype(jnp.float32)
            done = terminated | truncated
            ep_return, ep_length = ep_return + reward, ep_length + 1
            ended = (jnp.where(done, ep_return, 0.0), jnp.where(done, ep_length, 0), done)
            transition = Trajectory(
                obs,
                actions,
                reward,
                terminated,
                truncated,
                info["final_observation"].astype(jnp.float32),
                log_probs,
                value,
            )
            carry = (
                env_state,
                next_obs.astype(jnp.float32),
                jnp.where(done, 0.0, ep_return),
                jnp.where(done, 0, ep_length),
            )
            return carry, (transition, ended)

        carry = (state.env_state, state.obs, state.episode_return, state.episode_length)
        keys = jax.random.split(key, self.rollout_length)
        (env_state, obs, ep_return, ep_length), (trajectory, ended) = jax.lax.scan(
            act, carry, keys
        )
        returns, lengths, done = ended
        state = eqx.tree_at(
            lambda s: (s.env_state, s.obs, s.episode_return, s.episode_length, s.env_steps),
            state,
            (
                env_state,
                obs,
                ep_return,
                ep_length,
                state.env_steps + self.rollout_length * self.n_envs,
            ),
        )
        stats = EpisodeStats(
            jnp.sum(returns),
            jnp.sum(lengths).astype(jnp.float32),
            jnp.sum(done).astype(jnp.float32),
        )
        return state, trajectory, stats

    def update_statistics(self, state: LearnerState, trajectory: Trajectory) -> LearnerState:
        """Fold the rollout's observations into the normalisation statistics, if enabled."""
        if not self.normalize_observations:
            return state
        return eqx.tree_at(lambda s: s.normalizer, state, state.normalizer.update(trajectory.obs))

    def update_context(
        self,
        state: LearnerState,
        obs: Float[Array, "batch *obs"],
        key: PRNGKey,
        batch_proportion: float | Float[Array, ""] = 0.0,
    ) -> UpdateContext:
        """The [`l2orl.UpdateContext`][] of an update on observations `obs`: its
        `batch_proportion`, the network's dormancy on `obs`, a key for stochastic updates
        (`key` is the update's own, folded, so drawing from it changes no other randomness)
        and the network's tensor roles ([`l2orl.rl.ActorCritic.tensor_roles`][]). What the
        transform does not read costs nothing: XLA drops it."""
        return UpdateContext(
            batch_proportion=as_float(batch_proportion),
            dormancy=state.network.dormancy(self.observe(state, obs)),
            key=jax.random.fold_in(key, 1),
            roles=state.network.tensor_roles(),
        )

    def apply_update(
        self,
        state: LearnerState,
        grads: PyTree,
        tx: optax.GradientTransformation,
        opt_state: PyTree,
        context: UpdateContext | None = None,
    ) -> tuple[LearnerState, PyTree]:
        """Run the gradients through `tx` (with `context` as its extra argument, for the
        transforms that take one) and apply the updates to the network."""
        updates, opt_state = update_with_context(
            tx, grads, opt_state, state.params, UpdateContext() if context is None else context
        )
        return eqx.tree_at(
            lambda s: s.network, state, eqx.apply_updates(state.network, updates)
        ), opt_state
