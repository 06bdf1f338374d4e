"""One entry point for local runs and CI: ``nox -s tests lint typecheck``."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite: samples, client against the emulator, reliability."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and format check."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict on the package."""
    session.install("-e", ".[test,cli]", "mypy")
    session.run("mypy", "--strict", "aiotd")


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks against the emulator, side by side with the baselines."""
    session.install("-e", ".[bench]")
    session.run("python", "-m", "benchmarks", *session.posargs)


@nox.session
def soak(session: nox.Session) -> None:
    """Jobs issued and watched for minutes through 20% faults (``-- --minutes 2``)."""
    session.install("-e", ".[bench]")
    session.run("python", "benchmarks/soak.py", *session.posargs)
