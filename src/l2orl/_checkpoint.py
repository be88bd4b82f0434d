"""Versioned checkpoints of any l2orl module: arrays as `.npy` plus a JSON manifest, in one zip.

The manifest records the module tree (every class and non-array field), so `load` rebuilds the
module without a template; nothing is pickled. Files are written atomically (temp + rename).
"""

import dataclasses
import hashlib
import importlib
import io
import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._version import __version__

FORMAT = 1
_MANIFEST = "manifest.json"


class CheckpointError(ValueError):
    """A checkpoint cannot be read: truncated, corrupted, incompatible or of another structure."""


def _encode(value: Any, arrays: list[np.ndarray], where: str) -> Any:
    if isinstance(value, eqx.Module):
        cls = type(value)
        fields = {
            f.name: _encode(getattr(value, f.name), arrays, f"{where}.{f.name}")
            for f in dataclasses.fields(value)
        }
        return {"module": f"{cls.__module__}:{cls.__qualname__}", "fields": fields}
    if isinstance(value, jax.Array | np.ndarray):
        if jnp.issubdtype(value.dtype, jax.dtypes.prng_key):
            raise TypeError(f"cannot checkpoint the PRNG key at {where}; store its key_data")
        arrays.append(np.asarray(value))
        node = {"array": len(arrays) - 1, "shape": list(value.shape), "dtype": str(value.dtype)}
        if value.ndim == 0 and not isinstance(value, jax.core.Tracer):
            node["value"] = arrays[-1].item()  # hyperparameters stored as scalars stay readable
        return node
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, tuple | list):
        items = [_encode(v, arrays, f"{where}[{i}]") for i, v in enumerate(value)]
        return {"tuple" if isinstance(value, tuple) else "list": items}
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {"dict": {k: _encode(v, arrays, f"{where}[{k!r}]") for k, v in value.items()}}
    raise TypeError(f"cannot checkpoint {where}: unsupported type {type(value).__name__}")


def _classes_in(module: Any) -> dict[str, type]:
    """The module classes in a tree, by their manifest names."""
    found = {}
    for node in jax.tree.leaves(module, is_leaf=lambda x: isinstance(x, eqx.Module)):
        if isinstance(node, eqx.Module):
            cls = type(node)
            found[f"{cls.__module__}:{cls.__qualname__}"] = cls
            for f in dataclasses.fields(node):
                found.update(_classes_in(getattr(node, f.name)))
    return found


def _module_class(name: str, known: dict[str, type]) -> type:
    if name in known:
        return known[name]
    module_name, _, qualname = name.partition(":")
    if module_name.split(".")[0] != "l2orl":
        raise CheckpointError(
            f"refusing to import class {name!r} named by the file: only l2orl classes are rebuilt "
            "from a manifest; pass like=<a module of this structure> to load your own classes"
        )
    try:
        cls = importlib.import_module(module_name)
        for part in qualname.split("."):
            cls = getattr(cls, part)
    except (ImportError, AttributeError) as error:
        raise CheckpointError(
            f"incompatible checkpoint: class {name!r} does not exist in l2orl {__version__}"
        ) from error
    if not (isinstance(cls, type) and issubclass(cls, eqx.Module)):
        raise CheckpointError(f"incompatible checkpoint: {name!r} is not an equinox Module")
    return cls


def with_added_fields(node: Any) -> Any:
    """A recorded module description (`describe`'s JSON) with each l2orl field added since it
    was written filled in at its default, as `load` reads such a file: so a run recorded
    before a field existed compares equal to the same run described today."""
    if isinstance(node, list):
        return [with_added_fields(v) for v in node]
    if not isinstance(node, dict):
        return node
    node = {k: with_added_fields(v) for k, v in node.items()}
    if "module" in node and isinstance(node.get("fields"), dict):
        try:
            cls = _module_class(node["module"], {})
        except CheckpointError:
            return node
        added = {
            f.name: _encode(f.default, [], f.name)
            for f in dataclasses.fields(cls)
            if f.name not in node["fields"] and f.default is not dataclasses.MISSING
        }
        node["fields"] = {**node["fields"], **added}
    return node


