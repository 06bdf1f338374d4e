"""One entry point for local runs and CI: ``nox`` runs the tests on every supported Python
found, lint, typecheck and the documentation site."""

from __future__ import annotations

import os
from pathlib import Path

import nox

PYTHONS = ["3.10", "3.11", "3.12", "3.13"]

nox.options.sessions = ["tests", "lint", "typecheck", "docs"]
nox.options.reuse_existing_virtualenvs = True


def _pyenv_versions_on_path() -> None:
    """Put each pyenv-installed supported Python on PATH, so ``nox -s tests`` finds all of
    them even where pyenv's shims select only one version (the shims of the others fail)."""
    root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    found: list[str] = []
    for minor in PYTHONS:
        # the newest patch release of each minor version: 3.10.13 over 3.10.9
        bins = sorted(
            root.glob(f"{minor}.*/bin"),
            key=lambda p: [int(x) if x.isdigit() else -1 for x in p.parent.name.split(".")],
        )
        if bins and (bins[-1] / f"python{minor}").exists():
            found.append(str(bins[-1]))
    if found:
        os.environ["PATH"] = os.pathsep.join([*found, os.environ.get("PATH", "")])


_pyenv_versions_on_path()


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """The test suite (samples, client against the emulator, reliability, the docs' code)
    on each supported Python; the ones not installed are skipped outside CI."""
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
def docs(session: nox.Session) -> None:
    """The documentation site, built strictly (a warning fails) into site/; offline."""
    session.install("-e", ".[docs]")
    session.run("mkdocs", "build", "--strict", *session.posargs)


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
