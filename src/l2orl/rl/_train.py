import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float, Int, PyTree

from .._custom_types import PRNGKey
from .._learner import AbstractLearner, mean_return, scan_updates
from .._utils import check_positive_int


class TrainResult(eqx.Module):
    """Per-seed learning curves of [`l2orl.rl.train`][] (leading axes `(n_seeds, n_updates)`).

    **Attributes:** `returns`, the mean return of the episodes that ended during each update's
    rollout (NaN where none ended); `episodes`, how many ended; `env_steps` `(n_updates,)`, the
    cumulative environment steps of one agent after each update; `metrics`, every scalar the
    learner reports per update (losses, entropy, …); `final_state`, the agents at the end.
    """

    returns: Float[Array, "seeds updates"]
    episodes: Float[Array, "seeds updates"]
    env_steps: Int[Array, " updates"]
    metrics: dict[str, Float[Array, "seeds updates"]]
    final_state: PyTree


def train(
    learner: AbstractLearner,
    env,
    tx: optax.GradientTransformation,
    keys: PRNGKey | Array,
    n_updates: int,
) -> TrainResult:
    """Train one agent per key from scratch, vmapped over the keys, as one jitted function.

    **Arguments:** `learner` (A2C, PPO), `env` (a gymnax-API environment, see
    [`l2orl.rl.make`][]), `tx` (any optax transform, learned optimizers included), `keys` (a
    batch of PRNG keys, one per seed), `n_updates` (positive int).
    """
    check_positive_int("n_updates", n_updates)
    if jnp.ndim(keys) == 0 or (
        not jax.dtypes.issubdtype(keys.dtype, jax.dtypes.prng_key) and keys.ndim < 2
    ):
        raise ValueError("keys must be a batch of PRNG keys, e.g. jax.random.split(key, n_seeds)")
    return _train(learner, env, tx, keys, n_updates)


@eqx.filter_jit
def _train(learner, env, tx, keys, n_updates):
    def one_seed(key):
        k_init, k_run = jax.random.split(key)
        state = learner.init(env, k_init)
        opt_state = tx.init(learner.params(state))
        keys = jax.random.split(k_run, n_updates)
        state, _, metrics, _ = scan_updates(
            learner, env, tx, state, opt_state, keys, progress=(0, n_updates)
        )
        return state, metrics

    final_state, metrics = jax.vmap(one_seed)(keys)
    returns = jnp.where(
        metrics.episodes > 0, mean_return(metrics.return_sum, metrics.episodes), jnp.nan
    )
    env_steps = learner.env_steps_per_update() * jnp.arange(1, n_updates + 1, dtype=jnp.int32)
    named = {k: v for k, v in metrics.as_dict().items() if k != "episodes"}
    return TrainResult(returns, metrics.episodes, env_steps, named, final_state)
