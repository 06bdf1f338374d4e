"""Where to connect: flags, then the environment, then td.conf, then the site."""

from __future__ import annotations

import argparse
import configparser
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import aiotd
from aiotd._config import SITES, is_loopback
from aiotd.cli._common import UsageError

__all__ = ["Settings", "make_client", "read_td_conf", "resolve_settings", "td_conf_path"]


def td_conf_path(environ: Mapping[str, str]) -> Path:
    """``$TD_CONFIG_PATH``, else ``~/.td/td.conf`` with ``~`` from ``$HOME``."""
    explicit = environ.get("TD_CONFIG_PATH")
    if explicit:
        return Path(explicit)
    home = environ.get("HOME") or str(Path.home())
    return Path(home) / ".td" / "td.conf"


def read_td_conf(path: Path) -> dict[str, str]:
    """The ``[account]`` section of the td command's config file; ``{}`` when there is none.

    The td command writes its keys indented under the section header, which configparser
    would read as continuation lines: indentation is dropped first.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string("\n".join(line.strip() for line in text.splitlines()), str(path))
    except configparser.Error as exc:
        raise UsageError(f"{path} is not a valid td config file: {exc.message}") from None
    if not parser.has_section("account"):
        return {}
    return {key: value.strip() for key, value in parser.items("account") if value.strip()}


def _workflow_for(core: str) -> str | None:
    """The workflow endpoint that goes with a core endpoint of a known site (or a local one)."""
    url = core if "://" in core else "https://" + core
    host = urlsplit(url).hostname or ""
    for core_host, workflow_host in SITES.values():
        if host == core_host:
            return workflow_host
    if is_loopback(url):
        # a local server (the emulator) serves both APIs on one address
        return core
    return None


@dataclass(frozen=True)
class Settings:
    """Where and how to connect; ``repr`` leaves the key out."""

    apikey: str | None
    endpoint: str | None
    workflow_endpoint: str | None
    site: str | None

    def __repr__(self) -> str:
        return (
            f"Settings(endpoint={self.endpoint!r}, workflow_endpoint={self.workflow_endpoint!r}, "
            f"site={self.site!r})"
        )


def resolve_settings(
    args: argparse.Namespace, environ: Mapping[str, str] | None = None
) -> Settings:
    """Flags first, then ``TD_API_KEY``/``TD_API_SERVER``/``TD_WORKFLOW_SERVER``, then
    td.conf (``[account] apikey``, ``endpoint``), then the site."""
    env = os.environ if environ is None else environ
    conf = read_td_conf(td_conf_path(env))
    apikey = args.apikey or env.get("TD_API_KEY") or conf.get("apikey")
    if not apikey:
        raise UsageError(
            "no API key: pass --apikey, set TD_API_KEY, or write it in ~/.td/td.conf ([account])"
        )
    endpoint = args.endpoint or env.get("TD_API_SERVER") or conf.get("endpoint")
    workflow = args.workflow_endpoint or env.get("TD_WORKFLOW_SERVER")
    if workflow is None and endpoint is not None:
        workflow = _workflow_for(endpoint)
    return Settings(apikey, endpoint, workflow, args.site)


def make_client(args: argparse.Namespace) -> aiotd.Client:
    """A client configured from the command line, the environment and td.conf."""
    settings = resolve_settings(args)
    return aiotd.Client(
        settings.apikey,
        site=settings.site,
        endpoint=settings.endpoint,
        workflow_endpoint=settings.workflow_endpoint,
    )
