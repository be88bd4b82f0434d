import ast
import collections
import importlib
import inspect
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import equinox as eqx
import pytest

import l2orl

ROOT = Path(__file__).resolve().parents[1]


def _exports(init: str) -> set[str]:
    """The names an `__init__.py` imports, but for private (`_`-prefixed) ones."""
    tree = ast.parse((ROOT / init).read_text())
    return {
        alias.asname or alias.name
        for node in tree.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
        if not (alias.asname or alias.name).startswith("_")
    }


def _public_names() -> set[str]:
    """Public names, the RL ones as `rl.Name` (BraxEnv loads lazily through __getattr__)."""
    rl_names = _exports("src/l2orl/rl/__init__.py") | {"BraxEnv"}
    return _exports("src/l2orl/__init__.py") | {f"rl.{n}" for n in rl_names}


def _l2orl_modules() -> list[type]:
    for info in pkgutil.walk_packages(l2orl.__path__, "l2orl."):
        importlib.import_module(info.name)
    classes = set()
    todo = [eqx.Module]
    while todo:
        for sub in todo.pop().__subclasses__():
            todo.append(sub)
            if sub.__module__.startswith("l2orl."):
                classes.add(sub)
    return sorted(classes, key=lambda c: c.__qualname__)


MODULE_CLASSES = _l2orl_modules()


def _l2orl_descendants(cls: type) -> list[type]:
    """Every subclass of `cls` defined in l2orl, however deep (through any intermediate class,
    in l2orl or not)."""
    found, todo = {}, list(cls.__subclasses__())
    while todo:
        sub = todo.pop()
        if sub not in found:
            found[sub] = None
            todo.extend(sub.__subclasses__())
    return [s for s in found if s.__module__.startswith("l2orl.")]


@pytest.mark.parametrize("cls", MODULE_CLASSES, ids=lambda c: c.__qualname__)
def test_abstract_or_final(cls):
    """Abstract classes are named Abstract* and have abstract members; others are final. No
    descendant of an abstract class, direct or not, overrides one of its concrete methods."""
    abstract_members = set(cls.__abstractmethods__) | set(getattr(cls, "__abstractvars__", ()))
    l2orl_subclasses = _l2orl_descendants(cls)
    if cls.__name__.startswith("Abstract"):
        assert abstract_members, f"{cls.__name__} is named Abstract but has no abstract members"
        # A concrete method of an abstract class is never overridden.
        concrete = {
            n
            for n, v in vars(cls).items()
            if callable(v)
            and not n.startswith("__")
            and not getattr(v, "__isabstractmethod__", False)
        }
        concrete |= (
            {"__call__"}
            if "__call__" in vars(cls) and "__call__" not in cls.__abstractmethods__
            else set()
        )
        for sub in l2orl_subclasses:
            overridden = concrete & set(vars(sub))
            assert not overridden, (
                f"{sub.__name__} overrides concrete {overridden} of {cls.__name__}"
            )
    else:
        assert not inspect.isabstract(cls) and not abstract_members, f"{cls.__name__} is not final"
        assert not l2orl_subclasses, (
            f"final class {cls.__name__} is subclassed by {l2orl_subclasses}"
        )


def test_import_does_not_load_brax_or_gymnax():
    code = "import sys, l2orl; print(sorted(m for m in ('brax', 'gymnax') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_every_public_name_has_one_docs_entry():
    blocks = collections.Counter(
        match.group(1)
        for page in sorted((ROOT / "docs/api").glob("*.md"))
        for match in re.finditer(r"^:::\s+l2orl\.([\w.]+)\s*$", page.read_text(), re.M)
    )
    blocks = collections.Counter(
        {name.replace("rl._brax.", "rl."): c for name, c in blocks.items()}
    )
    public = _public_names()
    assert sorted(public - set(blocks)) == []
    assert sorted(n for n, c in blocks.items() if c > 1) == []
    assert sorted(n for n in blocks if n not in public) == []


def _uses_in_tests() -> set[str]:
    """Public names the tests use for what they do: called, subclassed, read from, passed or
    compared. A name that only appears as `isinstance`'s second argument, or as a bare
    expression, does not count."""
    used = set()
    for path in (ROOT / "tests").glob("*.py"):
        if path.name == "test_package.py":
            continue
        tree = ast.parse(path.read_text())
        ignored = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "isinstance":
                ignored.update(map(id, ast.walk(node.args[1])))
            if isinstance(node, ast.Expr):
                ignored.add(id(node.value))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and id(node) not in ignored:
                base = node.value
                if isinstance(base, ast.Name) and base.id == "l2orl":
                    used.add(node.attr)
                elif (isinstance(base, ast.Name) and base.id == "rl") or (
                    isinstance(base, ast.Attribute)
                    and base.attr == "rl"
                    and getattr(base.value, "id", None) == "l2orl"
                ):
                    used.add(f"rl.{node.attr}")
    return used


def test_every_public_name_is_used_by_a_test():
    assert sorted(_public_names() - _uses_in_tests()) == []


@pytest.mark.parametrize(
    "page", ["README.md", pytest.param("docs/concepts.md", marks=pytest.mark.slow)]
)
def test_python_examples_in_the_docs_run(page):
    """Every ```python block of `page`, in order, in one namespace."""
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / page).read_text(), re.S)
    assert blocks, f"{page} has no python example"
    namespace = {}
    for block in blocks:
        exec(compile(block, page, "exec"), namespace)
