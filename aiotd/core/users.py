"""``td.users``: users of the account, their API keys, and authentication."""

from __future__ import annotations

import builtins

from aiotd._http import segment
from aiotd._paging import Pager, one_page
from aiotd._resource import CoreResource
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

__all__ = ["Users"]


class Users(CoreResource):
    """Users and API keys of the core API: ``/v3/user/...`` (v3-api.md §1.10)."""

    def list(self) -> Pager[User]:
        """Every user of the account: ``await`` or ``async for`` (one response)."""

        async def fetch() -> builtins.list[User]:
            return (await self._call("GET", "/v3/user/list", UserList)).users

        return one_page(fetch)

    async def create(
        self,
        name: str,
        *,
        email: str | None = None,
        password: str | None = None,
        organization: str | None = None,
    ) -> UserAdded:
        """Create a user (TD's ``user/add``); sent once (a repeated create answers 409)."""
        form = {"email": email, "password": password, "organization": organization}
        path = f"/v3/user/add/{segment(name)}"
        return await call_filled(self, "POST", path, UserAdded, {"name": name}, data=form)

    async def delete(self, user: str) -> UserRef:
        """Delete a user, by name or email (TD's ``user/remove``); sent once (a repeat is 404)."""
        path = f"/v3/user/remove/{segment(user)}"
        return await call_filled(self, "POST", path, UserRef, {"user": user})

    async def list_apikeys(self, user: str) -> ApiKeyList:
        """The user's API keys (kept out of ``repr``)."""
        path = f"/v3/user/apikey/list/{segment(user)}"
        return await self._call("GET", path, ApiKeyList)

    async def create_apikey(self, user: str) -> ApiKeyAdded:
        """Create a new API key for the user (``user/apikey/add``); sent once (each call makes
        a key)."""
        path = f"/v3/user/apikey/add/{segment(user)}"
        return await self._call("POST", path, ApiKeyAdded)

    async def delete_apikey(self, user: str, apikey: str) -> UserRef:
        """Revoke one of the user's keys (``user/apikey/remove``); sent once (a repeat is 404)."""
        form = {"apikey": required(apikey, "apikey")}
        path = f"/v3/user/apikey/remove/{segment(user)}"
        return await call_filled(self, "POST", path, UserRef, {"user": user}, data=form)

    async def authenticate(self, user: str, *, password: str) -> AuthenticatedUser:
        """Exchange a user name (or email) and password for an API key.

        Changes nothing on TD, so it is retried like a read. ``name`` is ``user`` as given
        when TD's answer leaves it out (td-client-python's fixture is ``{"apikey"}`` alone).
        """
        form = {"user": required(user, "user"), "password": required(password, "password")}
        return await call_filled(
            self,
            "POST",
            "/v3/user/authenticate",
            AuthenticatedUser,
            {"name": user},
            data=form,
            idempotent=True,
        )
