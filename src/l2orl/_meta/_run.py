"""The one run entry of every meta-algorithm: compile, create or resume, step, log,
checkpoint, package."""

import contextlib
import fcntl
import functools
import json
import math
import os
import signal
import socket
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import equinox as eqx
import jax
import numpy as np
from jax.experimental import multihost_utils

from .._checkpoint import CheckpointError, load_tree, save, save_tree, with_added_fields
from .._custom_types import PRNGKey
from .._progress import progress_bar
from .._utils import check_non_negative_int, check_positive_int, release_free_memory
from ._algorithm import AbstractMetaAlgorithm, AbstractMetaState
from ._sharding import broadcast, gather


class RunInterrupted(KeyboardInterrupt):
    """A meta-training run stopped by SIGINT or SIGTERM, after checkpointing its last
    meta-step: running it again resumes it, to the same result as an uninterrupted run.

    **Attributes:** `meta_step` (the last meta-step done and saved), `signal` (its number),
    `out_dir`, `exit_code` (`128 + signal`: 130 for SIGINT, 143 for SIGTERM).
    """

    def __init__(self, meta_step: int, signum: int, out_dir: Path):
        self.meta_step, self.signal, self.out_dir = meta_step, signum, out_dir
        self.exit_code = 128 + signum
        super().__init__(
            f"{signal.Signals(signum).name} at meta-step {meta_step}; "
            f"the run in {out_dir} resumes from there"
        )


def meta_train(
    algorithm: AbstractMetaAlgorithm,
    n_meta_steps: int,
    out_dir: str | os.PathLike | None = None,
    *,
    key: PRNGKey | int = 0,
    checkpoint_every: int = 10,
    keep_checkpoints: int = 2,
    resume: bool = True,
    progress: bool = True,
    settings: dict[str, Any] | None = None,
    compiler_options: dict[str, Any] | None = None,
) -> AbstractMetaState:
    """Run `algorithm` to `n_meta_steps` meta-steps in `out_dir` (`None`: in memory, nothing
    written, signals not caught); **returns** the final state (see `optimizer_at`).

    Writes `config.json` (the algorithm's configuration plus `settings`), `metrics.jsonl`
    (a line per meta-step; the first after a (re)start holds `compile_seconds`),
    `checkpoints/step-NNNNNN.l2o` every `checkpoint_every` steps and at the end (the newest
    `keep_checkpoints` kept; 0 keeps all) and `optimizer.l2o`. With `resume`, a run restarts
    from its newest readable checkpoint and ends as an uninterrupted one; a larger
    `n_meta_steps` continues a finished run. One run at a time holds `out_dir` (an `flock`
    on its `lock`). SIGINT and SIGTERM end the run after the meta-step under way, which is
    checkpointed. `compiler_options` go to XLA (`jax.jit`'s). With several processes
    (`jax.distributed`) each calls it with the same arguments and process 0 alone touches
    `out_dir` (see the meta-training guide).

    **Raises:** `ValueError` for bad arguments, an `out_dir` holding a run of another
    configuration (naming each difference) or in use; [`l2orl.RunInterrupted`][] after a
    signal.
    """
    check_positive_int("n_meta_steps", n_meta_steps)
    check_positive_int("checkpoint_every", checkpoint_every)
    check_non_negative_int("keep_checkpoints", keep_checkpoints)
    if not isinstance(algorithm, AbstractMetaAlgorithm):
        raise ValueError(
            f"meta_train runs an l2orl.AbstractMetaAlgorithm, got {type(algorithm).__name__}"
        )
    key = jax.random.key(key) if isinstance(key, int) else key
    out = None if out_dir is None else Path(out_dir)
    files = out and _Files(out, checkpoint_every, keep_checkpoints)
    with contextlib.ExitStack() as stack:
        signals = stack.enter_context(_deferred_signals()) if files else []
        claim = _claim(files, algorithm, settings, resume, n_meta_steps, stack)
        config, checkpoints, newest = claim  # `newest`: until one fails to load
        began = time.perf_counter()  # the first meta-step's time includes compiling it
        step, compiled = _compiled(algorithm, key, compiler_options, newest < n_meta_steps)
        state, start = algorithm.init(key), 0
        if newest:
            state, start = _resume(algorithm, state, checkpoints)
        release_free_memory()  # what creating the state left
        log = files.log(start, stack) if files else None
        bar = stack.enter_context(progress_bar(progress and _main()))
        loop = _Loop(step, files, log, bar, signals)
        state, saved, stop = loop.run(state, start, n_meta_steps, began, compiled)
        if files:
            files.finish(state, saved, n_meta_steps, algorithm, config)
        if stop:
            raise RunInterrupted(int(state.meta_step), stop, out)
    return state


