from typing import Any

from ._base import AbstractPreprocessor
from ._concatenate import Concatenate
from ._normalize import RMSNormalize


def find_part(
    preprocessor: AbstractPreprocessor, kind: type, state: Any = None
) -> tuple[AbstractPreprocessor, Any] | None:
    """The first preprocessor of type `kind` within `preprocessor` (itself, then depth first
    through `Concatenate`'s parts and `RMSNormalize`'s inner one) with its part of `state`
    (the state `preprocessor.init` gives, or `None`); `None` if there is none."""
    if isinstance(preprocessor, kind):
        return preprocessor, state
    if isinstance(preprocessor, Concatenate):
        states = state if state is not None else (None,) * len(preprocessor.parts)
        children = zip(preprocessor.parts, states, strict=True)
    elif isinstance(preprocessor, RMSNormalize):
        children = [(preprocessor.inner, state)]
    else:
        children = []
    for part, part_state in children:
        found = find_part(part, kind, part_state)
        if found is not None:
            return found
    return None
