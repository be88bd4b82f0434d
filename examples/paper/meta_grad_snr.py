"""The meta-gradient's signal-to-noise ratio: independent estimates on the same agents.

    python examples/paper/meta_grad_snr.py [--config FILE] [--set PATH=JSON ...]
                                           [--warmup 32] [--draws 6] [--out FILE]

Builds the truncated meta-training a `MetaTrainConfig` describes (default: the README's Catch
recipe; `--config` a JSON file, `--set algorithm.pipeline.agents=256` any setting by its JSON
path on top), runs `--warmup` meta-steps so the
pipeline's agents have the ages of training, then estimates each task's meta-gradient
`--draws` times on the same agents and meta-parameters, from independent rollout keys, with
the recipe's own estimator and meta-loss. Printed per task:

- the pairwise cosines of the draws (mean, min, max); two independent estimates `g + n₁`,
  `g + n₂` have cosine ≈ s/(1+s), s = |g|²/E|n|² the squared signal-to-noise ratio, so
  `s = c/(1-c)` from the mean cosine c (0 when c ≤ 0);
- the spread of the draws' norms (largest / smallest);
- the meta-parameter leaf that carries most of the squared gradient, its share, and the mean
  cosine of the draws without it;
- heavy tails: the mean cosine between the averages of two disjoint halves of the draws (over
  every split), as drawn and with each draw's norm clipped at the draws' median norm (what
  clipping the meta-gradient by a running scale does to an average of meta-steps).

Writes the figures as JSON to `--out` when given.
"""

import argparse
import itertools
import json

import numpy as np


def flat(tree) -> np.ndarray:
    import jax

    return np.concatenate([np.ravel(np.asarray(x)) for x in jax.tree.leaves(tree)])


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-30))


def pairwise(draws: list[np.ndarray]) -> list[float]:
    return [cosine(a, b) for a, b in itertools.combinations(draws, 2)]


def half_cosine(draws: list[np.ndarray]) -> float:
    """The mean cosine between the averages of two disjoint halves, over every split."""
    n = len(draws) // 2
    splits = [
        (first, tuple(i for i in range(2 * n) if i not in first))
        for first in itertools.combinations(range(2 * n), n)
        if 0 in first  # each split once
    ]
    return float(
        np.mean(
            [
                cosine(np.mean([draws[i] for i in a], 0), np.mean([draws[i] for i in b], 0))
                for a, b in splits
            ]
        )
    )


def summary(draws: list[np.ndarray], leaves: list[tuple[str, int]]) -> dict:
    """The figures the module docstring lists, for one task's draws."""
    cosines = pairwise(draws)
    mean = float(np.mean(cosines))
    norms = [float(np.linalg.norm(d)) for d in draws]
    scale = float(np.median(norms))
    clipped = [d * min(1.0, scale / n) for d, n in zip(draws, norms, strict=True)]
    offsets = np.cumsum([0] + [n for _, n in leaves])
    shares = [
        float(np.mean([np.sum(d[a:b] ** 2) / np.sum(d**2) for d in draws]))
        for a, b in itertools.pairwise(offsets)
    ]
    top = int(np.argmax(shares))
    keep = np.ones(offsets[-1], bool)
    keep[offsets[top] : offsets[top + 1]] = False
    return {
        "cosine_mean": mean,
        "cosine_min": float(np.min(cosines)),
        "cosine_max": float(np.max(cosines)),
        "snr_squared": max(mean, 0.0) / (1.0 - mean),
        "norm_spread": max(norms) / min(norms),
        "top_leaf": leaves[top][0],
        "top_share": shares[top],
        "cosine_mean_without_top": float(np.mean(pairwise([d[keep] for d in draws]))),
        "half_cosine": half_cosine(draws),
        "half_cosine_clipped": half_cosine(clipped),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="a MetaTrainConfig JSON file (default: the defaults)")
    parser.add_argument("--set", nargs="*", default=[], metavar="PATH=JSON")
    parser.add_argument("--warmup", type=int, default=32)
    parser.add_argument("--draws", type=int, default=6)
    parser.add_argument("--out")
    args = parser.parse_args()

    import equinox as eqx
    import jax

    import l2orl

    config = l2orl.MetaTrainConfig.from_json(args.config) if args.config else None
    config = config or l2orl.MetaTrainConfig()
    changes = {}
    for item in args.set:
        path, _, value = item.partition("=")
        changes[path] = json.loads(value)
    config = config.with_values(changes)
    training = config.make_algorithm()
    if not isinstance(training, l2orl.TruncatedTraining):
        parser.error("the recipe's algorithm must be truncated training (its estimator's SNR)")
    step = eqx.filter_jit(type(training).step)
    state = training.init(jax.random.key(config.run.seed))
    for _ in range(args.warmup):
        state, _ = step(training, state)
    unroll = training.schedule.max_length

    @eqx.filter_jit
    def estimate(optimizer, loop, agents, est, key):
        return training.estimator.estimate(
            loop=loop, optimizer=optimizer, agents=agents, state=est, key=key
        )[0]

    optimizer = training.optimizer_at(state)
    paths = jax.tree_util.tree_flatten_with_path(eqx.filter(optimizer, eqx.is_inexact_array))[0]
    leaves = [(jax.tree_util.keystr(path), int(np.size(x))) for path, x in paths]
    shown = changes or "defaults"
    print(f"meta-gradient SNR: {config.optimizer.preset}, {shown}, after {args.warmup} meta-steps")
    results = {"config": config.to_json(), "warmup": args.warmup, "draws": args.draws}
    for i, task in enumerate(training.tasks):
        keys = jax.random.split(jax.random.key(1000 + i), args.draws)
        loop = training.inner_loop(i, unroll)
        draws = [
            flat(estimate(optimizer, loop, state.agents[i], state.estimator_states[i], k))
            for k in keys
        ]
        s = summary(draws, leaves)
        results[task.name] = s
        print(
            f"{task.name:<20} cosine {s['cosine_mean']:6.3f} [{s['cosine_min']:6.3f}, "
            f"{s['cosine_max']:5.3f}]  s ≈ {s['snr_squared']:.2f}  norms ×{s['norm_spread']:.1f}  "
            f"top {s['top_leaf']} {s['top_share']:.2f} (without it: "
            f"{s['cosine_mean_without_top']:.3f})  halves {s['half_cosine']:.3f} "
            f"(clipped at the median norm {s['half_cosine_clipped']:.3f})"
        )
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
