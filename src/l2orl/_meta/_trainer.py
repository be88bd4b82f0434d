import os
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Int, PyTree

from .._checkpoint import describe
from .._custom_types import Metrics, PRNGKey
from .._lopt import AbstractLearnedOptimizer
from .._utils import check_positive, tree_select
from ._estimators import AbstractEstimator, TruncatedBPTT
from ._losses import AbstractMetaLoss, AgentLoss
from ._run import run
from ._schedules import AbstractTruncationSchedule, ConstantTruncation
from ._sharding import place, state_shardings, with_shapes
from ._task import AgentsState, MetaTask, reset_agents


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


class MetaTrainer(eqx.Module):
    """Meta-trains a learned optimizer on RL tasks.

    One meta-step, jitted once: for each task, reset the agents its pipeline says, estimate
    the task's meta-gradient over its agents' `K`-update unrolls (`K` from `schedule`),
    optionally normalise it to norm `task_normalize`, average over tasks, and apply it with
    `meta_optimizer` unless it is non-finite: then the meta-parameters, meta-optimizer state,
    agents and estimator state stay as they were (only `meta_step` and the key advance, so
    the step's resets are dropped too) and `skipped` counts it. With several devices that
    divide a task's `n_agents`, its agents are sharded over them (`jax.sharding`): all
    processes' devices under `jax.distributed`, with one meta-gradient and the same
    meta-parameters on every process.

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
        if self.estimator.needs_differentiable_loss and not self.meta_loss.differentiable:
            raise ValueError(
                f"{type(self.estimator).__name__} needs a differentiable meta-loss; "
                f"{type(self.meta_loss).__name__} is not: use an ES estimator (TruncatedES, PES, "
                "FullES) or AgentLoss"
            )
        check_positive("task_normalize", self.task_normalize, optional=True)
        self.estimator.check_optimizer(self.optimizer)

    def optimizer_at(self, state: MetaState) -> AbstractLearnedOptimizer:
        """The learned optimizer with `state`'s meta-parameters."""
        return eqx.combine(
            state.meta_params, eqx.filter(self.optimizer, eqx.is_inexact_array, inverse=True)
        )

    def init(self, key: PRNGKey) -> MetaState:
        """Fresh agents for every task, the meta-optimizer's state, meta-step 0, placed on
        the devices (`place`). A function of `key` alone: with several processes each calls it
        with the same key and holds its shards of the same state."""
        return self.place(self._fresh(key))

    def _fresh(self, key: PRNGKey) -> MetaState:
        """`init`'s state, whole on this process's default device."""
        meta_params = eqx.filter(self.optimizer, eqx.is_inexact_array)
        keys = jax.random.split(key, 3 * len(self.tasks) + 1)
        agents, estimator_states = [], []
        for i, task in enumerate(self.tasks):
            k_offsets, k_agents, k_est = keys[3 * i : 3 * i + 3]
            n = task.pipeline.n_agents
            learner, opt_state = task.fresh_agents(self.optimizer, jax.random.split(k_agents, n))
            task_agents = AgentsState(
                learner, opt_state, task.pipeline.offsets(k_offsets), jnp.zeros((n,), jnp.int32)
            )
            agents.append(task_agents)
            estimator_states.append(self.estimator.init(meta_params, task_agents, k_est))
        return MetaState(
            meta_params=meta_params,
            meta_opt_state=self.meta_optimizer.init(meta_params),
            agents=tuple(agents),
            estimator_states=tuple(estimator_states),
            meta_step=jnp.zeros((), jnp.int32),
            skipped=jnp.zeros((), jnp.int32),
            key=keys[-1],
        )

    def _n_agents(self) -> tuple[int, ...]:
        return tuple(task.pipeline.n_agents for task in self.tasks)

    def place(self, state: MetaState) -> MetaState:
        """`state` on the devices of all processes (`jax.devices()`): each task's agents and
        estimator state split over them where they divide its agents, the rest replicated
        (unchanged with one device). With several processes each passes the same whole
        `state` and keeps its own shards."""
        return place(state, self._n_agents())

    def state_shapes(self, key: PRNGKey) -> MetaState:
        """The shapes, dtypes and shardings of `init(key)`'s state, without creating it."""
        return with_shapes(jax.eval_shape(self._fresh, key), self._n_agents())

    def step(self, state: MetaState) -> tuple[MetaState, Metrics]:
        """One meta-step (pure: jit it, as `run` does)."""
        optimizer = self.optimizer_at(state)
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
                optimizer=optimizer,
                task=task,
                meta_loss=self.meta_loss,
                agents=task_agents,
                state=est,
                length=length,
                max_length=self.schedule.max_length,
                key=task_keys[2 * i + 1],
            )
            if self.task_normalize is not None:
                scale = self.task_normalize / (optax.tree.norm(grad) + 1e-12)
                grad = jax.tree.map(lambda g, s=scale: g * s, grad)
            grads.append(grad)
            agents.append(task_agents)
            estimator_states.append(est)
            env_steps += m.env_steps(task, self.meta_loss)
            metrics.update({f"{task.name}/{k}": v for k, v in m.log().items()})
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
            meta_loss=meta_loss,
            grad_norm=optax.tree.norm(grad),
            env_steps=env_steps,
            skipped=state.skipped + (~finite).astype(jnp.int32),
        )
        new_state = MetaState(
            meta_params,
            meta_opt_state,
            agents,
            estimator_states,
            state.meta_step + 1,
            state.skipped + (~finite).astype(jnp.int32),
            key,
        )
        shardings = state_shardings(new_state, self._n_agents())
        if shardings is not None:  # placed as the input: the same on every process
            new_state = jax.lax.with_sharding_constraint(new_state, shardings)
        return new_state, {k: jnp.asarray(v, jnp.float32) for k, v in metrics.items()}

    def config(self) -> dict:
        """The run's configuration as JSON: the optimizer's module tree and every setting."""
        return {
            "optimizer": describe(self.optimizer),
            "tasks": [t.config() for t in self.tasks],
            "estimator": describe(self.estimator),
            "meta_loss": describe(self.meta_loss),
            "schedule": describe(self.schedule),
            "task_normalize": self.task_normalize,
        }

    def run(
        self,
        n_meta_steps: int,
        out_dir: str | os.PathLike,
        key: PRNGKey | int = 0,
        checkpoint_every: int = 10,
        keep_checkpoints: int = 2,
        resume: bool = True,
        progress: bool = True,
        settings: dict[str, Any] | None = None,
        compiler_options: dict[str, Any] | None = None,
    ) -> MetaState:
        """Meta-train to `n_meta_steps`, logging and checkpointing into `out_dir`.

        Writes `config.json` (this run's configuration plus `settings`), `metrics.jsonl` (one
        line per meta-step), `checkpoints/step-NNNNNN.l2o` every `checkpoint_every` steps and
        at the end (all of the `MetaState`, atomically; the newest `keep_checkpoints` are kept,
        all with 0), and `optimizer.l2o` (the learned optimizer, with its training figures).
        With `resume`, a run restarts from the newest readable checkpoint in `out_dir` (an
        unreadable one is skipped with a warning) and ends with the meta-parameters an
        uninterrupted run gets; a larger `n_meta_steps` continues a finished run.
        The meta-step is compiled from the state's shapes before the agents are created, so the
        compiler's memory peak never adds to theirs; the first line after a (re)start also
        holds `compile_seconds`: tracing and compiling it. `compiler_options` go to XLA
        (`jax.jit`'s); on CPU, `{"xla_cpu_use_fusion_emitters": False}` compiles with less
        memory for a slower meta-step. Either may change results by float rounding.

        One run at a time holds `out_dir` (the `lock` file there: an `flock`, dropped by the
        system when its process ends, so a killed run never blocks the next). `progress` shows
        a bar on a terminal (meta-step, meta-loss, the mean return of the older half of the
        agents, env-steps/s, ETA). In the main thread, SIGINT (Ctrl-C) and SIGTERM end the run
        after the meta-step under way, which is checkpointed; a second signal stops at once.

        With several processes (`jax.distributed`) each calls `run` with the same arguments.
        Process 0 alone holds the lock and reads and writes `out_dir` (each checkpoint holds
        the state gathered from all processes; on a resume process 0 sends the state it
        reads to the others); a run process 0 refuses raises a `ValueError` on every
        process, and a signal to any process ends the run on all after the same meta-step.

        **Raises:** `ValueError` if `out_dir` holds a run of another configuration, naming each
        setting that differs with both values, or another process's running meta-training;
        [`l2orl.RunInterrupted`][] after a signal.
        """
        return run(
            self,
            n_meta_steps,
            Path(out_dir),
            key=key,
            checkpoint_every=checkpoint_every,
            keep_checkpoints=keep_checkpoints,
            resume=resume,
            progress=progress,
            settings=settings,
            compiler_options=compiler_options,
        )
