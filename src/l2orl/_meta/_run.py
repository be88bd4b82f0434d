"""The meta-training run loop: compile, create or resume, step, log, checkpoint, package."""

import json
import math
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import equinox as eqx
import jax

from .._checkpoint import CheckpointError, load_tree, save, save_tree
from .._custom_types import PRNGKey
from .._utils import check_non_negative_int, check_positive_int, release_free_memory


def run(
    trainer: eqx.Module,
    n_meta_steps: int,
    out: Path,
    *,
    key: PRNGKey | int,
    checkpoint_every: int,
    keep_checkpoints: int,
    resume: bool,
    progress: bool,
    settings: dict[str, Any] | None,
    compiler_options: dict[str, Any] | None,
) -> eqx.Module:
    """[`l2orl.MetaTrainer.run`][]: `trainer` meta-trained to `n_meta_steps` in `out`;
    **returns** the final `MetaState`."""
    check_positive_int("n_meta_steps", n_meta_steps)
    check_positive_int("checkpoint_every", checkpoint_every)
    check_non_negative_int("keep_checkpoints", keep_checkpoints)
    if out.exists() and not out.is_dir():
        raise ValueError(f"out_dir {out} is a file, not a folder")
    (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    config = json.loads(json.dumps({**trainer.config(), "settings": settings or {}}))
    config_path = out / "config.json"
    if config_path.exists() and resume:
        recorded = json.loads(config_path.read_text())
        if recorded != config:
            changes = "; ".join(_differences(recorded, config))
            raise ValueError(
                f"{out} holds a run with another configuration ({changes}); use a new out_dir"
            )
    else:
        config_path.write_text(json.dumps(config, indent=1))
    key = jax.random.key(key) if isinstance(key, int) else key
    checkpoints = [path for path in _checkpoints(out) if _step_of(path) <= n_meta_steps and resume]
    start = _step_of(checkpoints[-1]) if checkpoints else 0  # until one fails to load
    began = time.perf_counter()  # the first meta-step's time includes compiling it
    dynamic, static = eqx.partition(trainer, eqx.is_array)
    step = jax.jit(
        lambda dynamic, state: eqx.combine(dynamic, static).step(state),
        compiler_options=compiler_options,
    )
    compiled = {}
    if start < n_meta_steps:
        # Compiled from shapes alone, before the agents exist, and the compiler's freed
        # memory returned: the compiler's peak does not add to the agents' memory.
        release_free_memory()
        step.lower(dynamic, trainer.state_shapes(key)).compile()  # cached for the loop
        compiled["compile_seconds"] = time.perf_counter() - began
        release_free_memory()
    state = trainer.init(key)
    state, start = _resume(trainer, state, checkpoints)
    release_free_memory()  # what creating the agents left
    log_path = out / "metrics.jsonl"
    lines = log_path.read_text().splitlines() if log_path.exists() else []
    log_path.write_text(
        "".join(line + "\n" for line in lines if json.loads(line)["meta_step"] <= start)
    )
    bar = _Progress(n_meta_steps, start, progress)
    with log_path.open("a") as log:
        while int(state.meta_step) < n_meta_steps:
            state, metrics = step(dynamic, state)
            record = {
                "meta_step": int(state.meta_step),
                **{k: float(v) for k, v in metrics.items()},
                "seconds": time.perf_counter() - began,
                **compiled,
            }
            compiled = {}
            log.write(json.dumps(record) + "\n")
            log.flush()
            bar.update(record, trainer.tasks[0].name)
            if record["meta_step"] % checkpoint_every == 0 or record["meta_step"] == n_meta_steps:
                save_tree(out / "checkpoints" / f"step-{record['meta_step']:06d}.l2o", state)
                if keep_checkpoints:
                    for old in _checkpoints(out)[:-keep_checkpoints]:
                        old.unlink()
            began = time.perf_counter()
    bar.close()
    figures = {"meta_steps": int(state.meta_step), "skipped": int(state.skipped)}
    save(
        out / "optimizer.l2o",
        trainer.optimizer_at(state),
        metadata={"config": config, "training": figures},
    )
    return state


def _step_of(path: Path) -> int:
    return int(path.stem.removeprefix("step-"))


def _checkpoints(out: Path) -> list[Path]:
    """The run's checkpoints, oldest first."""
    return sorted((out / "checkpoints").glob("step-*.l2o"), key=_step_of)


def _resume(trainer: eqx.Module, fresh: eqx.Module, checkpoints: list[Path]):
    """The state of the newest readable checkpoint (falling back past unreadable ones, with a
    warning) and its meta-step; `(fresh, 0)` if there is none."""
    for path in reversed(checkpoints):
        try:
            return trainer.place(load_tree(path, like=fresh)), _step_of(path)
        except CheckpointError as error:
            warnings.warn(f"skipping an unreadable checkpoint: {error}", stacklevel=3)
    return fresh, 0


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


class _Progress:
    """One status line: meta-step, meta-loss, agent return, env-steps/s, ETA."""

    def __init__(self, total: int, start: int, enabled: bool):
        self.total, self.done, self.enabled = total, start, enabled
        self.begin, self.steps = None, 0.0
        self.tty = sys.stderr.isatty()

    def update(self, record: dict, first_task: str) -> None:
        now = time.perf_counter()
        if self.begin is None:  # the first meta-step includes compilation: time from its end
            self.begin = now
        else:
            self.steps += record["env_steps"]
        self.done = record["meta_step"]
        if not self.enabled:
            return
        elapsed = now - self.begin
        rate = self.steps / elapsed if elapsed > 0 else math.nan
        per_step = elapsed / max(self.done - 1, 1)
        eta = per_step * (self.total - self.done)
        line = (
            f"meta-step {self.done}/{self.total} | meta-loss {record['meta_loss']:.4g} | "
            f"return {record.get(f'{first_task}/agent_return', math.nan):.3f} | "
            f"{rate:,.0f} env-steps/s | ETA {eta:.0f}s | skipped {int(record['skipped'])}"
        )
        if self.tty:
            print("\r" + line, end="", file=sys.stderr, flush=True)
        elif self.done == self.total or self.done % 10 == 0:
            print(line, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.enabled and self.tty:
            print(file=sys.stderr)