def _decode(node: Any, arrays: dict[int, np.ndarray], known: dict[str, type]) -> Any:
    if not isinstance(node, dict):
        return node
    if "module" in node:
        cls = _module_class(node["module"], known)
        fields = {f.name: f for f in dataclasses.fields(cls)}
        # A field added since the file was written reads as its default: a static option
        # whose default keeps the old behaviour.
        added = {
            name: field.default
            for name, field in fields.items()
            if name not in node["fields"] and field.default is not dataclasses.MISSING
        }
        if set(node["fields"]) | set(added) != set(fields):
            raise CheckpointError(
                f"incompatible checkpoint: {node['module']} has fields {sorted(node['fields'])} "
                f"in the file but {sorted(fields)} in l2orl {__version__}"
            )
        obj = object.__new__(cls)
        for name, value in node["fields"].items():
            object.__setattr__(obj, name, _decode(value, arrays, known))
        for name, value in added.items():
            object.__setattr__(obj, name, value)
        for base in reversed(cls.__mro__):
            if "__check_init__" in base.__dict__:
                base.__dict__["__check_init__"](obj)
        return obj
    if "array" in node:
        return jnp.asarray(arrays[node["array"]])
    if "tuple" in node:
        return tuple(_decode(v, arrays, known) for v in node["tuple"])
    if "list" in node:
        return [_decode(v, arrays, known) for v in node["list"]]
    return {k: _decode(v, arrays, known) for k, v in node["dict"].items()}


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.asarray(array), allow_pickle=False)
    return buffer.getvalue()


def _checksum(tree: Any, blobs: list[bytes]) -> str:
    digest = hashlib.sha256(json.dumps(tree, sort_keys=True).encode())
    for blob in blobs:
        digest.update(blob)
    return digest.hexdigest()


def describe(module: eqx.Module) -> dict:
    """The JSON description of `module`'s tree: classes, fields, array shapes and dtypes.

    Two modules with equal descriptions have the same structure; use it to record exactly
    which optimizer (or ablation) a run used.
    """
    return _encode(module, [], type(module).__name__)


def save(path: str | os.PathLike, module: eqx.Module, *, metadata: dict | None = None) -> Path:
    """Write `module` (its arrays and its tree) to `path`, atomically.

    **Arguments:** `path` (conventionally `*.l2o`), `module` (any Equinox module whose fields
    are arrays, numbers, strings, tuples, lists, dicts or such modules), `metadata` (a
    JSON-serialisable dict stored in the manifest, e.g. training figures).

    **Returns:** the path written.
    """
    arrays: list[np.ndarray] = []
    tree = _encode(module, arrays, type(module).__name__)
    return _write(path, tree, arrays, metadata)


def _write(
    path: str | os.PathLike, tree: Any, arrays: list[np.ndarray], metadata: dict | None
) -> Path:
    path = Path(path)
    blobs = [_npy_bytes(a) for a in arrays]
    manifest = {
        "format": FORMAT,
        "l2orl_version": __version__,
        "class": tree["module"] if isinstance(tree, dict) and "module" in tree else None,
        "tree": tree,
        "checksum": _checksum(tree, blobs),
        "metadata": metadata or {},
    }
    manifest_bytes = json.dumps(manifest, indent=1).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as file:
            with zipfile.ZipFile(file, "w", zipfile.ZIP_STORED) as archive:
                archive.writestr(_MANIFEST, manifest_bytes)
                for i, blob in enumerate(blobs):
                    archive.writestr(f"arrays/{i:05d}.npy", blob)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _read(path: Path) -> tuple[dict, list[bytes]]:
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        with zipfile.ZipFile(path) as archive:
            manifest = json.loads(archive.read(_MANIFEST))
            n_arrays = len([n for n in archive.namelist() if n.startswith("arrays/")])
            blobs = [archive.read(f"arrays/{i:05d}.npy") for i in range(n_arrays)]
    except zipfile.BadZipFile as error:
        if "CRC" in str(error):
            raise CheckpointError(
                f"{path} failed its checksum: the file is corrupted ({error})"
            ) from error
        raise CheckpointError(
            f"{path} is not a complete l2orl checkpoint (truncated or not a checkpoint): {error}"
        ) from error
    except (KeyError, EOFError, json.JSONDecodeError) as error:
        raise CheckpointError(
            f"{path} is not a complete l2orl checkpoint (truncated or not a checkpoint): {error}"
        ) from error
    except OSError as error:  # a truncated member surfaces as an OSError from zlib/zipfile
        raise CheckpointError(f"{path} could not be read (truncated?): {error}") from error
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else None
        raise CheckpointError(
            f"{path} has checkpoint format {found!r}; "
            f"this l2orl ({__version__}) reads format {FORMAT}"
        )
    if _checksum(manifest["tree"], blobs) != manifest["checksum"]:
        raise CheckpointError(f"{path} failed its checksum: the file is corrupted")
    return manifest, blobs


def read_manifest(path: str | os.PathLike) -> dict:
    """The manifest of the checkpoint at `path` (format, version, class, tree, metadata)."""
    return _read(Path(path))[0]