def _main() -> bool:
    """Whether this is process 0, the one that touches the run's folder."""
    return jax.process_index() == 0


def _claim(files, algorithm, settings, resume: bool, n_meta_steps: int, stack):
    """Process 0 opens the run's folder (if any) and lists the checkpoints to resume from;
    every process learns its verdict and the newest checkpoint's meta-step. **Returns:**
    `(config, checkpoints, newest)` (`checkpoints` empty but on process 0; `newest` 0 when
    there is none)."""
    if files is None:
        return None, [], 0
    config, checkpoints, refusal = None, [], None
    if _main():
        try:
            config = files.open(algorithm, settings, resume, stack)
        except ValueError as error:
            refusal = error
        else:
            checkpoints = [p for p in files.checkpoints() if _step_of(p) <= n_meta_steps]
            checkpoints = checkpoints if resume else []
    newest = _step_of(checkpoints[-1]) if checkpoints else 0
    accepted, newest = map(int, broadcast(np.asarray([refusal is None, newest], np.int32)))
    if not accepted:
        raise refusal or ValueError(
            f"process 0 refused the run in {files.out}; its error says why"
        )
    return config, checkpoints, newest


@functools.lru_cache(maxsize=8)
def _jitted_step(static: AbstractMetaAlgorithm, options: tuple | None):
    """The jitted meta-step of the algorithms whose non-array parts are `static`: runs of
    equal algorithms in one process share its compilations."""
    return jax.jit(
        lambda dynamic, state: eqx.combine(dynamic, static).step(state),
        compiler_options=None if options is None else dict(options),
    )


def _compiled(algorithm: AbstractMetaAlgorithm, key: PRNGKey, options, compile_now: bool):
    """`algorithm.step` jitted (the algorithm's arrays as an argument, so that a new
    algorithm of the same shapes reuses the compiled step) and, when `compile_now`, compiled
    from the state's shapes alone, the compiler's freed memory returned. **Returns:**
    `(step, {"compile_seconds": ...} or {})`."""
    began = time.perf_counter()
    dynamic, static = eqx.partition(algorithm, eqx.is_array)
    options_key = None if options is None else tuple(sorted(options.items()))
    try:
        jitted = _jitted_step(static, options_key)
    except TypeError:  # a setting that is not hashable: this run's own jit
        jitted = _jitted_step.__wrapped__(static, options_key)
    if not compile_now:
        return functools.partial(jitted, dynamic), {}
    release_free_memory()
    jitted.lower(dynamic, algorithm.state_shapes(key)).compile()  # cached for the loop
    seconds = time.perf_counter() - began
    release_free_memory()
    return functools.partial(jitted, dynamic), {"compile_seconds": seconds}


class _Loop:
    """The meta-steps of a run: step, log, draw, checkpoint, until done or signalled."""

    def __init__(self, step, files, log, bar, signals: list[int]):
        self.step, self.files, self.log, self.bar, self.signals = step, files, log, bar, signals

    def run(self, state, start: int, n_meta_steps: int, began: float, compiled: dict):
        """**Returns:** `(state, last meta-step checkpointed, signal or 0)`."""
        task = self.bar.add_task("meta-step", total=n_meta_steps, completed=start, status="")
        saved, rate, stop = start, _Rate(), _first_signal(self.signals)
        while int(state.meta_step) < n_meta_steps and not stop:
            state, metrics = self.step(state)
            record = {
                "meta_step": int(state.meta_step),
                **{k: float(v) for k, v in metrics.items()},
                "seconds": time.perf_counter() - began,
                **compiled,
            }
            compiled = {}
            if self.log is not None:
                self.log.write(json.dumps(record) + "\n")
                self.log.flush()
            self.bar.update(task, completed=record["meta_step"], status=_status(record, rate))
            if self.files and self.files.checkpoint_due(record["meta_step"]):
                self.files.checkpoint(state)
                saved = record["meta_step"]
            began = time.perf_counter()
            stop = _first_signal(self.signals)
        return state, saved, stop


