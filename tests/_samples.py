"""Where the recorded bodies are: $AIOTD_SAMPLES, tests/samples, or the shared copy."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["samples_dir"]


def samples_dir(kind: str) -> Path:
    """The folder of recorded ``kind`` bodies (``"v3"`` or ``"workflow"``) in the first place
    that has one."""
    here = Path(__file__).resolve()
    candidates = [here.parent / "samples", here.parents[2] / "shared" / "samples"]
    if "AIOTD_SAMPLES" in os.environ:
        candidates.insert(0, Path(os.environ["AIOTD_SAMPLES"]))
    for path in candidates:
        if (path / kind).is_dir():
            return path / kind
    raise RuntimeError(f"no samples directory among {candidates}; set AIOTD_SAMPLES")
