"""How close the coordinate-sampled meta-gradient is to the exact one, on the same agents.

    python examples/paper/sampled_cosine.py [--env Catch] [--meta-steps 24] [--every 2]
                                            [--fractions 1 0.5 0.25 0.125 0.0625]

Meta-trains the CLI's default recipe on `--env` (Optim4RL, 64 single-env A2C agents with
pipeline training, K = 4, by autodiff through the unroll) and, every `--every` meta-steps,
estimates the meta-gradient of the current agents again with `TruncatedBPTT` by coordinates
at each fraction, with the same key (so the same rollouts), next to the exact one. Prints,
per fraction, the cosine between the two over the meta-steps (mean, min, max) and the ratio
of their norms, and writes examples/paper/results/sampled_cosine.json.
"""

import argparse
import json
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="Catch")
    parser.add_argument("--meta-steps", type=int, default=24)
    parser.add_argument("--every", type=int, default=2)
    parser.add_argument(
        "--fractions", type=float, nargs="+", default=[1.0, 0.5, 0.25, 0.125, 0.0625]
    )
    args = parser.parse_args()

    import equinox as eqx
    import jax

    import l2orl

    config = l2orl.MetaTrainConfig().with_values(
        {"tasks[0].env": args.env, "algorithm.estimator.coordinate_fraction": None}
    )
    trainer = config.make_algorithm()
    loop = trainer.inner_loop(0, trainer.schedule.max_length)
    step = eqx.filter_jit(type(trainer).step)

    @eqx.filter_jit
    def estimate(estimator, optimizer, agents, key):
        return estimator.estimate(
            loop=loop, optimizer=optimizer, agents=agents, state=None, key=key
        )[0]

    def flat(tree) -> np.ndarray:
        return np.concatenate([np.ravel(x) for x in jax.tree.leaves(tree)])

    exact_estimator = l2orl.TruncatedBPTT()
    cosines = {p: [] for p in args.fractions}
    norm_ratios = {p: [] for p in args.fractions}
    state = trainer.init(jax.random.key(config.run.seed))
    for meta_step in range(args.meta_steps):
        if meta_step % args.every == 0:
            optimizer, agents = trainer.optimizer_at(state), state.agents[0]
            key = jax.random.fold_in(state.key, meta_step)
            exact = flat(estimate(exact_estimator, optimizer, agents, key))
            for p in args.fractions:
                sampled = l2orl.TruncatedBPTT(coordinate_fraction=p)
                g = flat(estimate(sampled, optimizer, agents, key))
                cos = float(g @ exact / (np.linalg.norm(g) * np.linalg.norm(exact)))
                cosines[p].append(cos)
                norm_ratios[p].append(float(np.linalg.norm(g) / np.linalg.norm(exact)))
            print(
                f"meta-step {meta_step}: "
                + ", ".join(f"p={p:g} cos {cosines[p][-1]:.4f}" for p in args.fractions),
                flush=True,
            )
        state, _ = step(trainer, state)
    summary = {"settings": vars(args), "fractions": {}}
    for p in args.fractions:
        c, r = np.asarray(cosines[p]), np.asarray(norm_ratios[p])
        summary["fractions"][f"{p:g}"] = {
            "cosine_mean": float(c.mean()),
            "cosine_min": float(c.min()),
            "cosine_max": float(c.max()),
            "norm_ratio_mean": float(r.mean()),
            "cosines": c.tolist(),
        }
        print(
            f"p = {p:g}: cosine with the exact meta-gradient over {len(c)} meta-steps: mean "
            f"{c.mean():.4f}, min {c.min():.4f}, max {c.max():.4f}; norm ratio {r.mean():.3f}"
        )
    out = Path(__file__).parent / "results" / "sampled_cosine.json"
    out.write_text(json.dumps(summary, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
