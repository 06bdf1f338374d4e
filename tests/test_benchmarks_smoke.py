"""The benchmark harness runs end to end on its smallest case (figures are not checked)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")
pytest.importorskip("psutil")
pytest.importorskip("tdclient")

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_quick_single_case_writes_results(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "single", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = (tmp_path / "RESULTS.md").read_text(encoding="utf-8")
    assert "## 1. Single calls" in results
    assert "| aiotd |" in results
    assert (tmp_path / "single.png").stat().st_size > 0
    raw = json.loads((tmp_path / "raw.json").read_text(encoding="utf-8"))
    runs = raw["cases"]["single"][0]["runs"]
    assert set(runs) == {"aiotd", "aiohttp (floor)", "td-client (50 threads)"}
    assert all(len(r) == 1 and r[0]["requests"] > 0 for r in runs.values())
