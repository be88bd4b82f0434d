"""Antithetic ES against evosax's OpenES, SNES and CMA-ES at equal environment steps on Catch.

    python examples/paper/es_comparison.py [--meta-seeds 3] [--test-seeds 5] [--test-key 1000]
                                           [--generations 25] [--population 16] [--lifetime 80]
                                           [--std 0.03] [--meta-lr 0.05]
                                           [--out examples/paper/results] [--smoke]

Every method meta-trains Optim4RL (α = 3e-3, 514 meta-parameters, initialised from the
meta-seed) on whole lifetimes of the same agents: A2C on Catch with 8 envs, 20-step rollouts
and an MLP of 64 ReLU units, trained from scratch for `--lifetime` updates and scored by the
mean return of their last 10 % (`LifetimeReturn(0.1)`), through `l2orl.LifetimeTraining`.
Each generation (meta-step) runs `--population` lifetimes of one agent each: `AntitheticES` as
`population / 2` antithetic pairs, each evosax strategy (`EvosaxStrategy`) as `population`
members, so every method spends the same env-steps. AntitheticES and OpenES shape the
fitness with centred ranks and step with Adam at `--meta-lr`; SNES and CMA-ES use evosax's
own updates. All start from the search scale `--std`. Each method's generation
is compiled once and run for every meta-seed.

Each meta-trained optimizer then trains fresh agents on held-out seeds (root `--test-key`)
for the same lifetime; a run's score is its mean return over the last 10 % of updates, pooled
over meta-seeds × test seeds with a 95 % bootstrap CI. Adam 3e-3 and the untrained Optim4RL
run on the same seeds. Writes es_comparison.json and es_comparison.png (each method's
meta-loss over generations, and the test scores with their CIs) into `--out` (`--smoke`: a tiny
run, its files named `*_smoke`)."""

import argparse
import json
import time
from pathlib import Path

import numpy as np

