import ctypes
import ctypes.util
import dataclasses
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Int, PyTree

from .._checkpoint import describe, load_tree, save, save_tree
from .._custom_types import Metrics, PRNGKey
from .._lopt import AbstractLearnedOptimizer
from ._estimators import AbstractEstimator, TruncatedBPTT
from ._losses import AbstractMetaLoss, AgentLoss
from ._schedules import AbstractTruncationSchedule, ConstantTruncation
from ._task import AgentsState, MetaTask, agent_devices, fresh_agents, reset_agents, tree_select


def _release_free_memory() -> None:
    """Return the C heap's free pages to the OS (glibc's `malloc_trim`; a no-op elsewhere).

    XLA's compiler frees hundreds of MB when it finishes, which glibc otherwise keeps mapped,
    so a run's peak memory would be the compiler's leftovers plus the meta-step's buffers.
    Called before compiling the meta-step too (the leftovers of compiling `init`), and after."""
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name else None
    if hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)


class MetaState(eqx.Module):
    """Everything meta-training carries between meta-steps; a checkpoint saves all of it.

    **Attributes:** `meta_params` (the optimizer's arrays), `meta_opt_state`, `agents` and
    `estimator_states` (one per task), `meta_step`, `skipped` (meta-steps whose non-finite
    meta-gradient was not applied) and `key`.
    """

    meta_params: PyTree
    meta_opt_state: PyTree
    agents: tuple[AgentsState, ...]
    estimator_states: tuple
    meta_step: Int[Array, ""]
    skipped: Int[Array, ""]
    key: PRNGKey


def _sharding(n_agents: int | None):
    """Where meta-training state lives when there are several local devices: a leading agent
    axis of `n_agents` split over them when they divide it, anything else (`n_agents=None`)
    replicated on each. `None` with one device."""
    devices = jax.local_devices()
    if len(devices) == 1:
        return None
    split = n_agents is not None and agent_devices(n_agents) > 1
    spec = jax.sharding.PartitionSpec("agents") if split else jax.sharding.PartitionSpec()
    return jax.sharding.NamedSharding(jax.sharding.Mesh(devices, ("agents",)), spec)


