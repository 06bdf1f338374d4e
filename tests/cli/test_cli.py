"""The aiotd command: the demo end to end, the emulator command, usage errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from aiotd.cli import main


def test_demo_through_the_entry_point(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--jobs", "40", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["jobs"] == 40
    assert summary["success"] + summary["error"] == 40
    assert summary["error"] >= 4  # every tenth query fails on purpose
    assert summary["attempt_status"] == "success"
    # one final record per job plus a few polls: far below a poll per job per second
    assert summary["requests_per_job"] < 3


@pytest.mark.slow
def test_demo_as_a_subprocess_prints_a_plain_summary() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "aiotd", "demo", "--jobs", "30"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "30 jobs watched" in done.stdout
    assert "workflow attempt: success" in done.stdout
    assert "\x1b[" not in done.stdout  # no colour or live display when not a terminal
    assert "Traceback" not in done.stderr


def test_emulator_command_prints_its_url_first() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "aiotd", "emulator", "--port", "0", "--apikey", "1/" + "a" * 40],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline().strip()
        assert first.startswith("http://127.0.0.1:")
        assert int(first.rsplit(":", 1)[1]) > 0
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert main(["no-such-command"]) == 2
    assert main(["demo", "--jobs", "many"]) == 2


def test_errors_are_one_line_without_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--jobs", "0"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("aiotd: ValueError: --jobs must be >= 1")
    assert "Traceback" not in err