def load(path: str | os.PathLike, like: eqx.Module | None = None) -> eqx.Module:
    """Rebuild the module saved at `path`.

    **Arguments:** `path`; `like`, optionally a module of the expected structure: if the file
    holds another structure (another class, field value or array shape), `CheckpointError`
    names the first difference. Without `like`, only l2orl's own classes are rebuilt; with it,
    your own part classes are too.

    **Raises:** `CheckpointError` for a missing, truncated, corrupted or incompatible file.
    """
    path = Path(path)
    manifest, blobs = _read(path)
    if not (isinstance(manifest["tree"], dict) and "module" in manifest["tree"]):
        raise CheckpointError(
            f"{path} holds a pytree (such as a meta-training run's checkpoint), not a module: "
            "read it with load_tree; a run's learned optimizer is its optimizer.l2o"
        )
    if like is not None:
        difference = _first_difference(describe(like), manifest["tree"], type(like).__name__)
        if difference is not None:
            raise CheckpointError(f"{path} holds another structure than expected: {difference}")
    arrays = {}
    for i, blob in enumerate(blobs):
        try:
            arrays[i] = np.lib.format.read_array(io.BytesIO(blob), allow_pickle=False)
        except ValueError as error:
            raise CheckpointError(f"{path}: array {i} cannot be read: {error}") from error
    return _decode(manifest["tree"], arrays, {} if like is None else _classes_in(like))


def _first_difference(expected: Any, found: Any, where: str) -> str | None:
    if isinstance(expected, dict) and isinstance(found, dict):
        if "array" in expected and "array" in found:
            for key in ("shape", "dtype"):
                if expected[key] != found[key]:
                    return f"{where} has {key} {found[key]} in the file, expected {expected[key]}"
            return None
        if expected.keys() != found.keys():
            return f"{where} is {_kind(found)} in the file, expected {_kind(expected)}"
        for key in expected:
            diff = _first_difference(
                expected[key], found[key], where if key in _WRAPPERS else f"{where}.{key}"
            )
            if diff is not None:
                return diff
        return None
    if isinstance(expected, list) and isinstance(found, list):
        if len(expected) != len(found):
            return f"{where} has {len(found)} entries in the file, expected {len(expected)}"
        for i, (e, f) in enumerate(zip(expected, found, strict=True)):
            diff = _first_difference(e, f, f"{where}[{i}]")
            if diff is not None:
                return diff
        return None
    return (
        None if expected == found else f"{where} is {found!r} in the file, expected {expected!r}"
    )


_WRAPPERS = ("module", "fields", "tuple", "list", "dict")


def _kind(node: Any) -> str:
    if isinstance(node, dict):
        for key in ("module", "array", "tuple", "list", "dict"):
            if key in node:
                return node[key] if key == "module" else key
    return repr(node)


def save_tree(path: str | os.PathLike, tree: Any, *, metadata: dict | None = None) -> Path:
    """Write any pytree of arrays (PRNG keys included) to `path`, atomically, with a manifest
    of its structure, shapes, dtypes and checksum. Read it back with [`l2orl.load_tree`][]."""
    leaves, treedef = jax.tree.flatten(tree)
    arrays, kinds = [], []
    for leaf in leaves:
        if isinstance(leaf, jax.Array) and jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            arrays.append(np.asarray(jax.random.key_data(leaf)))
            kinds.append(str(jax.random.key_impl(leaf)))
        else:
            arrays.append(np.asarray(leaf))
            kinds.append(None)
    described = {
        "treedef": str(treedef),
        "leaves": [
            {"shape": list(a.shape), "dtype": str(a.dtype), "key": k}
            for a, k in zip(arrays, kinds, strict=True)
        ],
    }
    return _write(path, described, arrays, metadata)


def load_tree(path: str | os.PathLike, like: Any) -> Any:
    """The pytree saved at `path`, which must have the structure, shapes and dtypes of `like`.

    **Raises:** `CheckpointError` naming the mismatch, or for a truncated or corrupted file.
    """
    path = Path(path)
    manifest, blobs = _read(path)
    leaves, treedef = jax.tree.flatten(like)
    tree = manifest["tree"]
    if tree.get("treedef") != str(treedef):
        raise CheckpointError(f"{path} holds another pytree structure than expected")
    if len(tree["leaves"]) != len(leaves):
        raise CheckpointError(f"{path} has {len(tree['leaves'])} leaves, expected {len(leaves)}")
    out = []
    for i, (spec, blob, leaf) in enumerate(zip(tree["leaves"], blobs, leaves, strict=True)):
        array = np.lib.format.read_array(io.BytesIO(blob), allow_pickle=False)
        if spec["key"] is not None:
            out.append(jax.random.wrap_key_data(jnp.asarray(array), impl=spec["key"]))
            continue
        expected = np.asarray(leaf)
        if array.shape != expected.shape or array.dtype != expected.dtype:
            raise CheckpointError(
                f"{path}: leaf {i} is {array.dtype}{list(array.shape)} in the file, "
                f"expected {expected.dtype}{list(expected.shape)}"
            )
        out.append(jnp.asarray(array))
    return treedef.unflatten(out)
