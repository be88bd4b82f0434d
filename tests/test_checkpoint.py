import json
import zipfile

import equinox as eqx
import jax
import jax.numpy as jnp
import pytest

import l2orl
from helpers import CELLS, OPTIMIZER_IDS, OPTIMIZERS, PREPROCESSORS
from l2orl._checkpoint import FORMAT


@pytest.mark.parametrize(
    "module",
    [*OPTIMIZERS, *CELLS, *PREPROCESSORS],
    ids=[
        *OPTIMIZER_IDS,
        *(type(c).__name__ for c in CELLS),
        *(f"pre-{type(p).__name__}" for p in PREPROCESSORS),
    ],
)
def test_round_trip_without_template(tmp_path, module):
    path = l2orl.save(tmp_path / "m.l2o", module, metadata={"seed": 3, "return": 0.9})
    loaded = l2orl.load(path)
    assert type(loaded) is type(module)
    assert eqx.tree_equal(loaded, module)
    manifest = l2orl.read_manifest(path)
    assert manifest["metadata"] == {"seed": 3, "return": 0.9}
    assert manifest["l2orl_version"] == l2orl.__version__ and manifest["format"] == FORMAT
    assert manifest["tree"] == l2orl.describe(module)


def test_loaded_optimizer_gives_identical_updates(tmp_path):
    opt = l2orl.optim4rl(key=jax.random.key(7))
    loaded = l2orl.load(l2orl.save(tmp_path / "o.l2o", opt), like=opt)
    params = {"w": jnp.linspace(-1, 1, 12).reshape(3, 4)}
    a, _ = opt.update(params, opt.init(params), params)
    b, _ = loaded.update(params, loaded.init(params), params)
    assert jnp.array_equal(a["w"], b["w"])


def test_save_is_atomic_and_leaves_no_temporary_files(tmp_path):
    path = tmp_path / "o.l2o"
    l2orl.save(path, l2orl.l2lgd2())
    before = path.read_bytes()
    with pytest.raises(TypeError, match="unsupported type"):
        l2orl.save(path, _Unsupported(lambda x: x))
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["o.l2o"]


class _Unsupported(eqx.Module):
    fn: object


class _MyHead(l2orl.AbstractHead):
    """A user's own head: sign(g)·softplus(o)."""

    @property
    def n_in(self) -> int:
        return 1

    def __call__(self, out, grad):
        return jnp.sign(grad) * jax.nn.softplus(out[0])


def test_user_classes_load_with_like_only(tmp_path):
    opt = l2orl.PerCoordinateOptimizer(
        l2orl.Identity(), l2orl.GRUCell(1, key=jax.random.key(0)), _MyHead()
    )
    path = l2orl.save(tmp_path / "mine.l2o", opt)
    with pytest.raises(l2orl.CheckpointError, match="pass like="):
        l2orl.load(path)
    assert eqx.tree_equal(l2orl.load(path, like=opt), opt)


def test_other_structure_is_named(tmp_path):
    path = l2orl.save(tmp_path / "o.l2o", l2orl.optim4rl())
    with pytest.raises(l2orl.CheckpointError, match=r"another structure.*MomentRatioOptimizer"):
        l2orl.load(path, like=l2orl.l2lgd2())
    with pytest.raises(
        l2orl.CheckpointError, match=r"m_branch\.cell\.hidden_size is 8 in the file, expected 4"
    ):
        l2orl.load(path, like=l2orl.optim4rl(hidden_size=4))


def test_truncated_file(tmp_path):
    path = l2orl.save(tmp_path / "o.l2o", l2orl.optim4rl())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(l2orl.CheckpointError, match="truncated"):
        l2orl.load(path)


def test_corrupted_array_fails_the_checksum(tmp_path):
    path = l2orl.save(tmp_path / "o.l2o", l2orl.optim4rl())
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("arrays/00003.npy")
    data[info.header_offset + 30 + len(info.filename) + info.file_size - 1] ^= (
        0xFF  # last data byte
    )
    path.write_bytes(bytes(data))
    with pytest.raises(l2orl.CheckpointError, match="checksum"):
        l2orl.load(path)


