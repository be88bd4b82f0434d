"""Meta-trained optimizers shipped with l2orl, loaded by name."""

import dataclasses
import importlib.resources
import os
from pathlib import Path

from ._checkpoint import load, read_manifest
from ._lopt import PRESETS, AbstractLearnedOptimizer

PRETRAINED: dict[str, str] = {
    "optim4rl-brax": "Optim4RL with scale-free inputs, meta-trained on brax's "
    "inverted_double_pendulum with PPO agents (examples/paper/pretrain.py optim4rl-brax)",
    "optim4rl-brax-adam": "Optim4RL with scale-free inputs stepping along Adam's direction "
    "(Adam untrained), meta-trained on brax's inverted_double_pendulum with PPO agents "
    "(examples/paper/pretrain.py optim4rl-brax-adam)",
}
"""The shipped optimizers' names and what each is. An optimizer ships only when it beats its
own untrained initialisation on the validation protocol (`examples/paper/validate.py`; its
manifest holds the figures)."""

_DIRECTORY = Path(str(importlib.resources.files("l2orl") / "pretrained"))
"""Where the shipped optimizers' `<name>.l2o` files are."""


def _path(name: str) -> Path:
    if name not in PRETRAINED:
        raise ValueError(f"unknown pretrained optimizer {name!r}; available: {sorted(PRETRAINED)}")
    return _DIRECTORY / f"{name}.l2o"


def pretrained(name: str, *, step_size: float | None = None) -> AbstractLearnedOptimizer:
    """The shipped meta-trained optimizer `name` (one of `PRETRAINED`).

    **Arguments:** `name`; `step_size`, a new `α` for the optimizer's update (default: the `α`
    it was meta-trained with, in its manifest).

    **Raises:** `ValueError` for an unknown name or a non-positive `step_size`.
    """
    optimizer = load(_path(name))
    if step_size is not None:
        optimizer = dataclasses.replace(optimizer, step_size=step_size)
    return optimizer


def pretrained_manifest(name: str) -> dict:
    """How the shipped optimizer `name` was made: `{"name", "version"` (of l2orl that
    trained it), `"command", "config"` (the meta-training run's full configuration),
    `"training"` (figures from its metrics log)`}`."""
    manifest = read_manifest(_path(name))
    return {"name": name, "version": manifest["l2orl_version"], **manifest["metadata"]}


def resolve_optimizer(
    spec: str | os.PathLike, step_size: float | None = None
) -> AbstractLearnedOptimizer:
    """The learned optimizer `spec` names: a preset of [`l2orl.PRESETS`][] (untrained), a
    shipped optimizer of `PRETRAINED`, or the path of an `.l2o` checkpoint; with `step_size`,
    its `α` replaced.

    **Raises:** `ValueError` if `spec` is none of these.
    """
    if spec in PRESETS:
        optimizer = PRESETS[spec]()
    elif spec in PRETRAINED:
        optimizer = pretrained(spec)
    elif Path(spec).is_file():
        optimizer = load(spec)
    elif Path(spec).suffix == ".l2o":
        raise ValueError(f"no checkpoint file at {spec}")
    else:
        raise ValueError(
            f"optimizer {str(spec)!r} is neither a preset {sorted(PRESETS)}, a pretrained "
            f"optimizer {sorted(PRETRAINED)} nor a checkpoint file"
        )
    if step_size is not None:
        optimizer = dataclasses.replace(optimizer, step_size=step_size)
    return optimizer
