"""Shared by the ablation examples: meta-train variants, test them from scratch, report.

Each variant is a set of `l2orl.MetaTrainConfig` settings (its flat form) over the recipe below,
optionally with its own optimizer object. Every variant is meta-trained once per meta-seed,
then every meta-trained optimizer trains agents from scratch on the same test seeds; a
variant's score pools its meta-seeds × test seeds (each run scored by its mean return over
the last `l2orl.rl.FINAL_FRACTION` = 10 % of updates), with a 95 % bootstrap CI.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
import optax

import l2orl
import l2orl.rl as rl

RECIPE = {"meta_lr": 1e-3, "meta_clip": 1.0, "reset_interval": 32, "meta_steps": 78}
"""The reference's Catch recipe, the baseline of every ablation (meta-Adam 1e-3, element-wise
clip 1, reset interval 32, 78 meta-steps); variants override what they ablate."""

SMOKE = {"agents": 4, "unroll": 2, "meta_steps": 2, "reset_interval": 2}
"""Overrides for `--smoke`: a few seconds per variant, for CI."""


def parse(doc: str, out: str, extra=()) -> argparse.Namespace:
    """The examples' common flags, plus `extra` `(flag, add_argument kwargs)` pairs."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    for flag, kwargs in extra:
        parser.add_argument(flag, **kwargs)
    parser.add_argument("--meta-seeds", type=int, default=2)
    parser.add_argument("--seeds", type=int, default=3, help="test seeds per optimizer")
    parser.add_argument(
        "--agents-per-chunk",
        type=int,
        default=None,
        help="TBPTT: differentiate this many agents at a time (less memory; default all)",
    )
    parser.add_argument("--out", type=Path, default=Path(out))
    parser.add_argument("--smoke", action="store_true", help="a tiny run for CI")
    args = parser.parse_args()
    if args.smoke:
        args.meta_seeds = 1
    return args


def meta_train(name: str, settings: dict, args, optimizer_for=None) -> tuple[list, list]:
    """`name` meta-trained once per meta-seed: the optimizers, and a record of each run.

    `optimizer_for(seed)`, if given, builds the variant's optimizer (else the preset)."""
    recipe = {
        **RECIPE,
        "agents_per_chunk": args.agents_per_chunk,
        **settings,
        **(SMOKE if args.smoke else {}),
    }  # the recipe's flat form, which `MetaTrainConfig.from_json` reads
    trained, records = [], []
    for seed in range(args.meta_seeds):
        out = args.out / "runs" / f"{name.replace(' ', '_')}-seed{seed}"
        config = l2orl.MetaTrainConfig.from_json({**recipe, "seed": seed, "out": str(out)})
        start = time.perf_counter()
        optimizer = optimizer_for(seed) if optimizer_for else None
        algorithm, state = config.meta_train(optimizer, progress=False)
        seconds = time.perf_counter() - start
        trained.append(algorithm.optimizer_at(state))
        records.append(
            {
                "meta_seed": seed,
                "seconds": seconds,
                "skipped": int(state.skipped),
                "settings": config.run_settings(),
            }
        )
        print(f"meta-trained {name} (seed {seed}) in {seconds:.0f} s", flush=True)
    return trained, records


def test(
    variants: dict,
    baselines: tuple[str, ...],
    lr: float,
    env_name: str,
    n_updates: int,
    args,
    n_envs=None,
    clip=None,
    learner=None,
) -> dict:
    """Every meta-trained optimizer of every variant, and the optax `baselines` at `lr`, from
    scratch on `env_name` with the same test seeds (all behind `optax.clip(clip)` if given),
    by `rl.compare`, with `learner` (default: the env's default learner with `n_envs`).
    **Returns** the summary per variant."""
    optimizers = {
        f"{name} #{i}": opt for name, opts in variants.items() for i, opt in enumerate(opts)
    }
    result = rl.compare(
        optimizers,
        env_name,
        n_updates,
        lr=lr,
        baselines=baselines,
        clip=None if clip is None else optax.clip(clip),
        learner=learner or rl.default_learner(env_name, n_envs),
        seeds=args.seeds,
    )
    groups = {name: [f"{name} #{i}" for i in range(len(opts))] for name, opts in variants.items()}
    groups.update({name: [name] for name in result.results if name not in optimizers})
    summary = {}
    for name, members in groups.items():
        finals = np.concatenate([result.results[m].final for m in members])
        curves = np.concatenate([result.results[m].curves for m in members])
        summary[name] = {
            "finals": finals.tolist(),
            "mean": float(finals.mean()),
            "ci95": list(rl.bootstrap_ci(finals)),
            "iqm": rl.iqm(finals),
            "curve_mean": curves.mean(axis=0).tolist(),
        }
    summary["_env_steps"] = np.asarray(result.env_steps).tolist()
    return summary


def report(title: str, summaries: dict, records: dict, args) -> None:
    """Print a table per test env, write `results.json` and `results.png` into `args.out`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    args.out.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(2, len(summaries), figsize=(5.5 * len(summaries), 7), squeeze=False)
    for col, (env, summary) in enumerate(summaries.items()):
        print(f"\n{title}: {env} (meta-seeds {args.meta_seeds} x test seeds {args.seeds})")
        print(f"{'variant':<28} {'mean':>7} {'95% CI':>17} {'IQM':>7}")
        names = [n for n in summary if not n.startswith("_")]
        for name in names:
            s = summary[name]
            print(
                f"{name:<28} {s['mean']:7.3f} [{s['ci95'][0]:6.3f}, {s['ci95'][1]:6.3f}] "
                f"{s['iqm']:7.3f}"
            )
            axes[0, col].plot(summary["_env_steps"], s["curve_mean"], label=name)
        means = [summary[n]["mean"] for n in names]
        errors = np.abs(np.array([summary[n]["ci95"] for n in names]).T - means)
        axes[1, col].bar(range(len(names)), means, yerr=errors, capsize=4)
        axes[1, col].set_xticks(range(len(names)), names, rotation=30, ha="right")
        axes[1, col].set_ylabel("final return (95% CI)")
        axes[0, col].set_title(env)
        axes[0, col].set_xlabel("env steps")
        axes[0, col].set_ylabel("training return (mean over runs)")
        axes[0, col].legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(args.out / "results.png", dpi=110)
    data = {
        "title": title,
        "meta_seeds": args.meta_seeds,
        "test_seeds": args.seeds,
        "final_fraction": rl.FINAL_FRACTION,
        "tests": summaries,
        "meta_training": records,
    }
    (args.out / "results.json").write_text(json.dumps(data, indent=1))
    print(f"wrote {args.out / 'results.png'} and {args.out / 'results.json'}")
