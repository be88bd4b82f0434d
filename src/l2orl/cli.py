"""The `l2orl` command line: argparse in front of `MetaTrainConfig`, `resolve_optimizer` and
`rl.compare`."""

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any


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


def _setting(text: str) -> tuple[str, Any]:
    """A `--set PATH=VALUE`: VALUE read as JSON, else taken as a string."""
    path, equals, value = text.partition("=")
    if not (equals and path):
        raise argparse.ArgumentTypeError(f"must be PATH=VALUE, got {text!r}")
    try:
        return path, json.loads(value)
    except json.JSONDecodeError:
        return path, value


def _presets(args: argparse.Namespace) -> int:
    import l2orl

    width = max(map(len, l2orl.PRESETS))
    print(f"{'preset':<{width}} {'class':<24} meta-parameters")
    for name, make in l2orl.PRESETS.items():
        optimizer = make()
        print(f"{name:<{width}} {type(optimizer).__name__:<24} {optimizer.n_meta_parameters}")
    return 0


_FLAG_PATHS = {
    "optimizer": "optimizer.preset",
    "meta_steps": "run.meta_steps",
    "seed": "run.seed",
    "out": "run.out",
}
"""The recipe setting each common flag of `meta-train` sets."""


def config_of(args: argparse.Namespace):
    """The config file (or the defaults), then `--env` (one task per env, each with the
    settings of the config's first task), the other flags and each `--set`, in order."""
    import l2orl

    config = (
        l2orl.MetaTrainConfig()
        if args.config is None
        else l2orl.MetaTrainConfig.from_json(args.config)
    )
    changes = []
    if args.env:
        first = config.to_json()["tasks"][0]
        changes.append(("tasks", [{**first, "env": env} for env in args.env]))
    for flag, path in _FLAG_PATHS.items():
        if getattr(args, flag) is not None:
            changes.append((path, getattr(args, flag)))
    return config.with_values([*changes, *(args.set or [])])


def _meta_train(args: argparse.Namespace) -> int:
    config = config_of(args)
    envs, out = ", ".join(t.env for t in config.tasks), Path(config.run.out)
    print(f"meta-training {config.optimizer.preset} on {envs} -> {out}", flush=True)
    algorithm, state = config.meta_train(progress=not args.quiet)
    print(f"saved {out / 'optimizer.l2o'} ({int(state.skipped)} meta-steps skipped)")
    if args.no_evaluate:
        return 0
    first = config.tasks[0]
    return _compare(
        algorithm.optimizer_at(state),
        first.env,
        lr=config.optimizer.step_size,
        seeds=config.evaluation.seeds,
        updates=config.evaluation.updates,
        out=out,
        progress=not args.quiet,
        clip=first.grad_clip,
    )


def _compare(
    optimizer,
    env_name: str,
    *,
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

    if args.suite is None:
        if args.tasks:
            raise ValueError("--tasks selects tasks of a --suite, not of an --env")
        optimizer = l2orl.resolve_optimizer(args.optimizer, args.step_size)
        rl.env_family(args.env)  # a clear error for an unknown env before any compile
        return _compare(
            optimizer,
            args.env,
            lr=1e-3 if args.lr is None else args.lr,
            seeds=3 if args.seeds is None else args.seeds,
            updates=390 if args.updates is None else args.updates,
            out=Path(args.out),
            progress=not args.quiet,
        )
    given = [flag for flag in ("lr", "step_size") if getattr(args, flag) is not None]
    if given:
        flags = " and ".join(f"--{flag.replace('_', '-')}" for flag in given)
        raise ValueError(
            f"{flags}: only with --env; a suite's tasks set Adam's lr and the learned "
            "optimizer's α (each task's lr)"
        )
    suite = rl.SUITES[args.suite]
    if args.tasks:
        suite = suite.select(args.tasks)  # a clear error for an unknown task before any compile
    optimizer = l2orl.resolve_optimizer(args.optimizer)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)  # an unwritable --out fails before the trainings
    result = rl.evaluate_suite(
        optimizer, suite, seeds=args.seeds, n_updates=args.updates, progress=not args.quiet
    )
    for name, task in result.tasks.items():
        print(task.evaluation.table(), end="\n\n")
        stem = f"evaluate-{args.suite}-{name.replace(':', '_')}"
        task.evaluation.plot(out / f"{stem}.png")
        task.evaluation.to_json(out / f"{stem}.json")
    print(result.table())
    print(f"wrote {result.to_json(out / f'evaluate-{args.suite}.json')} and a plot per task")
    return 0


