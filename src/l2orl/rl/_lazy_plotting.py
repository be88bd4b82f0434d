"""Import gymnax without the plotting stack its `render` code imports at module level.

`l2orl.rl` imports this module first. gymnax's catch and pong modules import
`matplotlib.pyplot` and seaborn (with it pandas and scipy) only to render; deferring them saves
memory in every process that never renders.
"""

import importlib
import sys
import types

DEFERRED = ("seaborn", "matplotlib.pyplot")


class _Deferred(types.ModuleType):
    """Stands in for a module inside gymnax; imports the real one on first attribute access."""

    def __getattr__(self, attr: str):
        if attr.startswith("__"):
            raise AttributeError(attr)
        return getattr(importlib.import_module(self.__name__), attr)


def _import_gymnax() -> None:
    """`import gymnax` with each of `DEFERRED` not yet imported replaced by a `_Deferred`
    stand-in while it runs. The stand-ins leave `sys.modules` afterwards, so a later
    `import seaborn` anywhere gets the real module."""
    if "gymnax" in sys.modules:
        return
    stand_ins = [name for name in DEFERRED if name not in sys.modules]
    for name in stand_ins:
        sys.modules[name] = _Deferred(name)
    try:
        importlib.import_module("gymnax")
    finally:
        for name in stand_ins:
            if isinstance(sys.modules.get(name), _Deferred):
                del sys.modules[name]


_import_gymnax()
