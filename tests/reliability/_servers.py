"""Hostile servers written as raw asyncio sockets, and a coarse peak-RSS probe (Linux)."""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

__all__ = ["Connection", "raw_server", "read_head", "rss_growth"]

Connection = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def raw_server(handle: Connection) -> AsyncIterator[str]:
    """``http://127.0.0.1:PORT`` of a server whose every connection ``handle`` answers."""

    async def guarded(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await asyncio.wait_for(handle(reader, writer), 20)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.TimeoutError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(guarded, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()


async def read_head(reader: asyncio.StreamReader) -> bytes:
    """The request line and headers of one request (its body, if any, is left unread)."""
    return await reader.readuntil(b"\r\n\r\n")


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LookupError(field)


def _trim() -> None:
    """Give freed heap back to the system (glibc), so that memory freed by earlier work and
    kept by the allocator cannot hide the growth to measure."""
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name else None
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)


def _start() -> tuple[int, bool]:
    """The resident memory now (KiB), and whether the kernel's peak could be reset to it."""
    if not Path("/proc/self/status").exists():
        pytest.skip("needs /proc to read the process's resident memory")
    gc.collect()
    _trim()
    base = _status_kib("VmRSS")
    try:
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    except OSError:
        return base, False
    return base, True


async def rss_growth(awaitable: Awaitable[Any]) -> tuple[int, Any]:
    """How far resident memory rose above its level at the start while ``awaitable`` ran
    (bytes), and its result or the exception it raised.

    The peak is the kernel's VmHWM, reset first through ``/proc/self/clear_refs``; where that
    cannot be written, VmRSS sampled every 2 ms.
    """
    base, exact = _start()
    samples = [base]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.002):
            samples.append(_status_kib("VmRSS"))

    sampler = None if exact else threading.Thread(target=sample, daemon=True)
    if sampler is not None:
        sampler.start()
    try:
        result: Any = await awaitable
    except Exception as exc:
        result = exc
    finally:
        stop.set()
        if sampler is not None:
            sampler.join()
    peak = _status_kib("VmHWM") if exact else max(samples)
    return (peak - base) * 1024, result