class _Files:
    """A run's folder: its configuration, lock, log and checkpoints."""

    def __init__(self, out: Path, checkpoint_every: int, keep: int):
        self.out, self.every, self.keep = out, checkpoint_every, keep

    def open(self, algorithm, settings, resume: bool, stack: contextlib.ExitStack) -> dict:
        """Make the folder, hold its lock until `stack` closes, and check its `config.json`
        against this run's configuration (written if new); **returns** the configuration."""
        return _open(self.out, algorithm, settings, resume, stack)

    def checkpoints(self) -> list[Path]:
        return _checkpoints(self.out)

    def log(self, start: int, stack: contextlib.ExitStack) -> IO[str] | None:
        """On process 0, `metrics.jsonl` open for appending from meta-step `start`."""
        return stack.enter_context(_log(self.out / "metrics.jsonl", start)) if _main() else None

    def checkpoint_due(self, meta_step: int) -> bool:
        return meta_step % self.every == 0

    def checkpoint(self, state: AbstractMetaState) -> None:
        _save_checkpoint(self.out, state, self.keep)

    def finish(self, state, saved: int, n_meta_steps: int, algorithm, config) -> None:
        """Checkpoint the last meta-step if it is not yet, and write `optimizer.l2o` once
        the run reached `n_meta_steps`."""
        if int(state.meta_step) > saved:  # the last meta-step, or the one a signal ended on
            self.checkpoint(state)
        if int(state.meta_step) == n_meta_steps and _main():
            figures = {"meta_steps": int(state.meta_step), "skipped": int(state.skipped)}
            save(
                self.out / "optimizer.l2o",
                algorithm.optimizer_at(state),
                metadata={"config": config, "training": figures},
            )


def _open(
    out: Path,
    algorithm: AbstractMetaAlgorithm,
    settings: dict[str, Any] | None,
    resume: bool,
    stack: contextlib.ExitStack,
) -> dict:
    """Make `out`, hold its lock until `stack` closes, and check its `config.json` against
    this run's configuration (written if new); **returns** the configuration."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"out_dir {out} is a file, not a folder")
    (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    stack.enter_context(_exclusive(out))
    config = json.loads(json.dumps({**algorithm.config(), "settings": settings or {}}))
    config_path = out / "config.json"
    if config_path.exists() and resume:
        recorded = with_added_fields(json.loads(config_path.read_text()))
        if recorded != config:
            changes = "; ".join(_differences(recorded, config))
            raise ValueError(
                f"{out} holds a run with another configuration ({changes}); use a new out_dir"
            )
    else:
        config_path.write_text(json.dumps(config, indent=1))
    return config


@contextlib.contextmanager
def _log(path: Path, start: int) -> Iterator[IO[str]]:
    """`metrics.jsonl` open for appending, without the lines past meta-step `start` that an
    interrupted run left."""
    lines = path.read_text().splitlines() if path.exists() else []
    kept = [line for line in lines if json.loads(line)["meta_step"] <= start]
    path.write_text("".join(line + "\n" for line in kept))
    with path.open("a") as file:
        yield file


def _first_signal(signals: list[int]) -> int:
    """The signal that ends the run after this meta-step (0: none): with several processes
    the largest that any of them received, so that all stop after the same meta-step."""
    mine = signals[0] if signals else 0
    if jax.process_count() == 1:
        return mine
    return int(np.max(multihost_utils.process_allgather(np.int32(mine))))


def _save_checkpoint(out: Path, state: eqx.Module, keep: int) -> None:
    """`state` saved atomically as the newest checkpoint; only the newest `keep` kept (0:
    all). Every process calls it (the state is gathered from all); process 0 writes."""
    state = gather(state)
    if jax.process_index() != 0:
        return
    save_tree(out / "checkpoints" / f"step-{int(state.meta_step):06d}.l2o", state)
    if keep:
        for old in _checkpoints(out)[:-keep]:
            old.unlink()


@contextlib.contextmanager
def _exclusive(out: Path) -> Iterator[None]:
    """Hold `out/lock`: a second run in `out` is refused. It is an `flock`, which the kernel
    drops when its holder ends, however it ends: a killed run leaves no lock behind."""
    path = out / "lock"
    path.touch()
    with path.open("r+") as file:
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = file.read().strip() or "another process"
            raise ValueError(
                f"{out} is in use by a running meta-training ({holder}); wait for it to end "
                "or use another out_dir"
            ) from None
        file.truncate(0)
        file.write(f"pid {os.getpid()} on {socket.gethostname()}")
        file.flush()
        yield


@contextlib.contextmanager
def _deferred_signals() -> Iterator[list[int]]:
    """SIGINT and SIGTERM appended to the list yielded instead of stopping the process; a
    second one acts as it did before (Ctrl-C twice stops at once). Outside the main thread,
    where Python cannot handle signals, they stay as they are."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

    def note(signum, frame):
        received.append(signum)
        for s, handler in previous.items():
            signal.signal(s, handler)

    for s in previous:
        signal.signal(s, note)
    try:
        yield received
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _step_of(path: Path) -> int:
    return int(path.stem.removeprefix("step-"))


