"""The flat form of a recipe (one key per setting, every strategy's options side by side:
the recorded settings of runs and shipped optimizers before the nested form), read into
the nested form."""

from typing import Any

from ._checks import RecipeError

_PATHS: dict[str, tuple[str, ...]] = {
    "optimizer": ("optimizer", "preset"),
    "step_size": ("optimizer", "step_size"),
    "agents": ("algorithm", "pipeline", "agents"),
    "reset_interval": ("algorithm", "pipeline", "reset_interval"),
    "pipeline": ("algorithm", "pipeline", "kind"),
    "estimator": ("algorithm", "estimator", "name"),
    "agents_per_chunk": ("algorithm", "estimator", "agents_per_chunk"),
    "coordinate_fraction": ("algorithm", "estimator", "coordinate_fraction"),
    "unroll": ("algorithm", "schedule", "unroll"),
    "min_unroll": ("algorithm", "schedule", "min_unroll"),
    "schedule": ("algorithm", "schedule", "name"),
    "meta_lr": ("algorithm", "meta_optimizer", "lr"),
    "meta_clip": ("algorithm", "meta_optimizer", "clip"),
    "task_normalize": ("algorithm", "task_normalize"),
    "meta_loss": ("meta_loss", "name"),
    "normalize_advantages": ("meta_loss", "normalize_advantages"),
    "meta_steps": ("run", "meta_steps"),
    "seed": ("run", "seed"),
    "out": ("run", "out"),
    "keep_checkpoints": ("run", "keep_checkpoints"),
    "low_memory": ("run", "low_memory"),
    "eval_seeds": ("evaluation", "seeds"),
    "eval_updates": ("evaluation", "updates"),
}
"""Where each flat key's value goes in the nested form."""

_PER_TASK = {
    "learner": "learner",
    "reward_scale": "reward_scale",
    "update_scale": "update_scale",
}
"""Flat keys holding a list with one value per env, and their task key."""

_EVERY_TASK = {"agent_clip": "grad_clip", "physics_gradient": "physics_gradient"}
"""Flat keys holding one value for every task, and their task key."""

FLAT_KEYS = frozenset({"env", *_PATHS, *_PER_TASK, *_EVERY_TASK})
"""Every key of the flat form."""

NESTED_ONLY = frozenset({"tasks", "algorithm", "run", "evaluation"})
"""Top-level keys only the nested form has."""


def is_flat(data: dict[str, Any]) -> bool:
    """Whether `data` is in the flat form. **Raises:** `ValueError` if it mixes both."""
    flat = sorted(k for k in data if k in FLAT_KEYS and k not in ("optimizer", "meta_loss"))
    flat += [k for k in ("optimizer", "meta_loss") if isinstance(data.get(k), str)]
    nested = sorted(k for k in data if k in NESTED_ONLY)
    nested += [k for k in ("optimizer", "meta_loss") if isinstance(data.get(k), dict)]
    if flat and nested:
        raise RecipeError(
            (), f"mixes the flat form's keys {sorted(flat)} with the nested form's {nested}"
        )
    return bool(flat)


def _tasks(data: dict[str, Any]) -> list[dict[str, Any]]:
    envs = data.get("env", ["Catch"])
    envs = [envs] if isinstance(envs, str) else envs
    if not (isinstance(envs, list | tuple) and envs):
        raise RecipeError(("env",), f"must be a non-empty list of env names, got {envs!r}")
    tasks = [{"env": env} for env in envs]
    for key, task_key in _PER_TASK.items():
        values = data.get(key)
        if values is None:
            continue
        if not (isinstance(values, list | tuple) and len(values) == len(envs)):
            raise RecipeError(
                (key,),
                f"must be null or a list of {len(envs)} values (one per env {list(envs)}), "
                f"got {values!r}",
            )
        for task, value in zip(tasks, values, strict=True):
            task[task_key] = value
    for key, task_key in _EVERY_TASK.items():
        if key in data:
            for task in tasks:
                task[task_key] = data[key]
    return tasks


def from_flat(data: dict[str, Any]) -> dict[str, Any]:
    """The nested form of the flat recipe `data` (missing keys: the defaults), for the
    nested reader to check. **Raises:** `ValueError` naming unknown keys."""
    unknown = sorted(set(data) - FLAT_KEYS)
    if unknown:
        raise RecipeError((), f"unknown keys {unknown}; valid keys: {sorted(FLAT_KEYS)}")
    nested: dict[str, Any] = {"tasks": _tasks(data), "algorithm": {"name": "truncated"}}
    for key, path in _PATHS.items():
        if key not in data:
            continue
        place = nested
        for part in path[:-1]:
            place = place.setdefault(part, {})
        place[path[-1]] = data[key]
    estimator = nested["algorithm"].get("estimator", {})
    if estimator.get("name", "tbptt") != "tbptt" and estimator.get("coordinate_fraction", 0) in (
        None,
        "auto",
    ):
        del estimator["coordinate_fraction"]  # no fraction to take: both meant none
    return nested
