import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float


class RunningMeanStd(eqx.Module):
    """Running mean and variance of observations, for observation normalisation.

    Batches are merged with the parallel-variance rule (Chan et al.), so the statistics equal
    those of all observations seen, whatever the batch sizes.

    **Attributes:** `mean`, `var` of shape `obs_shape`; `count` (float32 scalar).
    """

    mean: Float[Array, "*obs"]
    var: Float[Array, "*obs"]
    count: Float[Array, ""]

    @staticmethod
    def create(obs_shape: tuple[int, ...]) -> "RunningMeanStd":
        """Empty statistics (mean 0, variance 1, count 0) for observations of `obs_shape`."""
        return RunningMeanStd(
            jnp.zeros(obs_shape, jnp.float32),
            jnp.ones(obs_shape, jnp.float32),
            jnp.zeros((), jnp.float32),
        )

    def update(self, batch: Float[Array, "n *obs"]) -> "RunningMeanStd":
        """The statistics after also seeing the `n` observations of `batch`."""
        batch = batch.reshape(-1, *self.mean.shape).astype(jnp.float32)
        n = jnp.asarray(batch.shape[0], jnp.float32)
        batch_mean, batch_var = jnp.mean(batch, axis=0), jnp.var(batch, axis=0)
        total = self.count + n
        delta = batch_mean - self.mean
        mean = self.mean + delta * n / total
        m2 = self.var * self.count + batch_var * n + jnp.square(delta) * self.count * n / total
        var = jnp.where(self.count > 0, m2 / total, batch_var)
        return RunningMeanStd(mean, var, total)

    def normalize(self, obs: Float[Array, "*batch"], clip: float = 10.0) -> Float[Array, "*batch"]:
        """`clip((obs - mean) / sqrt(var + 1e-8), ±clip)`, broadcasting over leading axes."""
        return jnp.clip((obs - self.mean) * jnp.reciprocal(jnp.sqrt(self.var + 1e-8)), -clip, clip)
