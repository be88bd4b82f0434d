"""The `l2orl` command line: argparse in front of `MetaTrainConfig`, `resolve_optimizer` and
`rl.compare`."""

import argparse
import dataclasses
import os
import sys
from collections.abc import Sequence
from pathlib import Path


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive int, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def _fraction_or_none(text: str) -> float | str:
    if text in ("auto", "none"):
        return text
    value = float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], 'auto' or 'none', got {value}")
    return value


def _presets(args: argparse.Namespace) -> int:
    import l2orl

    width = max(map(len, l2orl.PRESETS))
    print(f"{'preset':<{width}} {'class':<24} meta-parameters")
    for name, make in l2orl.PRESETS.items():
        optimizer = make()
        print(f"{name:<{width}} {type(optimizer).__name__:<24} {optimizer.n_meta_parameters}")
    return 0


def config_of(args: argparse.Namespace):
    """The flags over the config file over the defaults."""
    import l2orl

    config = (
        l2orl.MetaTrainConfig()
        if args.config is None
        else l2orl.MetaTrainConfig.from_json(args.config)
    )
    fields = {f.name for f in dataclasses.fields(config)}
    flags = {k: v for k, v in vars(args).items() if k in fields and v is not None}
    if flags.get("coordinate_fraction") == "none":
        flags["coordinate_fraction"] = None
    return config.replace(**flags)


def _meta_train(args: argparse.Namespace) -> int:
    config = config_of(args)
    print(
        f"meta-training {config.optimizer} on {', '.join(config.env)} -> {config.out}", flush=True
    )
    trainer, state = config.run(progress=not args.quiet)
    print(f"saved {Path(config.out) / 'optimizer.l2o'} ({int(state.skipped)} meta-steps skipped)")
    if args.no_evaluate:
        return 0
    return _compare(
        trainer.optimizer_at(state),
        config.env[0],
        config.step_size,
        config.eval_seeds,
        config.eval_updates,
        Path(config.out),
        not args.quiet,
        config.agent_clip,
    )


def _compare(
    optimizer,
    env_name: str,
    lr: float,
    seeds: int,
    updates: int,
    out: Path,
    progress: bool,
    clip: float | None = None,
) -> int:
    import optax

    import l2orl.rl as rl

    out.mkdir(parents=True, exist_ok=True)  # an unwritable --out fails before the trainings
    result = rl.compare(
        {"learned": optimizer},
        env_name,
        updates,
        lr=lr,
        clip=None if clip is None else optax.clip(clip),
        seeds=seeds,
        progress=progress,
    )
    print(result.table())
    name = env_name.replace(":", "_")
    png, data = (
        result.plot(out / f"evaluate-{name}.png"),
        result.to_json(out / f"evaluate-{name}.json"),
    )
    print(f"wrote {png} and {data}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    import l2orl
    import l2orl.rl as rl

    optimizer = l2orl.resolve_optimizer(args.optimizer, args.step_size)
    rl.env_family(args.env)  # a clear error for an unknown env before any compile
    return _compare(
        optimizer, args.env, args.lr, args.seeds, args.updates, Path(args.out), not args.quiet
    )


def _plot(args: argparse.Namespace) -> int:
    import l2orl

    keys = args.keys.split(",") if args.keys else None
    print(f"wrote {l2orl.plot_metrics(args.metrics, keys, args.out)}")
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse, with a bad flag reported as every other bad input: one line, status 2."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (`{self.prog} --help` lists them)\n")


