"""Benchmarks: aiotd side by side with td-client-python, tdworkflow and bare aiohttp.

``python -m benchmarks [--quick] [case ...]`` (or ``nox -s bench``) runs each case against the
emulator served by its own process, runs every contender in a fresh subprocess on the same
data, and writes ``benchmarks/results/RESULTS.md`` plus PNG charts.
"""