class MetaTrainer(eqx.Module):
    """Meta-trains a learned optimizer on RL tasks.

    One meta-step, jitted once: for each task, reset the agents its pipeline says, estimate
    the task's meta-gradient over its agents' `K`-update unrolls (`K` from `schedule`),
    optionally normalise it to norm `task_normalize`, average over tasks, and apply it with
    `meta_optimizer` unless it is non-finite: then the meta-parameters, meta-optimizer state,
    agents and estimator state stay as they were (only `meta_step` and the key advance, so
    the step's resets are dropped too) and `skipped` counts it. With several local devices
    that divide a task's `n_agents`, its agents are sharded over them (`jax.sharding`).

    **Arguments:** `optimizer` (the initial learned optimizer), `tasks`, `estimator`
    (`TruncatedBPTT()`), `meta_loss` (`AgentLoss()`), `schedule` (`ConstantTruncation(4)`),
    `meta_optimizer` (`optax.adam(1e-3)`; chain `optax.clip` or `optax.clip_by_global_norm` in
    front to clip meta-gradients), `task_normalize` (None).
    """

    optimizer: AbstractLearnedOptimizer
    tasks: tuple[MetaTask, ...]
    estimator: AbstractEstimator = eqx.field(default_factory=TruncatedBPTT)
    meta_loss: AbstractMetaLoss = eqx.field(default_factory=AgentLoss)
    schedule: AbstractTruncationSchedule = eqx.field(default_factory=lambda: ConstantTruncation(4))
    meta_optimizer: optax.GradientTransformation = eqx.field(static=True, default=optax.adam(1e-3))
    task_normalize: float | None = eqx.field(static=True, default=None)

    def __check_init__(self):
        if not self.tasks:
            raise ValueError("MetaTrainer needs at least one task")
        names = [t.name for t in self.tasks]
        if len(set(names)) != len(names):
            raise ValueError(f"task names must be unique, got {names}")
        if isinstance(self.estimator, TruncatedBPTT) and not self.meta_loss.differentiable:
            raise ValueError(
                f"TruncatedBPTT needs a differentiable meta-loss; {type(self.meta_loss).__name__} "
                "is not: use an ES estimator (TruncatedES, PES, FullES) or AgentLoss"
            )
        if self.task_normalize is not None and not self.task_normalize > 0:
            raise ValueError(
                f"task_normalize must be positive or None, got {self.task_normalize!r}"
            )

    def _split(self, meta_params: PyTree) -> tuple[PyTree, PyTree]:
        return meta_params, eqx.filter(self.optimizer, eqx.is_inexact_array, inverse=True)

    def optimizer_at(self, state: MetaState) -> AbstractLearnedOptimizer:
        """The learned optimizer with `state`'s meta-parameters."""
        return eqx.combine(
            state.meta_params, eqx.filter(self.optimizer, eqx.is_inexact_array, inverse=True)
        )

    def init(self, key: PRNGKey) -> MetaState:
        """Fresh agents for every task, the meta-optimizer's state, meta-step 0."""
        meta_params = eqx.filter(self.optimizer, eqx.is_inexact_array)
        keys = jax.random.split(key, 3 * len(self.tasks) + 1)
        agents, estimator_states = [], []
        for i, task in enumerate(self.tasks):
            k_offsets, k_agents, k_est = keys[3 * i : 3 * i + 3]
            n = task.pipeline.n_agents
            learner, opt_state = fresh_agents(task, self.optimizer, jax.random.split(k_agents, n))
            task_agents = AgentsState(
                learner, opt_state, task.pipeline.offsets(k_offsets), jnp.zeros((n,), jnp.int32)
            )
            agents.append(task_agents)
            estimator_states.append(self.estimator.init(meta_params, task_agents, k_est))
        state = MetaState(
            meta_params=meta_params,
            meta_opt_state=self.meta_optimizer.init(meta_params),
            agents=tuple(agents),
            estimator_states=tuple(estimator_states),
            meta_step=jnp.zeros((), jnp.int32),
            skipped=jnp.zeros((), jnp.int32),
            key=keys[-1],
        )
        return self._place(state)

    def _place(self, state: MetaState) -> MetaState:
        """`state` on the local devices as `_shardings` says (unchanged with one device)."""
        shardings = self._shardings(state)
        return state if shardings is None else jax.device_put(state, shardings)

    def _shardings(self, state: MetaState) -> MetaState | None:
        """Every leaf's sharding with several local devices (`None` with one): each task's
        agents and estimator state split over the devices, the rest replicated."""
        replicated = _sharding(None)
        if replicated is None:
            return None
        agents, estimator_states = [], []
        for task, task_agents, est in zip(
            self.tasks, state.agents, state.estimator_states, strict=True
        ):
            sharding = _sharding(task.pipeline.n_agents)
            agents.append(jax.tree.map(lambda _, s=sharding: s, task_agents))
            estimator_states.append(jax.tree.map(lambda _, s=sharding: s, est))
        return dataclasses.replace(
            jax.tree.map(lambda _: replicated, state),
            agents=tuple(agents),
            estimator_states=tuple(estimator_states),
        )

    def step(self, state: MetaState) -> tuple[MetaState, Metrics]:
        """One meta-step (pure: jit it, as `run` does)."""
        meta_params, static = self._split(state.meta_params)
        optimizer = eqx.combine(meta_params, static)
        key, k_length, *task_keys = jax.random.split(state.key, 2 + 2 * len(self.tasks))
        length = self.schedule.sample(k_length, state.meta_step)
        grads, agents, estimator_states, metrics = [], [], [], {"K": length}
        if self.schedule.min_length == self.schedule.max_length:
            length = self.schedule.max_length  # static: the unrolls need no masking
        env_steps = jnp.zeros((), jnp.float32)
        for i, task in enumerate(self.tasks):
            task_agents, est = state.agents[i], state.estimator_states[i]
            mask = task.pipeline.reset_mask(task_agents.offsets, state.meta_step)
            task_agents = reset_agents(task, optimizer, task_agents, mask, task_keys[2 * i])
            est = self.estimator.on_reset(est, task_agents, mask)
            grad, task_agents, est, m = self.estimator.estimate(
                meta_params, static, task, self.meta_loss, task_agents, est, length,
                self.schedule.max_length, task_keys[2 * i + 1],
            )  # fmt: skip
            if self.task_normalize is not None:
                scale = self.task_normalize / (optax.tree.norm(grad) + 1e-12)
                grad = jax.tree.map(lambda g, s=scale: g * s, grad)
            sharding = _sharding(task.pipeline.n_agents)
            if sharding is not None:
                task_agents, est = jax.lax.with_sharding_constraint((task_agents, est), sharding)
            grads.append(grad)
            agents.append(task_agents)
            estimator_states.append(est)
            rollouts = m["inner_updates"] + (
                m["unrolls"] if isinstance(self.meta_loss, AgentLoss) else 0
            )
            env_steps += rollouts.astype(jnp.float32) * task.env_steps_per_update()
            metrics.update(
                {
                    f"{task.name}/{k}": v
                    for k, v in m.items()
                    if k not in ("inner_updates", "unrolls")
                }
            )
            metrics[f"{task.name}/resets"] = jnp.sum(mask)
        grad = jax.tree.map(lambda *g: sum(g) / len(g), *grads)
        meta_loss = sum(metrics[f"{t.name}/meta_loss"] for t in self.tasks) / len(self.tasks)
        finite = jnp.isfinite(meta_loss) & jnp.all(
            jnp.asarray([jnp.all(jnp.isfinite(g)) for g in jax.tree.leaves(grad)])
        )
        safe_grad = jax.tree.map(lambda g: jnp.where(finite, g, 0.0), grad)
        updates, meta_opt_state = self.meta_optimizer.update(
            safe_grad, state.meta_opt_state, state.meta_params
        )
        new = (
            optax.apply_updates(state.meta_params, updates),
            meta_opt_state,
            tuple(agents),
            tuple(estimator_states),
        )
        old = (state.meta_params, state.meta_opt_state, state.agents, state.estimator_states)
        meta_params, meta_opt_state, agents, estimator_states = tree_select(finite, new, old)
        metrics.update(
            meta_loss=meta_loss, grad_norm=optax.tree.norm(grad), env_steps=env_steps,
            skipped=state.skipped + (~finite).astype(jnp.int32),
        )  # fmt: skip
        new_state = MetaState(
            meta_params, meta_opt_state, agents, estimator_states,
            state.meta_step + 1, state.skipped + (~finite).astype(jnp.int32), key,
        )  # fmt: skip
        return new_state, {k: jnp.asarray(v, jnp.float32) for k, v in metrics.items()}

    def _state_shapes(self, key: PRNGKey) -> MetaState:
        """The shapes, dtypes and shardings of `init(key)`'s state, without creating it."""
        shapes = jax.eval_shape(self.init, key)
        shardings = self._shardings(shapes)
        if shardings is None:
            return shapes
        return jax.tree.map(
            lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s, weak_type=x.weak_type),
            shapes, shardings,
        )  # fmt: skip

    def config(self) -> dict:
        """The run's configuration as JSON: the optimizer's module tree and every setting."""
        return {
            "optimizer": describe(self.optimizer),
            "tasks": [
                {
                    "name": t.name, "env": getattr(t.env, "name", type(t.env).__name__),
                    "learner": describe(t.learner), "pipeline": describe(t.pipeline),
                    "grad_clip": t.grad_clip, "update_scale": t.update_scale,
                }
                for t in self.tasks
            ],
            "estimator": describe(self.estimator), "meta_loss": describe(self.meta_loss),
            "schedule": describe(self.schedule), "task_normalize": self.task_normalize,
        }  # fmt: skip

    def run(
        self,
        n_meta_steps: int,
        out_dir: str | os.PathLike,
        key: PRNGKey | int = 0,
        checkpoint_every: int = 10,
        resume: bool = True,
        progress: bool = True,
        settings: dict[str, Any] | None = None,
        compiler_options: dict[str, Any] | None = None,
    ) -> MetaState:
        """Meta-train to `n_meta_steps`, logging and checkpointing into `out_dir`.

        Writes `config.json` (this run's configuration plus `settings`), `metrics.jsonl` (one
        line per meta-step), `checkpoints/step-NNNNNN.l2o` every `checkpoint_every` steps and
        at the end (all of the `MetaState`, atomically), and `optimizer.l2o` (the learned
        optimizer, with its training figures). With `resume`, a run restarts from the latest
        checkpoint in `out_dir` and ends with the meta-parameters an uninterrupted run gets.
        The meta-step is compiled from the state's shapes before the agents are created, so the
        compiler's memory peak never adds to theirs; the first line after a (re)start also
        holds `compile_seconds`: tracing and compiling it. `compiler_options` go to XLA
        (`jax.jit`'s): on CPU, `{"xla_backend_optimization_level": 1}` compiles 1–2 s faster at
        the same speed, and `{"xla_cpu_use_fusion_emitters": False}` with about a quarter of
        the compiler's memory, for a ≈ 9 % slower meta-step (`benchmarks/RESULTS.md`); either
        may change results by float rounding.

        **Raises:** `ValueError` if `out_dir` holds a run of another configuration.
        """
        if not (isinstance(n_meta_steps, int) and n_meta_steps > 0):
            raise ValueError(f"n_meta_steps must be a positive int, got {n_meta_steps!r}")
        if not (isinstance(checkpoint_every, int) and checkpoint_every > 0):
            raise ValueError(f"checkpoint_every must be a positive int, got {checkpoint_every!r}")
        out = Path(out_dir)
        (out / "checkpoints").mkdir(parents=True, exist_ok=True)
        config = {**self.config(), "settings": settings or {}}
        config_path = out / "config.json"
        if config_path.exists() and resume:
            if json.loads(config_path.read_text()) != json.loads(json.dumps(config)):
                raise ValueError(
                    f"{out} holds a run with another configuration; use a new out_dir"
                )
        else:
            config_path.write_text(json.dumps(config, indent=1))
        key = jax.random.key(key) if isinstance(key, int) else key
        checkpoints = [
            path for path in sorted((out / "checkpoints").glob("step-*.l2o"))
            if int(path.stem.removeprefix("step-")) <= n_meta_steps
        ]  # fmt: skip
        latest = checkpoints[-1] if resume and checkpoints else None
        start = int(latest.stem.removeprefix("step-")) if latest else 0
        began = time.perf_counter()  # the first meta-step's time includes compiling it
        dynamic, static = eqx.partition(self, eqx.is_array)
        step = jax.jit(
            lambda dynamic, state: eqx.combine(dynamic, static).step(state),
            compiler_options=compiler_options,
        )
        compiled = {}
        if start < n_meta_steps:
            # Compiled from shapes alone, before the agents exist, and the compiler's freed
            # memory returned: the compiler's peak does not add to the agents' memory.
            _release_free_memory()
            step.lower(dynamic, self._state_shapes(key)).compile()  # cached for the loop
            compiled["compile_seconds"] = time.perf_counter() - began
            _release_free_memory()
        state = self.init(key)
        if latest:
            state = self._place(load_tree(latest, like=state))
        _release_free_memory()  # what creating the agents left
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
                bar.update(record, self.tasks[0].name)
                if (
                    record["meta_step"] % checkpoint_every == 0
                    or record["meta_step"] == n_meta_steps
                ):
                    save_tree(out / "checkpoints" / f"step-{record['meta_step']:06d}.l2o", state)
                began = time.perf_counter()
        bar.close()
        figures = {"meta_steps": int(state.meta_step), "skipped": int(state.skipped)}
        save(
            out / "optimizer.l2o",
            self.optimizer_at(state),
            metadata={"config": config, "training": figures},
        )
        return state


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
