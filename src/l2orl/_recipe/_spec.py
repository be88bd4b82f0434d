"""The base of every recipe spec: a frozen dataclass that writes itself as JSON and reads
itself back, each nested spec under its key, each error under its path."""

import dataclasses
import typing
from collections.abc import Callable
from typing import Any, ClassVar

from ._checks import RecipeError, at


def json_value(value: Any) -> Any:
    """`value` as JSON: specs as objects, tuples as lists."""
    if isinstance(value, _Spec):
        return value.to_json()
    if isinstance(value, tuple | list):
        return [json_value(v) for v in value]
    if isinstance(value, dict):
        return {k: json_value(v) for k, v in value.items()}
    return value


def reads(reader: Callable[[Any], Any]) -> dict[str, Any]:
    """A field's metadata: its JSON value is read by `reader` (e.g. a spec's `from_json`)."""
    return {"read": reader}


def read_list(cls: type) -> Callable[[Any], tuple]:
    """A reader of a JSON list of `cls` specs, each error under its index."""

    def read(data: Any) -> tuple:
        if not isinstance(data, list | tuple):
            raise RecipeError((), f"must be a list, got {data!r}")
        items = []
        for i, item in enumerate(data):
            with at(i):
                items.append(cls.from_json(item))
        return tuple(items)

    return read


@typing.no_type_check
@dataclasses.dataclass(frozen=True)
class _Spec:
    """A recipe part. Subclasses check their own values in `__post_init__` (naming the
    field, which the reader prefixes with the path) and may narrow `keys_for`. A field
    annotated with a spec class holds a nested spec; `reads(reader)` metadata reads any
    other."""

    NAME: ClassVar[str | None] = None
    """The `"name"` an algorithm spec is chosen by (None for other specs)."""

    def _set(self, field: str, value: Any) -> None:
        object.__setattr__(self, field, value)

    @classmethod
    def keys_for(cls, name: Any) -> tuple[str, ...]:
        """The JSON keys a spec of this class named `name` takes (default: every field)."""
        fields = tuple(f.name for f in dataclasses.fields(cls))
        return ("name", *fields) if cls.NAME else fields

    def to_json(self) -> dict[str, Any]:
        """The spec as a JSON-ready dict (the settings its name takes)."""
        if self.NAME:
            return {
                "name": self.NAME,
                **{k: json_value(getattr(self, k)) for k in self.keys_for(None)[1:]},
            }
        return {
            k: json_value(getattr(self, k)) for k in self.keys_for(getattr(self, "name", None))
        }

    @classmethod
    def from_json(cls, data: Any) -> Any:
        """The spec a JSON object describes (itself if already one); missing keys take the
        defaults. **Raises:** `ValueError` naming the path of an unknown key or bad value."""
        if isinstance(data, cls):
            return data
        fields = {f.name: f for f in dataclasses.fields(cls)}
        if not isinstance(data, dict):
            raise RecipeError((), f"must be an object with keys {sorted(fields)}, got {data!r}")
        data = dict(data)
        if cls.NAME and data.pop("name", cls.NAME) != cls.NAME:
            raise RecipeError(("name",), f"must be {cls.NAME!r}")
        kwargs = {}
        for key, value in data.items():
            if key not in fields:
                raise RecipeError((key,), f"unknown key; expected one of {sorted(fields)}")
            read = fields[key].metadata.get("read")
            if isinstance(fields[key].type, type) and issubclass(fields[key].type, _Spec):
                read = fields[key].type.from_json  # a nested spec
            with at(key):
                kwargs[key] = value if read is None else read(value)
        return cls(**kwargs)

    def replace(self, **changes: Any) -> Any:
        """A copy with `changes`, checked again."""
        return dataclasses.replace(self, **changes)
