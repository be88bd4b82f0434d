import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted(
    p
    for p in (Path(__file__).resolve().parents[1] / "examples").rglob("*.py")
    if not p.name.startswith("_") and "--smoke" in p.read_text()
)


@pytest.mark.slow
@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.name)
def test_example_runs_with_smoke(script, tmp_path):
    seeds = ["--seeds", "2"] if "--seeds" in script.read_text() else []
    out = subprocess.run(
        [sys.executable, str(script), "--smoke", *seeds, "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=1200,  # the structure ablation compiles five optimizers' meta-steps
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert any(tmp_path.glob("*.png")), out.stdout
