"""Structure ablation: which learned optimizers learn RL when meta-trained the same way?

    python examples/paper/ablate_structure.py [--meta-seeds 2] [--seeds 3]
                                              [--out out/ablate_structure] [--smoke]

Meta-trains Optim4RL, L2LGD2, LinearOptim, STAR and a plain per-coordinate GRU (its output is
the update: no built-in structure) with the reference's Catch recipe (64 single-env A2C
agents with pipeline training, reset interval 32, TBPTT with K = 4, meta-Adam 1e-3 with
element-wise clip 1, 78 meta-steps), then trains A2C agents from scratch on Catch for 5e5
env-steps with each, against Adam and RMSProp (lr 1e-3). Writes results.json and results.png.
"""

import jax
from _ablation import meta_train, parse, report, test

import l2orl


def plain_gru(seed: int) -> l2orl.PerCoordinateOptimizer:
    cell = l2orl.GRUCell(1, 8, key=jax.random.key(seed))
    return l2orl.PerCoordinateOptimizer(l2orl.Identity(), cell, l2orl.LinearHead(), 1e-3)


def main() -> None:
    args = parse(__doc__, "out/ablate_structure")
    variants, records = {}, {}
    for name in ("Optim4RL", "L2LGD2", "LinearOptim", "STAR"):
        variants[name], records[name] = meta_train(name, {"optimizer": name}, args)
    name = "GRU (no structure)"
    variants[name], records[name] = meta_train(name, {}, args, plain_gru)
    n_updates = 6 if args.smoke else 390  # 390 × 64 envs × 20 steps = 5e5 env-steps
    n_envs = 8 if args.smoke else None
    summary = test(variants, ("adam", "rmsprop"), 1e-3, "Catch", n_updates, args, n_envs)
    report("Structure ablation (meta-trained on Catch)", {"Catch": summary}, records, args)


if __name__ == "__main__":
    main()
