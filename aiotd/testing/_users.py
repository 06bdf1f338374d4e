"""``/v3/user``: the account's users and their API keys (reference/v3-api.md §1.10)."""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from aiotd.testing._common import APIError, form_params, iso_z, json_response

__all__ = ["User", "Users", "new_apikey"]


def new_apikey(account: int = 1) -> str:
    """A key shaped like TD's: ``<account>/<40 hex>``."""
    return f"{account}/{secrets.token_hex(20)}"


@dataclass
class User:
    """An account user with its API keys."""

    id: int
    name: str
    email: str
    password: str
    apikeys: list[str]
    created_at: float
    administrator: bool = False
    account_owner: bool = False

    def to_json(self) -> dict[str, Any]:
        first, _, last = self.name.partition(" ")
        return {
            "id": self.id,
            "first_name": first or None,
            "last_name": last or None,
            "email": self.email,
            "phone": None,
            "gravatar_url": "https://secure.gravatar.com/avatar/"
            + hashlib.md5(self.email.encode()).hexdigest()
            + "?size=80",
            "administrator": self.administrator,
            "created_at": iso_z(self.created_at),
            "updated_at": iso_z(self.created_at),
            "name": self.name,
            "account_owner": self.account_owner,
            "organization": None,
            "roles": [],
        }


class Users:
    """The account's users by name, the owner first. ``keys`` is the set of API keys the
    emulator accepts: adding or removing a user's key changes it."""

    def __init__(self, keys: set[str], owner_apikey: str, created_at: float) -> None:
        self.keys = keys
        owner = User(
            id=1,
            name="Emulator User",
            email="emulator@example.com",
            password="password",
            apikeys=[owner_apikey],
            created_at=created_at,
            administrator=True,
            account_owner=True,
        )
        self.by_name: dict[str, User] = {owner.name: owner}
        self._next_id = 2

    def add_routes(self, app: web.Application) -> None:
        """Register the ``/v3/user/...`` routes on ``app``."""
        r = app.router
        r.add_get("/v3/user/list", self.list_users)
        r.add_post("/v3/user/add/{name}", self.add)
        r.add_post("/v3/user/remove/{name}", self.remove)
        r.add_get("/v3/user/apikey/list/{name}", self.apikey_list)
        r.add_post("/v3/user/apikey/add/{name}", self.apikey_add)
        r.add_post("/v3/user/apikey/remove/{name}", self.apikey_remove)
        r.add_post("/v3/user/authenticate", self.authenticate)

    def _user(self, name: str) -> User:
        user = self.by_name.get(name)
        if user is None:
            user = next((u for u in self.by_name.values() if u.email == name), None)
        if user is None:
            raise APIError(404, f"User '{name}' does not exist")
        return user

    async def list_users(self, request: web.Request) -> web.Response:
        return json_response({"users": [u.to_json() for u in self.by_name.values()]})

    async def add(self, request: web.Request) -> web.Response:
        params = await form_params(request)
        name = request.match_info["name"]
        if name in self.by_name:
            raise APIError(409, f"User {name} already exists")
        key = new_apikey()
        self.by_name[name] = User(
            id=self._next_id,
            name=name,
            email=params.get("email") or f"{name}@example.com",
            password=params.get("password", ""),
            apikeys=[key],
            created_at=time.time(),
        )
        self._next_id += 1
        self.keys.add(key)
        return json_response({"name": name})

    async def remove(self, request: web.Request) -> web.Response:
        user = self._user(request.match_info["name"])
        if user.account_owner:
            raise APIError(403, "The account owner cannot be removed")
        del self.by_name[user.name]
        self.keys.difference_update(user.apikeys)
        return json_response({"user": user.name})

    async def apikey_list(self, request: web.Request) -> web.Response:
        return json_response({"apikeys": list(self._user(request.match_info["name"]).apikeys)})

    async def apikey_add(self, request: web.Request) -> web.Response:
        user = self._user(request.match_info["name"])
        key = new_apikey()
        user.apikeys.append(key)
        self.keys.add(key)
        return json_response({"apikey": key})

    async def apikey_remove(self, request: web.Request) -> web.Response:
        params = await form_params(request)
        user = self._user(request.match_info["name"])
        key = params.get("apikey", "")
        if key not in user.apikeys:
            raise APIError(404, "API key does not exist")
        user.apikeys.remove(key)
        self.keys.discard(key)
        return json_response({"user": user.name})

    async def authenticate(self, request: web.Request) -> web.Response:
        params = await form_params(request)
        name, password = params.get("user", ""), params.get("password", "")
        user = next((u for u in self.by_name.values() if name in (u.name, u.email)), None)
        if user is None or user.password != password or not user.apikeys:
            raise APIError(400, "Authentication failed: invalid user or password")
        return json_response({"name": user.name, "apikey": user.apikeys[0]})
