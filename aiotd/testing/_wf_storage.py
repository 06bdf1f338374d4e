"""Object storage on a port of its own, where the emulator's pre-signed S3 URLs point
(reference §2.1 archive downloads, §2.6 direct log URLs)."""

from __future__ import annotations

import calendar
import collections
import hashlib
import hmac
import os
import time
import uuid
from collections.abc import Callable
from xml.sax.saxutils import escape

from aiohttp import web

__all__ = ["StorageOrigin"]

_BUCKET = "aiotd-emulator"
_SIGNATURE_PARAMS = (
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    "X-Amz-Signature",
)
_AMZ_DATE = "%Y%m%dT%H%M%SZ"


def _s3_error(status: int, code: str, message: str, *extra: tuple[str, str]) -> web.Response:
    """An error as S3 writes it: an XML ``<Error>`` document."""
    fields = "".join(f"<{name}>{escape(value)}</{name}>" for name, value in extra)
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{escape(message)}</Message>{fields}"
        f"<RequestId>{uuid.uuid4().hex[:16].upper()}</RequestId></Error>"
    )
    return web.Response(status=status, text=body, content_type="application/xml")


class StorageOrigin:
    """Object storage on a port of its own, where TD's pre-signed S3 URLs point.

    Its URLs carry an expiring signature in their query, as ``generatePresignedUrl`` makes
    them (digdag S3Storage.getDirectDownloadHandle: 10 minutes by default). Like S3 it refuses
    a request that also sends an Authorization header (400 InvalidArgument, "Only one auth
    mechanism allowed"), so a client that forwards its API key to storage fails here as it
    would on TD. ``statuses`` counts its answers by HTTP status.
    """

    def __init__(self, clock: Callable[[], float], expiry: float) -> None:
        self._clock = clock
        self._expiry = int(expiry)
        self._secret = os.urandom(32)
        self._objects: dict[str, bytes] = {}
        self._runner: web.AppRunner | None = None
        self.port: int | None = None
        self.statuses: collections.Counter[int] = collections.Counter()

    async def start(self, host: str) -> None:
        """Listen on a free port of ``host``."""
        if self._runner is not None:
            return
        app = web.Application()
        app.router.add_get(f"/{_BUCKET}/{{key}}", self._get)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, host, 0, reuse_address=True)
        await site.start()
        self._runner = runner
        self.port = runner.addresses[0][1]

    async def close(self) -> None:
        """Stop listening; idempotent."""
        runner, self._runner = self._runner, None
        self.port = None
        if runner is not None:
            await runner.cleanup()

    def put(self, data: bytes) -> str:
        """Store an object; its key."""
        key = uuid.uuid4().hex
        self._objects[key] = data
        return key

    def url(self, request: web.Request, key: str) -> str | None:
        """A pre-signed URL of ``key`` on the host ``request`` reached; None when not serving."""
        if self.port is None:
            return None
        path = f"/{_BUCKET}/{key}"
        date = time.strftime(_AMZ_DATE, time.gmtime(self._clock()))
        expires = str(self._expiry)
        query = {
            "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
            "X-Amz-Credential": f"AIOTDEMULATOR/{date[:8]}/us-east-1/s3/aws4_request",
            "X-Amz-Date": date,
            "X-Amz-Expires": expires,
            "X-Amz-SignedHeaders": "host",
            "X-Amz-Signature": self._sign(path, date, expires),
        }
        return str(request.url.with_port(self.port).with_path(path).with_query(query))

    def _sign(self, path: str, date: str, expires: str) -> str:
        message = f"{path}\n{date}\n{expires}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    async def _get(self, request: web.Request) -> web.Response:
        response = self._answer(request)
        self.statuses[response.status] += 1
        return response

    def _answer(self, request: web.Request) -> web.Response:
        if "Authorization" in request.headers:
            # S3 takes one credential: the URL's signature or the header, never both.
            return _s3_error(
                400,
                "InvalidArgument",
                "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, "
                "Signature query string parameter or the Authorization header should be "
                "specified",
                ("ArgumentName", "Authorization"),
            )
        query = request.query
        if any(name not in query for name in _SIGNATURE_PARAMS):
            return _s3_error(
                403,
                "AccessDenied",
                "Query-string authentication version 4 requires the X-Amz-Algorithm, "
                "X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and "
                "X-Amz-Expires parameters.",
            )
        date, expires = query["X-Amz-Date"], query["X-Amz-Expires"]
        expected = self._sign(request.path, date, expires)
        if not hmac.compare_digest(expected, query["X-Amz-Signature"]):
            return _s3_error(
                403,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you "
                "provided. Check your key and signing method.",
            )
        signed_at = calendar.timegm(time.strptime(date, _AMZ_DATE))
        if self._clock() > signed_at + int(expires):
            return _s3_error(403, "AccessDenied", "Request has expired", ("X-Amz-Expires", expires))
        data = self._objects.get(request.match_info["key"])
        if data is None:
            return _s3_error(404, "NoSuchKey", "The specified key does not exist.")
        return web.Response(body=data, content_type="application/gzip")