def _checkpoints(out: Path) -> list[Path]:
    """The run's checkpoints, oldest first."""
    return sorted((out / "checkpoints").glob("step-*.l2o"), key=_step_of)


def _resume(algorithm: AbstractMetaAlgorithm, fresh: AbstractMetaState, checkpoints: list[Path]):
    """The state of the newest readable checkpoint (falling back past unreadable ones, with a
    warning) and its meta-step. With several processes, every process calls it: process 0
    reads (`checkpoints` is empty on the others) and its state goes to all.

    **Raises:** `CheckpointError` if none is readable (say, written by a version whose state
    had another structure): starting over would overwrite the run's log."""
    like = gather(fresh)
    loaded, start, errors = like, 0, []
    for path in reversed(checkpoints):
        try:
            loaded, start = load_tree(path, like=like), _step_of(path)
            break
        except CheckpointError as error:
            errors.append(error)
            warnings.warn(f"skipping an unreadable checkpoint: {error}", stacklevel=3)
    start = int(broadcast(np.int32(start)))
    if not start:
        why = f" ({errors[-1]})" if errors else ""
        raise CheckpointError(
            f"no checkpoint of the run is readable{why}; the run was not resumed and its folder "
            "is unchanged: continue it with the l2orl version that wrote it, or start it in a "
            "new out_dir"
        )
    return algorithm.place(broadcast(loaded)), start


def _differences(recorded: Any, new: Any, path: str = "") -> list[str]:
    """Where two JSON configurations differ: `path: recorded → new` for each leaf."""
    if isinstance(recorded, dict) and isinstance(new, dict):
        return [
            line
            for name in sorted(set(recorded) | set(new), key=str)
            for line in _differences(
                recorded.get(name, "(missing)"), new.get(name, "(missing)"), f"{path}.{name}"
            )
        ]
    if isinstance(recorded, list) and isinstance(new, list) and len(recorded) == len(new):
        return [
            line
            for i, (a, b) in enumerate(zip(recorded, new, strict=True))
            for line in _differences(a, b, f"{path}[{i}]")
        ]
    if recorded == new:
        return []
    return [f"{path.lstrip('.')}: {json.dumps(recorded)} in the folder, {json.dumps(new)} now"]


class _Rate:
    """Environment steps per second since the first meta-step of this process (which may
    still hold one-time costs) ended."""

    def __init__(self):
        self.begin, self.steps = None, 0.0

    def __call__(self, env_steps: float) -> float:
        now = time.perf_counter()
        if self.begin is None:
            self.begin = now
        else:
            self.steps += env_steps
        return self.steps / (now - self.begin) if now > self.begin else math.nan


def _status(record: dict[str, float | int], rate: _Rate) -> str:
    """The progress line's figures: meta-loss, the older half of the agents' mean return
    (over tasks) where the algorithm reports it, env-steps/s and skipped meta-steps."""
    late = [v for k, v in record.items() if k.endswith("/late_return")]
    speed = rate(record["env_steps"])
    parts = [f"meta-loss {record['meta_loss']:.4g}"]
    if late:
        parts.append(f"return (older half) {sum(late) / len(late):.3f}")
    parts.append(f"{'–' if math.isnan(speed) else f'{speed:,.0f}'} env-steps/s")
    parts.append(f"skipped {int(record['skipped'])}")
    return " · ".join(parts)