def _rewrite_manifest(path, edit):
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    manifest = json.loads(members["manifest.json"])
    edit(manifest)
    members["manifest.json"] = json.dumps(manifest).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, blob in members.items():
            archive.writestr(name, blob)


def test_incompatible_format(tmp_path):
    path = l2orl.save(tmp_path / "o.l2o", l2orl.optim4rl())
    _rewrite_manifest(path, lambda m: m.update(format=FORMAT + 1))
    with pytest.raises(l2orl.CheckpointError, match=f"format {FORMAT + 1}"):
        l2orl.load(path)


def test_edited_manifest_fails_the_checksum(tmp_path):
    path = l2orl.save(tmp_path / "o.l2o", l2orl.optim4rl())
    _rewrite_manifest(path, lambda m: m["tree"]["fields"].update(step_size=1.0))
    with pytest.raises(l2orl.CheckpointError, match="checksum"):
        l2orl.load(path)


def test_pytree_round_trip_with_keys_and_scalars(tmp_path):
    tree = {
        "key": jax.random.key(3),
        "step": jnp.zeros((), jnp.int32),
        "x": [jnp.ones((2, 3)), jnp.float32(2.5)],
    }
    path = l2orl.save_tree(tmp_path / "t.l2o", tree, metadata={"n": 1})
    loaded = l2orl.load_tree(path, like=tree)
    assert jnp.array_equal(jax.random.key_data(loaded["key"]), jax.random.key_data(tree["key"]))
    assert loaded["step"].shape == () and loaded["step"].dtype == jnp.int32
    assert eqx.tree_equal(loaded["x"], tree["x"])
    with pytest.raises(l2orl.CheckpointError, match="another pytree structure"):
        l2orl.load_tree(path, like={"x": 1})
    with pytest.raises(
        l2orl.CheckpointError, match=r"leaf 1 is int32\[\] in the file, expected float32\[\]"
    ):
        l2orl.load_tree(path, like={**tree, "step": jnp.zeros((), jnp.float32)})
    with pytest.raises(
        l2orl.CheckpointError,
        match=r"holds a pytree \(such as a meta-training run.s checkpoint\), not a module",
    ):
        l2orl.load(path)


def test_not_a_checkpoint_and_missing(tmp_path):
    (tmp_path / "x.l2o").write_text("hello")
    with pytest.raises(l2orl.CheckpointError, match="not a complete l2orl checkpoint"):
        l2orl.load(tmp_path / "x.l2o")
    with pytest.raises(l2orl.CheckpointError, match="no checkpoint at"):
        l2orl.load(tmp_path / "missing.l2o")


def test_a_field_added_since_the_file_was_written_reads_as_its_default(tmp_path):
    """A file from before `MomentRatioOptimizer.max_step` existed loads with no bound."""
    from l2orl._checkpoint import _MANIFEST, _checksum

    path = l2orl.save(tmp_path / "new.l2o", l2orl.optim4rl_scale_free(max_step=2.0))
    with zipfile.ZipFile(path) as archive:
        manifest = json.loads(archive.read(_MANIFEST))
        blobs = {n: archive.read(n) for n in archive.namelist() if n != _MANIFEST}
    del manifest["tree"]["fields"]["max_step"]
    arrays = [blobs[n] for n in sorted(blobs)]
    manifest["checksum"] = _checksum(manifest["tree"], arrays)
    old = tmp_path / "old.l2o"
    with zipfile.ZipFile(old, "w") as archive:
        archive.writestr(_MANIFEST, json.dumps(manifest))
        for name, blob in blobs.items():
            archive.writestr(name, blob)
    assert l2orl.load(path).max_step == 2.0
    assert l2orl.load(old).max_step is None
    del manifest["tree"]["fields"]["m_branch"]  # a field with no default is still an error
    manifest["checksum"] = _checksum(manifest["tree"], arrays)
    with zipfile.ZipFile(old, "w") as archive:
        archive.writestr(_MANIFEST, json.dumps(manifest))
        for name, blob in blobs.items():
            archive.writestr(name, blob)
    with pytest.raises(l2orl.CheckpointError, match="incompatible checkpoint"):
        l2orl.load(old)
