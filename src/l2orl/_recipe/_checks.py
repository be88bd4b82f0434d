"""The recipe's value checks: one rule per kind of value, each error naming the setting's
JSON path (`algorithm.estimator.coordinate_fraction: must be ...`)."""

import contextlib
import math
from collections.abc import Iterator
from typing import Any

Path = tuple[str | int, ...]
"""A setting's place in the recipe: field names and list indices."""


def render(path: Path) -> str:
    """`("tasks", 1, "env")` as `tasks[1].env`."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


class RecipeError(ValueError):
    """A bad recipe setting: `path` (where it is) and `text` (what is wrong with it)."""

    def __init__(self, path: Path, text: str):
        self.path, self.text = tuple(path), text
        super().__init__(f"{render(self.path)}: {text}" if self.path else text)


@contextlib.contextmanager
def at(*prefix: str | int) -> Iterator[None]:
    """Re-raise a `ValueError` from the block as a `RecipeError` under `prefix`."""
    try:
        yield
    except RecipeError as error:
        raise RecipeError(prefix + error.path, error.text) from None
    except ValueError as error:
        raise RecipeError(prefix, str(error)) from None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def positive_int(name: str, value: Any, *, optional: bool = False) -> None:
    """An int > 0 (None too if `optional`)."""
    if (optional and value is None) or (_is_int(value) and value > 0):
        return
    raise RecipeError((name,), f"must be a positive int{' or null' * optional}, got {value!r}")


def non_negative_int(name: str, value: Any) -> None:
    """An int ≥ 0."""
    if not (_is_int(value) and value >= 0):
        raise RecipeError((name,), f"must be an int ≥ 0, got {value!r}")


def integer(name: str, value: Any) -> None:
    """Any int (not a bool)."""
    if not _is_int(value):
        raise RecipeError((name,), f"must be an int, got {value!r}")


def positive(name: str, value: Any, *, optional: bool = False) -> float | None:
    """A finite number > 0 (None too if `optional`); **returns** it as a float."""
    if optional and value is None:
        return None
    if not (_is_number(value) and math.isfinite(value) and value > 0):
        kind = "a positive finite number" + " or null" * optional
        raise RecipeError((name,), f"must be {kind}, got {value!r}")
    return float(value)


def fraction(name: str, value: Any) -> float:
    """A number in `(0, 1]`, as a float."""
    if not (_is_number(value) and 0 < value <= 1):
        raise RecipeError((name,), f"must be in (0, 1], got {value!r}")
    return float(value)


def boolean(name: str, value: Any) -> None:
    """`True` or `False`."""
    if not isinstance(value, bool):
        raise RecipeError((name,), f"must be true or false, got {value!r}")


def text(name: str, value: Any) -> None:
    """A non-empty string."""
    if not (isinstance(value, str) and value):
        raise RecipeError((name,), f"must be a non-empty string, got {value!r}")


def one_of(name: str, value: Any, known: Any, kind: str) -> None:
    """A name of `known` (a registry's keys or a sequence)."""
    if not (isinstance(value, str) and value in known):
        raise RecipeError((name,), f"unknown {kind} {value!r}; expected one of {sorted(known)}")


def mapping(name: str, value: Any) -> dict:
    """A JSON object with string keys; **returns** a copy."""
    if not (isinstance(value, dict) and all(isinstance(k, str) for k in value)):
        raise RecipeError((name,), f"must be an object (string keys), got {value!r}")
    return dict(value)
