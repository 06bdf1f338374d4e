"""One contender of one case, in a process of its own: ``python -m benchmarks._run_one CASE NAME``.

Protocol on stdin/stdout, one JSON object per line: the harness sends the setup (emulator URL
and key, options); the contender imports what it needs and answers ``{"ready": true}``; the
harness prepares the data (it may seed jobs now) and sends the work; the contender does it and
answers its figures plus ``cpu`` (process CPU seconds, every thread, for the work only),
``wall``, ``rss_peak`` (bytes, the whole process's life) and ``rss_ready`` (bytes, once the
imports were done). Nothing else may write to stdout.
"""

from __future__ import annotations

import gc
import importlib
import json
import resource
import sys
import time
from typing import Any


def _status_kb(field: str) -> int | None:
    """A ``/proc/self/status`` figure in bytes (Linux), or None."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _peak_rss() -> int:
    """Peak resident set size of this process in bytes.

    On Linux ``VmHWM``: ``ru_maxrss`` keeps the peak of the image before ``exec``, i.e. of
    the harness that forked this process.
    """
    peak = _status_kb("VmHWM")
    if peak is not None:
        return peak
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def _rss() -> int:
    """Current resident set size in bytes (the peak where the current one is unknown)."""
    current = _status_kb("VmRSS")
    return current if current is not None else _peak_rss()


def _send(obj: dict[str, Any], out: Any) -> None:
    out.write(json.dumps(obj) + "\n")
    out.flush()


def main(argv: list[str]) -> int:
    case, name = argv[1], argv[2]
    out = sys.stdout
    # contenders must not write to stdout: the protocol owns it
    sys.stdout = sys.stderr
    module = importlib.import_module(f"benchmarks.cases.{case}")
    contender = module.CONTENDERS[name]
    setup = json.loads(sys.stdin.readline())
    contender.prepare()
    gc.collect()
    rss_ready = _rss()
    _send({"ready": True}, out)
    line = sys.stdin.readline()
    if not line:
        return 1
    work = json.loads(line)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    figures = contender.run(setup, work)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    figures.update(cpu=cpu, wall=wall, rss_peak=_peak_rss(), rss_ready=rss_ready)
    _send(figures, out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
