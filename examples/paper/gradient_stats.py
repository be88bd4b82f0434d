"""The non-i.i.d. evidence: how agent gradients drift over training, against a supervised task.

    python examples/paper/gradient_stats.py [--seeds 3] [--out out/gradient_stats] [--smoke]

Trains (with Adam 1e-3, the same number of updates) an A2C agent on Catch (the reference's
settings: 64 envs, 20-step rollouts, MLP 256) and a classifier of the same shape on a dataset
generated in-process (Gaussian class clusters, cross-entropy, batches of 128). At several
stages of training it takes one gradient (a fresh rollout, or a fresh batch) and records
log10|g| over all parameters. Writes histograms per stage (`histograms.png`) and a JSON of
per-stage quantiles plus the 1-Wasserstein distance between consecutive stages' distributions,
per seed: how far the gradient distribution still moves between two stages of training.
"""

import argparse
import json
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

import l2orl.rl as rl

N_CLASSES, N_DIMS = 3, 50  # as Catch: 3 actions, 50 inputs


def log_magnitudes(grads) -> np.ndarray:
    g = np.concatenate([np.ravel(x) for x in jax.tree.leaves(eqx.filter(grads, eqx.is_array))])
    g = np.abs(g[g != 0])
    return np.log10(g)


def rl_stages(key, n_updates: int, stages: list[int], n_envs: int) -> list[np.ndarray]:
    learner, env = rl.default_learner("Catch", n_envs=n_envs), rl.make("Catch")
    tx = optax.adam(1e-3)
    state = learner.init(env, key)
    opt_state = tx.init(state.params)
    step = eqx.filter_jit(lambda s, o, k: learner.step(env, s, tx, o, k)[:2])

    @eqx.filter_jit
    def gradient(state, key):
        def loss(network):
            return learner.fresh_loss(env, eqx.tree_at(lambda s: s.network, state, network), key)[
                0
            ]

        return eqx.filter_grad(loss)(state.network)

    return _train_and_record(key, state, opt_state, step, gradient, n_updates, stages)


def supervised_stages(key, n_updates: int, stages: list[int], batch: int) -> list[np.ndarray]:
    k_data, k_net, key = jax.random.split(key, 3)
    centers = 2.0 * jax.random.normal(k_data, (N_CLASSES, N_DIMS))
    model = eqx.nn.MLP(N_DIMS, N_CLASSES, 256, 1, activation=jax.nn.relu, key=k_net)
    tx = optax.adam(1e-3)
    opt_state = tx.init(eqx.filter(model, eqx.is_array))

    def sample(key):
        k_y, k_x = jax.random.split(key)
        y = jax.random.randint(k_y, (batch,), 0, N_CLASSES)
        return centers[y] + 4.0 * jax.random.normal(k_x, (batch, N_DIMS)), y

    def loss(model, key):
        x, y = sample(key)
        logits = jax.vmap(model)(x)
        return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, y))

    gradient = eqx.filter_jit(eqx.filter_grad(loss))

    @eqx.filter_jit
    def step(model, opt_state, key):
        updates, opt_state = tx.update(gradient(model, key), opt_state)
        return eqx.apply_updates(model, updates), opt_state

    return _train_and_record(key, model, opt_state, step, gradient, n_updates, stages)


def _train_and_record(key, model, opt_state, step, gradient, n_updates, stages) -> list:
    """`n_updates` of `step`, recording log10|g| of one fresh `gradient` at each of `stages`."""
    out = []
    for t in range(n_updates + 1):
        key, k_step, k_grad = jax.random.split(key, 3)
        if t in stages:
            out.append(log_magnitudes(gradient(model, k_grad)))
        if t < n_updates:
            model, opt_state = step(model, opt_state, k_step)
    return out


def wasserstein(a: np.ndarray, b: np.ndarray) -> float:
    """The 1-Wasserstein distance between two samples (through 200 shared quantiles)."""
    q = np.linspace(0.0025, 0.9975, 200)
    return float(np.mean(np.abs(np.quantile(a, q) - np.quantile(b, q))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("out/gradient_stats"))
    parser.add_argument("--smoke", action="store_true", help="a tiny run for CI")
    args = parser.parse_args()
    n_updates, n_envs = (8, 8) if args.smoke else (390, 64)  # 390 × 64 × 20 = 5e5 env-steps
    stages = sorted({0, n_updates // 8, n_updates // 4, n_updates // 2, n_updates})

    tasks = {
        "A2C on Catch": lambda k: rl_stages(k, n_updates, stages, n_envs),
        "supervised classifier": lambda k: supervised_stages(k, n_updates, stages, 128),
    }
    samples, summary = {}, {"stages": stages, "seeds": args.seeds, "tasks": {}}
    for name, run in tasks.items():
        per_seed = [run(jax.random.key(seed)) for seed in range(args.seeds)]
        samples[name] = [np.concatenate([s[i] for s in per_seed]) for i in range(len(stages))]
        drift = [[wasserstein(s[i], s[i + 1]) for i in range(len(stages) - 1)] for s in per_seed]
        summary["tasks"][name] = {
            "quantiles_5_50_95": [
                np.quantile(x, [0.05, 0.5, 0.95]).tolist() for x in samples[name]
            ],
            "wasserstein_between_consecutive_stages_per_seed": drift,
        }
        mean_drift = np.mean(drift, axis=0)
        print(
            f"{name}: median log10|g| by stage "
            f"{[round(float(np.median(x)), 2) for x in samples[name]]}; W1 between "
            f"consecutive stages (mean over seeds) {[round(float(d), 2) for d in mean_drift]}",
            flush=True,
        )

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 3.5), sharey=True)
    for ax, (name, per_stage) in zip(axes, samples.items(), strict=True):
        for stage, x in zip(stages, per_stage, strict=True):
            ax.hist(x, bins=80, range=(-10, 1), density=True, histtype="step", label=f"t={stage}")
        ax.set_title(name)
        ax.set_xlabel("log10 |g|")
    axes[0].set_ylabel("density")
    axes[-1].legend(title="update")
    fig.tight_layout()
    args.out.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out / "histograms.png", dpi=120)
    (args.out / "gradient_stats.json").write_text(json.dumps(summary, indent=1))
    print(f"wrote {args.out / 'histograms.png'} and {args.out / 'gradient_stats.json'}")


if __name__ == "__main__":
    main()