METHODS = ("AntitheticES", "OpenES", "SNES", "CMA-ES")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meta-seeds", type=int, default=3)
    parser.add_argument("--test-seeds", type=int, default=5)
    parser.add_argument("--test-key", type=int, default=1000)
    parser.add_argument("--generations", type=int, default=25)
    parser.add_argument("--population", type=int, default=16)
    parser.add_argument("--lifetime", type=int, default=80)
    parser.add_argument("--std", type=float, default=0.03)
    parser.add_argument("--meta-lr", type=float, default=0.05)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--smoke", action="store_true", help="a tiny run, for checking")
    args = parser.parse_args()
    if args.smoke:
        args.meta_seeds, args.test_seeds, args.generations = 2, 2, 2
        args.population, args.lifetime = 4, 5

    import equinox as eqx
    import jax
    import optax

    import l2orl
    import l2orl.rl as rl

    learner = rl.A2C(n_envs=8, rollout_length=20, network=rl.NetworkSpec("mlp", (64,), "relu"))
    env = rl.make("Catch")
    meta_loss = l2orl.LifetimeReturn(0.1)

    adam = optax.adam(args.meta_lr)  # one object: the compiled step is shared across seeds
    task = l2orl.MetaTask("catch", learner, env)

    def make(method: str, optimizer: l2orl.AbstractLearnedOptimizer) -> l2orl.LifetimeTraining:
        if method == "AntitheticES":
            strategy = l2orl.AntitheticES(args.population // 2, args.std, meta_optimizer=adam)
        else:
            strategy = l2orl.EvosaxStrategy(
                {"OpenES": "Open_ES", "SNES": "SNES", "CMA-ES": "CMA_ES"}[method],
                population_size=args.population,
                std=args.std,
                options={"optimizer": adam} if method == "OpenES" else {},
            )
        return l2orl.LifetimeTraining(
            optimizer, (task,), args.lifetime, strategy=strategy, meta_loss=meta_loss
        )

    # The generations are jitted once per method and run for every meta-seed (what
    # `l2orl.meta_train` does for runs of one algorithm, without their files).
    step = eqx.filter_jit(lambda trainer, state: trainer.step(state))
    trained, runs = {}, []
    for method in METHODS:
        for seed in range(args.meta_seeds):
            trainer = make(method, l2orl.optim4rl(step_size=3e-3, key=jax.random.key(seed)))
            state = trainer.init(jax.random.key(seed))
            log, start = [], time.perf_counter()
            for _ in range(args.generations):
                state, metrics = step(trainer, state)
                log.append({k: float(v) for k, v in metrics.items()})
                log[-1]["seconds"] = time.perf_counter() - start
            trained[f"{method} seed {seed}"] = trainer.optimizer_at(state)
            runs.append(
                {
                    "method": method,
                    "meta_seed": seed,
                    "seconds": log[-1]["seconds"],
                    "first_generation_seconds": log[0]["seconds"],  # compiling, at seed 0
                    "env_steps": sum(r["env_steps"] for r in log),
                    "skipped": int(state.skipped),
                    "meta_loss": [r["meta_loss"] for r in log],
                }
            )
            print(
                f"{method}, meta-seed {seed}: {log[-1]['seconds']:.0f} s (first generation "
                f"{log[0]['seconds']:.0f} s), {runs[-1]['env_steps']:.3g} env-steps, meta-loss "
                f"{log[0]['meta_loss']:.3f} → {log[-1]['meta_loss']:.3f}",
                flush=True,
            )
    baselines = {
        "adam 3e-3": optax.adam(3e-3),
        "untrained Optim4RL": l2orl.optim4rl(step_size=3e-3),
    }

    # `rl.evaluate`'s protocol, jitted with the optimizer as an argument: one compile serves
    # every meta-trained optimizer (`as_optax` inside the jit, not a new closure per row).
    @eqx.filter_jit
    def returns(optimizer, keys):
        if isinstance(optimizer, l2orl.AbstractLearnedOptimizer):
            optimizer = optimizer.as_optax()
        return rl.train(learner, env, optimizer, keys, args.lifetime).returns

    keys = jax.random.split(jax.random.key(args.test_key), args.test_seeds)
    start = time.perf_counter()
    finals = {
        name: rl.final_returns(np.asarray(returns(optimizer, keys), np.float64), 0.1)
        for name, optimizer in {**trained, **baselines}.items()
    }
    print(f"evaluation: {time.perf_counter() - start:.0f} s")
    summary = {"settings": {**vars(args), "out": str(args.out)}, "runs": runs, "test": {}}
    groups = {m: [f"{m} seed {s}" for s in range(args.meta_seeds)] for m in METHODS}
    groups.update({name: [name] for name in baselines})
    for name, rows in groups.items():
        pooled = np.concatenate([finals[row] for row in rows])
        low, high = rl.bootstrap_ci(pooled)
        summary["test"][name] = {
            "finals": pooled.tolist(),
            "mean": float(pooled.mean()),
            "ci95": [float(low), float(high)],
        }
        print(f"{name:>20}: {pooled.mean():.3f} [{low:.3f}, {high:.3f}] ({len(pooled)} runs)")
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"es_comparison{'_smoke' if args.smoke else ''}"
    stem.with_suffix(".json").write_text(json.dumps(summary, indent=1))
    plot(summary, stem.with_suffix(".png"))
    print(f"wrote {stem}.json and {stem}.png")


def plot(summary: dict, path: Path) -> None:
    """Each method's meta-loss over generations (mean over meta-seeds) and every row's test
    score with its 95 % CI."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for method in METHODS:
        losses = [r["meta_loss"] for r in summary["runs"] if r["method"] == method]
        left.plot(np.arange(1, len(losses[0]) + 1), np.mean(losses, axis=0), label=method)
    left.set_xlabel("generation")
    left.set_ylabel("meta-loss (mean over meta-seeds)")
    left.legend(fontsize=8)
    names = list(summary["test"])
    means = np.asarray([summary["test"][n]["mean"] for n in names])
    errors = np.abs(np.asarray([summary["test"][n]["ci95"] for n in names]).T - means)
    right.bar(range(len(names)), means, yerr=errors, capsize=4)
    right.set_xticks(range(len(names)), names, rotation=30, ha="right")
    right.set_ylabel("test return, last 10 % (95 % CI)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
