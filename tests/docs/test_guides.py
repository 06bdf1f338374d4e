"""Every code block of the documentation runs, as written, against a fresh emulator.

Each page (docs/**/*.md and README.md) is one test. Its blocks run in order in one
namespace, with ``TD_API_KEY``, ``TD_API_SERVER`` and ``TD_WORKFLOW_SERVER`` naming an
emulator served for that page alone, in a temporary working directory:

* a ````` ```python ````` block runs: a program ending in ``asyncio.run(main())`` as a
  script runs it, a block with top-level ``await`` on the page's own event loop (as in
  ``python -m asyncio`` or a notebook), so ``td`` made in one block serves the next;
* a block with ``title="some/path"`` is a file the page talks about: it is written at that
  path before the page runs, and when the page holds ``test_*.py`` files, pytest runs them
  in a subprocess and every test in them must pass. When the path is one of the
  repository's sources (under ``examples/`` or ``aiotd/``), the block is an excerpt of that
  file instead, and must be found in it as shown (indentation aside);
* a ````` ```console ````` block's ``$ aiotd ...`` commands run through ``aiotd.cli.main``
  and must exit 0 (or with the code an ``$ echo $?`` line after them shows);
* ````` ```pycon `````, other languages, and any block right after a ``<!-- not-run -->``
  line are shown only.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import inspect
import io
import re
import shlex
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import aiotd
from aiotd.cli import main as cli_main
from aiotd.testing import Emulator

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
#: Pages whose blocks are not run here, and why.
SKIPPED_PAGES = {
    # its examples are fragments of a test around the emulator's own state (``emu`` and
    # td-client-python objects the page does not make); tests/emulator covers what it says
    "emulator.md",
}
NOT_RUN = "<!-- not-run -->"
#: Titles under these folders name the repository's own files: such blocks are excerpts.
EXCERPTS_OF = ("examples/", "aiotd/")
FENCE = re.compile(r"^(?P<indent> *)(?P<fence>```+)(?P<info>[^`\n]*)$")
TITLE = re.compile(r'title="(?P<title>[^"]+)"')


@dataclass(frozen=True)
class Block:
    """One fenced block of a page: its info string, first line (1-based) and text."""

    info: str
    line: int
    text: str
    skipped: bool

    @property
    def language(self) -> str:
        return self.info.split()[0] if self.info.split() else ""

    @property
    def title(self) -> str | None:
        found = TITLE.search(self.info)
        return found.group("title") if found else None


def blocks(text: str) -> Iterator[Block]:
    """The fenced blocks of a Markdown text, in order (indented fences included)."""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        indent, fence = opening.group("indent"), opening.group("fence")
        previous = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        body: list[str] = []
        j = i + 1
        while j < len(lines) and lines[j].strip() != fence:
            body.append(lines[j][len(indent) :] if lines[j].startswith(indent) else lines[j])
            j += 1
        yield Block(
            info=opening.group("info").strip(),
            line=i + 2,
            text="\n".join(body) + "\n",
            skipped=previous.strip() == NOT_RUN,
        )
        i = j + 1


def _runs(page: Path, block: Block) -> bool:
    """Whether the test runs ``block``: python, and console blocks of the docs/ pages (the
    README's console blocks are transcripts of a session with its own emulator)."""
    if block.skipped or block.title:
        return False
    return block.language == "python" or (block.language == "console" and DOCS in page.parents)


def _is_test_file(block: Block) -> bool:
    return not block.skipped and Path(block.title or "").name.startswith("test_")


def pages() -> list[Path]:
    """The pages with something to run."""
    found = sorted(p for p in DOCS.rglob("*.md") if p.name not in SKIPPED_PAGES)
    return [
        page
        for page in [*found, ROOT / "README.md"]
        if any(_runs(page, b) or _is_test_file(b) for b in blocks(page.read_text("utf-8")))
    ]


def _label(path: Path) -> str:
    return str(path.relative_to(ROOT))


@pytest.fixture
def emulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    """One emulator per page, on a thread: the page's event loops come and go."""
    with Emulator() as emu:
        monkeypatch.setenv("TD_API_KEY", emu.apikey)
        monkeypatch.setenv("TD_API_SERVER", emu.url)
        monkeypatch.setenv("TD_WORKFLOW_SERVER", emu.url)
        yield emu


def _run_python(
    block: Block, page: Path, namespace: dict[str, object], loop: asyncio.AbstractEventLoop
) -> None:
    """Run one python block in the page's namespace (top-level ``await`` on ``loop``)."""
    # blank lines before the code make a traceback point at the page's own line numbers
    source = "\n" * (block.line - 1) + block.text
    code = compile(source, str(page), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    if code.co_flags & inspect.CO_COROUTINE:
        loop.run_until_complete(eval(code, namespace))
    else:
        exec(code, namespace)


def _commands(block: Block) -> Iterator[tuple[int, list[str], int]]:
    """The block's ``$ aiotd ...`` commands (a quoted argument may span lines): line
    offset, arguments, and the exit code an ``$ echo $?`` after it shows (else 0)."""
    lines = block.text.splitlines()
    n = 0
    while n < len(lines):
        if not lines[n].startswith("$ aiotd "):
            n += 1
            continue
        start, command = n, lines[n][2:]
        while True:
            try:
                argv = shlex.split(command)[1:]
                break
            except ValueError:  # an open quote: the argument goes on on the next line
                n += 1
                command += "\n" + lines[n]
        n += 1
        expected = 0
        following = [k for k in range(n, len(lines)) if lines[k].startswith("$ ")]
        if following and lines[following[0]] == "$ echo $?":
            expected = int(lines[following[0] + 1])
        yield start, argv, expected


def _run_console(block: Block, page: Path) -> None:
    """Run the block's ``aiotd`` commands in this process; each exits as the page says."""
    for offset, argv, expected in _commands(block):
        if argv[-1:] == ["&"] or argv[:1] in (["emulator"], ["demo"]):
            continue  # a server, or the long demo: other tests run those
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli_main(argv)
        assert code == expected, (
            f"{_label(page)}:{block.line + offset}: `aiotd {shlex.join(argv)}` exited {code}, "
            f"not {expected}\nstdout:\n{out.getvalue()}\nstderr:\n{err.getvalue()}"
        )


def _check_excerpt(block: Block, page: Path) -> None:
    """The block's lines appear, in a row, in the repository file its title names (each run
    of lines compared after removing its common indentation)."""
    shown = textwrap.dedent(block.text).strip("\n").splitlines()
    source = (ROOT / str(block.title)).read_text(encoding="utf-8").splitlines()
    runs = (source[i : i + len(shown)] for i in range(len(source) - len(shown) + 1))
    assert any(textwrap.dedent("\n".join(run)).splitlines() == shown for run in runs), (
        f"{_label(page)}:{block.line}: the excerpt is not in {block.title} as shown"
    )


def _run_pytest(directory: Path, page: Path) -> None:
    """pytest on the page's test files, in a fresh process: every test passes."""
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(directory)],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, f"{_label(page)}: its tests failed\n{run.stdout}\n{run.stderr}"
    assert re.search(r"\d+ passed", run.stdout), run.stdout


def _close_clients(namespace: dict[str, object], loop: asyncio.AbstractEventLoop) -> None:
    """Clients a page leaves open on its loop are closed, as its reader's process would."""
    for value in namespace.values():
        if isinstance(value, aiotd.Client) and not value.closed:
            loop.run_until_complete(value.close())


@pytest.mark.parametrize("page", pages(), ids=_label)
def test_page_runs(
    page: Path, emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    found = list(blocks(page.read_text(encoding="utf-8")))
    monkeypatch.chdir(tmp_path)
    files = [b for b in found if b.title and not b.skipped]
    for block in files:
        if str(block.title).startswith(EXCERPTS_OF):
            _check_excerpt(block, page)
            continue
        target = tmp_path / block.title  # type: ignore[operator]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(block.text, encoding="utf-8")
    namespace: dict[str, object] = {"__name__": "__main__"}
    loop = asyncio.new_event_loop()
    try:
        for block in found:
            if not _runs(page, block):
                continue
            if block.language == "python":
                _run_python(block, page, namespace, loop)
            else:
                _run_console(block, page)
        _close_clients(namespace, loop)
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
    if any(_is_test_file(b) for b in found):
        _run_pytest(tmp_path, page)


def test_the_extractor_reads_fences_markers_and_titles() -> None:
    text = (
        "intro\n\n```python\nx = 1\n```\n\n<!-- not-run -->\n```python\nboom()\n```\n\n"
        '    ```python title="pkg/conftest.py"\n    y = 2\n    ```\n\n```pycon\n>>> 1\n```\n'
    )
    got = list(blocks(text))
    assert [(b.language, b.line, b.skipped, b.title) for b in got] == [
        ("python", 4, False, None),
        ("python", 9, True, None),
        ("python", 13, False, "pkg/conftest.py"),
        ("pycon", 17, False, None),
    ]
    assert got[0].text == "x = 1\n"
    assert got[2].text == "y = 2\n"


def test_an_excerpt_must_be_in_its_file() -> None:
    page = ROOT / "docs" / "index.md"
    shown = "def create_app(client_factory: Callable[[], aiotd.Client] = aiotd.Client) -> FastAPI:"
    (good,) = blocks(f'```python title="examples/fastapi_app.py"\n{shown}\n```\n')
    _check_excerpt(good, page)
    (bad,) = blocks('```python title="examples/fastapi_app.py"\ndef create_app(): ...\n```\n')
    with pytest.raises(AssertionError, match="not in examples/fastapi_app.py"):
        _check_excerpt(bad, page)


def test_console_commands_span_lines_and_take_the_shown_exit_code() -> None:
    text = (
        "```console\n$ aiotd query -d db '-- emulator: status=error\nselect 1'\n"
        "job 1 issued on db\n$ aiotd jobs wait 1\njob 1 error\n$ echo $?\n1\n```\n"
    )
    (block,) = blocks(text)
    assert list(_commands(block)) == [
        (0, ["query", "-d", "db", "-- emulator: status=error\nselect 1"], 0),
        (3, ["jobs", "wait", "1"], 1),
    ]
