"""A local Treasure Data emulator for tests, demos and benchmarks (not a substitute for TD).

``async with Emulator() as emu:`` serves TD's v3 API on ``emu.url``; ``emu.faults`` injects
faults, ``emu.counters`` counts requests per route. See docs/emulator.md.
"""

from aiotd.testing._common import ListingCount
from aiotd.testing._emulator import PUBLIC_PATHS, Emulator
from aiotd.testing._faults import FAULT_KINDS, Counters, Fault, Faults
from aiotd.testing._jobs import Job, JobStore
from aiotd.testing._sql import JobControl, parse_control

__all__ = [
    "FAULT_KINDS",
    "PUBLIC_PATHS",
    "Counters",
    "Emulator",
    "Fault",
    "Faults",
    "Job",
    "JobControl",
    "JobStore",
    "ListingCount",
    "parse_control",
]