def _plot(args: argparse.Namespace) -> int:
    import l2orl

    keys = args.keys.split(",") if args.keys else None
    print(f"wrote {l2orl.plot_metrics(args.metrics, keys, args.out)}")
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse, with a bad flag reported as every other bad input: one line, status 2."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (`{self.prog} --help` lists them)\n")


def _add_meta_train(commands, long_job: argparse.ArgumentParser) -> None:
    """The `meta-train` subcommand: a few common flags and `--set` for any setting."""
    meta = commands.add_parser(
        "meta-train",
        parents=[long_job],
        help="meta-train a learned optimizer, then evaluate it against Adam and RMSProp",
        description="With no arguments: l2orl.MetaTrainConfig's defaults, Optim4RL on Catch "
        "with pipeline training (64 agents, K=4, reset interval 32, 78 meta-steps), then an "
        "evaluation over 3 seeds. Any setting of the recipe is `--set PATH=VALUE`, PATH its "
        "JSON path (e.g. algorithm.estimator.coordinate_fraction, tasks[0].grad_clip), VALUE "
        "JSON (0.25, null, true, {...}) or else a string; applied after --config and the "
        "other flags, in order.",
    )
    meta.add_argument("--config", help="a JSON recipe (MetaTrainConfig.to_json's form)")
    meta.add_argument(
        "--env",
        action="append",
        help="a task's env (repeat for multi-task): one task per env, each with the settings "
        "of the config's first task; default Catch",
    )
    meta.add_argument("--optimizer", help="a name of l2orl.PRESETS (`l2orl presets` lists them)")
    meta.add_argument("--meta-steps", dest="meta_steps", type=int, help="run.meta_steps")
    meta.add_argument("--seed", type=int, help="run.seed")
    meta.add_argument("--out", help="run.out, the run's folder")
    meta.add_argument(
        "--set",
        action="append",
        type=_setting,
        metavar="PATH=VALUE",
        help="set any setting of the recipe (repeatable)",
    )
    meta.add_argument("--no-evaluate", action="store_true")
    meta.set_defaults(run=_meta_train)


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

    _add_meta_train(commands, long_job)

    evaluate = commands.add_parser(
        "evaluate",
        help="compare an optimizer with Adam and RMSProp on an env, or with Adam on a suite",
        description="On an env (`--env`): the learned optimizer at its own α (or "
        "--step-size) against Adam and RMSProp at --lr. On a suite (`--suite`, "
        "l2orl.rl.SUITES): per task, the learned optimizer at α = the task's Adam lr against "
        "Adam, with the task's learner, budget, seeds and clip.",
        parents=[long_job],
    )
    evaluate.add_argument(
        "--optimizer",
        required=True,
        help="a checkpoint (.l2o), a preset or a pretrained optimizer's name",
    )
    target = evaluate.add_mutually_exclusive_group(required=True)
    target.add_argument("--env", help="an env's name (`l2orl.rl.available()`)")
    target.add_argument("--suite", choices=("validation", "test"), help="a suite's name")
    evaluate.add_argument("--tasks", nargs="+", help="with --suite: a subset of its tasks")
    evaluate.add_argument(
        "--lr", type=_positive_float, help="with --env: the baselines' learning rate (1e-3)"
    )
    evaluate.add_argument(
        "--step-size",
        dest="step_size",
        type=_positive_float,
        help="with --env: the learned optimizer's step size α (default: its own)",
    )
    evaluate.add_argument(
        "--seeds", type=_positive_int, help="runs per optimizer (3; a suite: its tasks')"
    )
    evaluate.add_argument(
        "--updates", type=_positive_int, help="per run (390; a suite: each task's budget)"
    )
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
