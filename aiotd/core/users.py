"""``td.users``: users of the account, their API keys, and authentication."""

from __future__ import annotations

import builtins
from typing import TYPE_CHECKING

from aiotd._http import segment
from aiotd.core._common import call_filled, required
from aiotd.models.core import (
    ApiKeyAdded,
    ApiKeyList,
    AuthenticatedUser,
    User,
    UserAdded,
    UserList,
    UserRef,
)

if TYPE_CHECKING:
    from aiotd._client import Client

__all__ = ["Users"]


class Users:
    """Users and API keys of the core API: ``/v3/user/...`` (v3-api.md §1.10)."""

    def __init__(self, client: Client) -> None:
        self._client = client

    async def list(self) -> builtins.list[User]:
        """Every user of the account."""
        return (await self._client._call("GET", "/v3/user/list", UserList)).users

    async def add(
        self,
        name: str,
        *,
        email: str | None = None,
        password: str | None = None,
        organization: str | None = None,
    ) -> UserAdded:
        """Add a user; sent once (a repeated add answers 409)."""
        form = {"email": email, "password": password, "organization": organization}
        path = f"/v3/user/add/{segment(name)}"
        return await call_filled(self._client, "POST", path, UserAdded, {"name": name}, data=form)

    async def remove(self, user: str) -> UserRef:
        """Remove a user (by name or email); sent once (a repeat is 404)."""
        path = f"/v3/user/remove/{segment(user)}"
        return await call_filled(self._client, "POST", path, UserRef, {"user": user})

    async def list_apikeys(self, user: str) -> ApiKeyList:
        """The user's API keys (kept out of ``repr``)."""
        path = f"/v3/user/apikey/list/{segment(user)}"
        return await self._client._call("GET", path, ApiKeyList)

    async def add_apikey(self, user: str) -> ApiKeyAdded:
        """Create a new API key for the user; sent once (each call makes a key)."""
        path = f"/v3/user/apikey/add/{segment(user)}"
        return await self._client._call("POST", path, ApiKeyAdded)

    async def remove_apikey(self, user: str, apikey: str) -> UserRef:
        """Revoke one of the user's keys; sent once (a repeat is 404)."""
        form = {"apikey": required(apikey, "apikey")}
        path = f"/v3/user/apikey/remove/{segment(user)}"
        return await call_filled(self._client, "POST", path, UserRef, {"user": user}, data=form)

    async def authenticate(self, user: str, password: str) -> AuthenticatedUser:
        """Exchange a user name (or email) and password for an API key.

        Changes nothing on TD, so it is retried like a read. ``name`` is ``user`` as given
        when TD's answer leaves it out (td-client-python's fixture is ``{"apikey"}`` alone).
        """
        form = {"user": required(user, "user"), "password": required(password, "password")}
        return await call_filled(
            self._client,
            "POST",
            "/v3/user/authenticate",
            AuthenticatedUser,
            {"name": user},
            data=form,
            idempotent=True,
        )