def parser() -> argparse.ArgumentParser:
    """The `l2orl` command's parser."""
    parser = _Parser(
        prog="l2orl",
        description="Learning to optimize for RL. A bad input ends with one `error: …` line and "
        "exit status 2; an interrupted meta-training checkpoints and exits with 130 (SIGINT) "
        "or 143 (SIGTERM).",
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--debug",
        action="store_true",
        help="show the traceback of an error (or set L2ORL_DEBUG=1)",
    )
    long_job = argparse.ArgumentParser(add_help=False, parents=[common])
    long_job.add_argument(
        "--quiet", action="store_true", help="no progress bar (there is none off a terminal)"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "presets", help="list the preset learned optimizers", parents=[common]
    ).set_defaults(run=_presets)

    meta = commands.add_parser(
        "meta-train",
        parents=[long_job],
        help="meta-train a learned optimizer, then evaluate it against Adam and RMSProp",
        description="With no arguments: l2orl.MetaTrainConfig's defaults, Optim4RL on Catch "
        "with pipeline training (64 agents, K=4, reset interval 32, 78 meta-steps), then an "
        "evaluation over 3 seeds. Every flag is a field of the config.",
    )
    meta.add_argument(
        "--config", help="a JSON file of settings (keys as the flags, with underscores)"
    )
    meta.add_argument(
        "--env", action="append", help="a task env (repeat for multi-task); default Catch"
    )
    meta.add_argument("--optimizer", help="a name of l2orl.PRESETS (`l2orl presets` lists them)")
    meta.add_argument("--step-size", dest="step_size", type=_positive_float)
    meta.add_argument(
        "--agent-clip",
        dest="agent_clip",
        type=_positive_float,
        help="element-wise clip of the agents' gradients before the optimizer",
    )
    meta.add_argument("--agents", type=_positive_int)
    meta.add_argument("--unroll", type=_positive_int, help="inner updates K per meta-step")
    meta.add_argument("--reset-interval", dest="reset_interval", type=_positive_int)
    meta.add_argument("--pipeline", help="a name of l2orl.PIPELINE_KINDS")
    meta.add_argument("--estimator", help="a name of l2orl.ESTIMATORS")
    meta.add_argument("--meta-loss", dest="meta_loss", help="a name of l2orl.META_LOSSES")
    meta.add_argument(
        "--normalize-advantages",
        dest="normalize_advantages",
        action="store_true",
        default=None,
        help="the agent and fresh_rollout meta-losses normalise the agents' advantages over "
        "their batch (PPO's loss already does)",
    )
    meta.add_argument("--schedule", help="a name of l2orl.SCHEDULES")
    meta.add_argument(
        "--min-unroll",
        dest="min_unroll",
        type=_positive_int,
        help="the least K of a varying schedule",
    )
    meta.add_argument(
        "--agents-per-chunk",
        dest="agents_per_chunk",
        type=_positive_int,
        help="tbptt: differentiate this many agents at a time (less memory; default all)",
    )
    meta.add_argument(
        "--coordinate-fraction",
        dest="coordinate_fraction",
        type=_fraction_or_none,
        help="tbptt: back-propagate through this fraction of the coordinates, sampled "
        "(1: exact by coordinates; 'none': exact by autodiff through the unroll; 'auto', the "
        "default: 1/16 where the optimizer allows it, else 'none')",
    )
    meta.add_argument(
        "--low-memory",
        dest="low_memory",
        action="store_true",
        default=None,
        help="compile with XLA CPU's older fusion emitters: a quarter of the compiler's "
        "memory, a slower meta-step",
    )
    meta.add_argument(
        "--physics-gradient",
        dest="physics_gradient",
        action="store_true",
        default=None,
        help="brax envs: back-propagate the meta-gradient through the simulator, as the "
        "reference (default: it stops at the simulator)",
    )
    meta.add_argument("--meta-lr", dest="meta_lr", type=_positive_float)
    meta.add_argument(
        "--meta-clip",
        dest="meta_clip",
        type=_positive_float,
        help="element-wise clip of the meta-gradient",
    )
    meta.add_argument(
        "--task-normalize",
        dest="task_normalize",
        type=_positive_float,
        help="rescale each task's meta-gradient to this global norm before averaging",
    )
    meta.add_argument("--meta-steps", dest="meta_steps", type=_positive_int)
    meta.add_argument("--seed", type=int)
    meta.add_argument("--out")
    meta.add_argument(
        "--keep-checkpoints",
        dest="keep_checkpoints",
        type=int,
        help="how many of the newest checkpoints to keep (default 2; 0 keeps all)",
    )
    meta.add_argument("--eval-seeds", dest="eval_seeds", type=_positive_int)
    meta.add_argument("--eval-updates", dest="eval_updates", type=_positive_int)
    meta.add_argument("--no-evaluate", action="store_true")
    meta.set_defaults(run=_meta_train)

    evaluate = commands.add_parser(
        "evaluate",
        help="compare an optimizer with Adam and RMSProp on an env",
        parents=[long_job],
    )
    evaluate.add_argument(
        "--optimizer",
        required=True,
        help="a checkpoint (.l2o), a preset or a pretrained optimizer's name",
    )
    evaluate.add_argument("--env", required=True)
    evaluate.add_argument(
        "--lr", type=_positive_float, default=1e-3, help="the baselines' learning rate"
    )
    evaluate.add_argument(
        "--step-size",
        dest="step_size",
        type=_positive_float,
        help="the learned optimizer's step size α (default: its own)",
    )
    evaluate.add_argument("--seeds", type=_positive_int, default=3)
    evaluate.add_argument("--updates", type=_positive_int, default=390)
    evaluate.add_argument("--out", default="runs/evaluate")
    evaluate.set_defaults(run=_evaluate)

    plot = commands.add_parser(
        "plot", help="plot a meta-training metrics log (metrics.jsonl) to PNG", parents=[common]
    )
    plot.add_argument("metrics")
    plot.add_argument(
        "--keys", help="comma-separated metric names (default: meta_loss and returns)"
    )
    plot.add_argument("--out")
    plot.set_defaults(run=_plot)

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `l2orl` command with `argv` (default: the process's arguments); **returns** the
    exit status: 0, 2 for a bad input (one `error: …` line on stderr, the traceback only with
    `--debug` or `L2ORL_DEBUG=1`), 130 / 143 for a meta-training stopped by SIGINT / SIGTERM
    (checkpointed; the same command resumes it) and 130 for any other Ctrl-C."""
    args = parser().parse_args(argv)
    from l2orl import RunInterrupted

    try:
        return args.run(args)
    except RunInterrupted as stop:
        print(
            f"interrupted at meta-step {stop.meta_step}; run the same command to resume",
            file=sys.stderr,
        )
        return stop.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError) as error:  # bad input: files, names, settings
        if args.debug or os.environ.get("L2ORL_DEBUG", "0") not in ("", "0"):
            raise
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
