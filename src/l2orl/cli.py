"""The `l2orl` command line."""

import argparse
import sys
from collections.abc import Sequence

_PLANNED = {
    "meta-train": "meta-train a learned optimizer on an RL task (default: Optim4RL on Catch)",
    "evaluate": "compare a checkpoint or preset with Adam/RMSProp on an env",
    "plot": "plot a metrics log to PNG",
}


def _presets(args: argparse.Namespace) -> int:
    import l2orl

    print(f"{'preset':<12} {'class':<24} meta-parameters")
    for name in ("Optim4RL", "L2LGD2", "LinearOptim", "STAR"):
        optimizer = getattr(l2orl, name)()
        print(f"{name:<12} {type(optimizer).__name__:<24} {optimizer.n_meta_parameters}")
    return 0


def _not_yet(args: argparse.Namespace) -> int:
    from l2orl import __version__

    print(
        f"l2orl {__version__}: `l2orl {args.command}` is not yet available; it arrives with the "
        "RL inner loop and meta-training milestones (see README.md, Roadmap). Available now: "
        "the learned-optimizer parts, presets and checkpoints (`l2orl presets`)."
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="l2orl", description="Learning to optimize for RL.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("presets", help="list the preset learned optimizers").set_defaults(
        run=_presets
    )
    for name, help_text in _PLANNED.items():
        commands.add_parser(name, help=f"{help_text} (not yet available)").set_defaults(
            run=_not_yet
        )
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
