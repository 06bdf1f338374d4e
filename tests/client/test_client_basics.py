"""The first two endpoints end to end, configuration and the client's lifecycle."""

from __future__ import annotations

import logging

import pytest

import aiotd
from aiotd import errors
from aiotd.testing import Emulator


async def test_server_status_and_account() -> None:
    async with Emulator() as emu, aiotd.Client(emu.apikey, endpoint=emu.url) as td:
        assert await td.server_status() == "ok"
        account = await td.account()
        assert isinstance(account, aiotd.models.Account)
        assert account.id
        assert account.created_at_dt is not None
        assert td.stats.groups["system/server_status"].requests == 1
        assert td.stats.groups["account/show"].requests == 1


async def test_wrong_key_gets_auth_error_with_td_message(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "1/" + "f" * 40
    async with Emulator() as emu, aiotd.Client(wrong, endpoint=emu.url) as td:
        with pytest.raises(errors.AuthError) as info:
            await td.account()
    assert info.value.status == 401
    assert info.value.message
    assert wrong not in str(info.value)
    assert wrong not in repr(info.value)
    assert all(wrong not in r.getMessage() for r in caplog.records)


def test_config_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TD_API_KEY", "1/" + "a" * 40)
    monkeypatch.setenv("TD_API_SERVER", "http://127.0.0.1:9")
    monkeypatch.delenv("TD_WORKFLOW_SERVER", raising=False)
    td = aiotd.Client(site="eu01")
    assert td.endpoint == "http://127.0.0.1:9"
    assert td.workflow_endpoint == "https://api-workflow.eu01.treasuredata.com"
    assert "a" * 40 not in repr(td)
    assert "127.0.0.1:9" in repr(td)


def test_missing_key_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TD_API_KEY", raising=False)
    with pytest.raises(ValueError, match="TD_API_KEY"):
        aiotd.Client()


def test_plain_http_to_a_remote_host_warns(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    aiotd.Client("k", endpoint="http://api.example.com", workflow_endpoint="http://127.0.0.1:1")
    messages = [r.getMessage() for r in caplog.records]
    assert any("api.example.com" in m and "clear" in m for m in messages)
    assert not any("127.0.0.1" in m for m in messages)


def test_turning_tls_verification_off_warns(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    aiotd.Client("k", verify_ssl=False)
    assert any("verification" in r.getMessage() for r in caplog.records)
