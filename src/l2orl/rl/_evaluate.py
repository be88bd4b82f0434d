"""Compare optimizers on one learner and environment over seeds, with honest uncertainty."""

import dataclasses
import json
import os
import time
import typing
from collections.abc import Mapping
from pathlib import Path

import jax
import numpy as np
import optax

from .._learner import AbstractLearner
from .._lopt import AbstractLearnedOptimizer
from .._progress import progress_bar
from .._utils import check_fraction, check_positive_int
from ._train import train

FINAL_FRACTION = 0.1
"""The share of a run's end that scores it: a run's final return is its mean training return
over its last 10 % of updates, in [`l2orl.rl.evaluate`][], [`l2orl.rl.compare`][] and every
task of [`l2orl.rl.SUITES`][]."""


def iqm(values: np.ndarray) -> float:
    """The interquartile mean: the mean of the middle 50 % of `values` (Agarwal et al., 2021)."""
    x = np.sort(np.asarray(values, np.float64).ravel())
    n = len(x)
    if n == 0:
        raise ValueError("iqm of no values")
    lo, hi = n // 4, n - n // 4
    return float(np.mean(x[lo:hi] if hi > lo else x))


def bootstrap_ci(
    values: np.ndarray,
    statistic=np.mean,
    confidence: float = 0.95,
    n_resamples: int = 10_000,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile-bootstrap confidence interval of `statistic` over `values` (resampled with
    replacement, `n_resamples` times, a fixed `seed` so reports are reproducible)."""
    x = np.asarray(values, np.float64).ravel()
    if len(x) == 0:
        raise ValueError("bootstrap_ci of no values")
    rng = np.random.default_rng(seed)
    samples = x[rng.integers(0, len(x), size=(n_resamples, len(x)))]
    stats = (
        np.apply_along_axis(statistic, 1, samples)
        if statistic is not np.mean
        else samples.mean(axis=1)
    )
    alpha = (1 - confidence) / 2
    return float(np.quantile(stats, alpha)), float(np.quantile(stats, 1 - alpha))


@dataclasses.dataclass(frozen=True)
class OptimizerResult:
    """One optimizer's runs: `curves` `(seeds, updates)` of training returns, `final` `(seeds,)`
    (each run's mean over its last `final_fraction` of updates), their mean and IQM with 95 %
    bootstrap confidence intervals, and the wall time of the whole (jitted) training, compile
    included."""

    name: str
    curves: np.ndarray
    final: np.ndarray
    mean: float
    mean_ci: tuple[float, float]
    iqm: float
    iqm_ci: tuple[float, float]
    seconds: float


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """The result of [`l2orl.rl.evaluate`][]: `results` by optimizer name, the shared `env_steps`
    axis `(updates,)`, and the settings (`env`, `seeds`, `final_fraction`)."""

    results: dict[str, OptimizerResult]
    env_steps: np.ndarray
    env: str
    seeds: int
    final_fraction: float

    def table(self) -> str:
        """A markdown table: final return mean [95 % CI], IQM [95 % CI], per-seed values."""
        lines = [
            f"{self.env}: final return = mean of the last {self.final_fraction:.0%} of each run; "
            f"{self.seeds} seeds; 95% percentile-bootstrap CIs",
            "",
            "| optimizer | mean [95% CI] | IQM [95% CI] | per seed | wall s |",
            "|---|---|---|---|---|",
        ]
        for r in self.results.values():
            seeds = ", ".join(f"{v:.3f}" for v in r.final)
            lines.append(
                f"| {r.name} | {r.mean:.3f} [{r.mean_ci[0]:.3f}, {r.mean_ci[1]:.3f}] | "
                f"{r.iqm:.3f} [{r.iqm_ci[0]:.3f}, {r.iqm_ci[1]:.3f}] | {seeds} | {r.seconds:.1f} |"
            )
        return "\n".join(lines)

    def to_json(self, path: str | os.PathLike) -> Path:
        """Write every curve and statistic to `path` as JSON (NaN as null)."""
        clean = lambda a: [None if not np.isfinite(v) else float(v) for v in np.ravel(a)]  # noqa: E731
        data = {
            "env": self.env,
            "seeds": self.seeds,
            "final_fraction": self.final_fraction,
            "env_steps": self.env_steps.tolist(),
            "results": {
                name: {
                    "final": clean(r.final),
                    "mean": r.mean,
                    "mean_ci": list(r.mean_ci),
                    "iqm": r.iqm,
                    "iqm_ci": list(r.iqm_ci),
                    "seconds": r.seconds,
                    "curves": [clean(c) for c in r.curves],
                }
                for name, r in self.results.items()
            },
        }
        path = Path(path)
        path.write_text(json.dumps(data))
        return path

    def plot(self, path: str | os.PathLike, smoothing: int = 10) -> Path:
        """Learning curves (mean over seeds, band = ±1.96 standard errors, NaN-aware moving
        average over `smoothing` updates) against environment steps, saved as a PNG."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4))
        for r in self.results.values():
            curves = np.stack([_smooth(c, smoothing) for c in r.curves])
            mean = np.nanmean(curves, axis=0)
            sem = np.nanstd(curves, axis=0) / np.sqrt(
                np.maximum(np.sum(np.isfinite(curves), axis=0), 1)
            )
            ax.plot(self.env_steps, mean, label=f"{r.name} ({r.mean:.2f})")
            ax.fill_between(self.env_steps, mean - 1.96 * sem, mean + 1.96 * sem, alpha=0.2)
        ax.set_xlabel("environment steps (one agent)")
        ax.set_ylabel("training episode return")
        ax.set_title(f"{self.env}, {self.seeds} seeds")
        ax.legend()
        fig.tight_layout()
        path = Path(path)
        fig.savefig(path, dpi=120)
        plt.close(fig)
        return path


def _smooth(curve: np.ndarray, window: int) -> np.ndarray:
    if window <= 1:
        return curve
    values = np.nan_to_num(curve)
    counts = np.isfinite(curve).astype(np.float64)
    kernel = np.ones(window)
    sums = np.convolve(values, kernel)[: len(curve)]
    n = np.convolve(counts, kernel)[: len(curve)]
    return np.where(n > 0, sums / np.maximum(n, 1), np.nan)


def final_returns(curves: np.ndarray, final_fraction: float) -> np.ndarray:
    """Each run's mean training return over its last `final_fraction` of updates (NaN-aware).

    A run that finished no episode in them (long episodes, none ending or failing there) is
    scored by its most recent update that finished one.

    **Raises:** `ValueError` if a run finished no episode at all."""
    check_fraction("final_fraction", final_fraction)
    n = max(1, round(curves.shape[-1] * final_fraction))
    finite = np.isfinite(curves)
    if not np.all(np.any(finite, axis=-1)):
        raise ValueError("a run finished no episode: lengthen the run")
    last = curves.shape[-1] - 1 - np.argmax(finite[..., ::-1], axis=-1)
    start = np.minimum(curves.shape[-1] - n, last)[..., None]
    index = np.arange(curves.shape[-1])
    return np.nanmean(np.where(index >= start, curves, np.nan), axis=-1)


# `evaluate` and `compare` check their optimizers themselves, with a message naming the entry
# and what it is (the factory `l2orl.optim4rl` rather than `l2orl.optim4rl()`, say); no runtime
# type checker steps in first.
@typing.no_type_check
def evaluate(
    optimizers: Mapping[str, optax.GradientTransformation | AbstractLearnedOptimizer],
    learner: AbstractLearner,
    env,
    n_updates: int,
    seeds: int = 5,
    key: int = 0,
    final_fraction: float = FINAL_FRACTION,
    progress: bool = True,
) -> Evaluation:
    """Train `learner` on `env` from scratch with each optimizer, every one on the same seeds.

    **Arguments:** `optimizers` by name (optax transforms or learned optimizers), `learner`,
    `env`, `n_updates` per run, `seeds` (runs per optimizer), `key` (the seeds' root; every
    optimizer sees the same seeds), `final_fraction` (the tail of each run that scores it;
    [`l2orl.rl.FINAL_FRACTION`][]),
    `progress` (a bar on a terminal: which optimizer's training of how many, ETA).

    **Raises:** `ValueError` for no optimizers, or one that is neither an optax transform nor a
    learned optimizer (say, the factory `l2orl.optim4rl` rather than `l2orl.optim4rl()`).
    """
    if not optimizers:
        raise ValueError("evaluate needs at least one optimizer")
    check_positive_int("seeds", seeds)
    transforms = {name: _transform(name, tx) for name, tx in optimizers.items()}
    keys = jax.random.split(jax.random.key(key), seeds)
    results, env_steps = {}, None
    with progress_bar(progress) as bar:
        task = bar.add_task("training", total=len(transforms), status="")
        for name, tx in transforms.items():
            bar.update(task, status=f"{name}: {seeds} seeds × {n_updates} updates")
            start = time.perf_counter()
            run = train(learner, env, tx, keys, n_updates)
            curves = np.asarray(jax.block_until_ready(run.returns), np.float64)
            seconds = time.perf_counter() - start
            env_steps = np.asarray(run.env_steps)
            final = final_returns(curves, final_fraction)
            results[name] = OptimizerResult(
                name,
                curves,
                final,
                float(np.mean(final)),
                bootstrap_ci(final),
                iqm(final),
                bootstrap_ci(final, iqm),
                seconds,
            )
            bar.advance(task)
    return Evaluation(
        results, env_steps, getattr(env, "name", type(env).__name__), seeds, final_fraction
    )


def _transform(name: str, tx) -> optax.GradientTransformation:
    """`tx` as an optax transform, or a `ValueError` naming what it is instead."""
    if isinstance(tx, AbstractLearnedOptimizer):
        return tx.as_optax()
    if isinstance(tx, optax.GradientTransformation):
        return tx
    hint = f"; did you mean {tx.__name__}()?" if callable(tx) and hasattr(tx, "__name__") else ""
    raise ValueError(
        f"optimizer {name!r} is {type(tx).__name__} {tx!r:.60}, not an optax transform or an "
        f"l2orl learned optimizer{hint}"
    )


@typing.no_type_check
def compare(
    optimizers: Mapping[str, optax.GradientTransformation | AbstractLearnedOptimizer],
    env_name: str,
    n_updates: int,
    *,
    lr: float = 1e-3,
    baselines: tuple[str, ...] = ("adam", "rmsprop"),
    clip: optax.GradientTransformation | None = None,
    learner: AbstractLearner | None = None,
    env=None,
    seeds: int = 3,
    key: int = 0,
    final_fraction: float = FINAL_FRACTION,
    progress: bool = True,
) -> Evaluation:
    """The library's comparison protocol: `optimizers` against hand-designed baselines, every
    one on the same seeds, all behind the same gradient `clip` (an optax transform chained in
    front, as in meta-training), scored by [`l2orl.rl.FINAL_FRACTION`][].

    **Arguments:** `optimizers` by name, `env_name` (with `env` and `learner` defaulting to
    `make(env_name)` and `default_learner(env_name)`), `n_updates` per run, `lr` (the
    baselines' learning rate), `baselines` (optax optimizer names, each a row `"<name> <lr>"`),
    `clip`, `seeds`, `key` (the seeds' root), `final_fraction`, `progress`.
    """
    from ._make import make
    from ._registry import default_learner

    rows = {name: _transform(name, tx) for name, tx in optimizers.items()}
    for name in baselines:
        if not callable(getattr(optax, name, None)):
            raise ValueError(f"unknown baseline {name!r}: expected an optax optimizer's name")
        rows[f"{name} {lr:g}"] = getattr(optax, name)(lr)
    if clip is not None:
        rows = {name: optax.chain(clip, tx) for name, tx in rows.items()}
    return evaluate(
        rows,
        default_learner(env_name) if learner is None else learner,
        make(env_name) if env is None else env,
        n_updates,
        seeds=seeds,
        key=key,
        final_fraction=final_fraction,
        progress=progress,
    )
