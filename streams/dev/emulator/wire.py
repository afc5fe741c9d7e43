"""Request bodies and responses as the emulated APIs read and write them (size limits, gzip, JSON)."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping
from typing import Any

import orjson
from aiohttp import web

from streams.dev.emulator.state import DestinationStats

_GZIP_MAGIC = b"\x1f\x8b"
JSON_CT = "application/json"

ErrorResponse = Callable[..., web.Response]
"""An API's own error shape: ``(stats, status, error, message) -> response``."""


class BodyTooLarge(Exception):
    pass


class BadBody(Exception):
    pass


class ClientGone(Exception):
    pass


class UnsupportedEncoding(BadBody):
    """A Content-Encoding the API does not take: about the request, never one record."""


_ct_cache: dict[str, bool] = {}


def is_json_content_type(value: str | None) -> bool:
    """``application/json`` in any case, optionally with a UTF-8 charset."""
    if not value:
        return False
    cached = _ct_cache.get(value)
    if cached is not None:
        return cached
    media, *params = value.split(";")
    ok = media.strip().lower() == JSON_CT
    for param in params:
        key, _, val = param.partition("=")
        if key.strip().lower() == "charset" and val.strip().strip('"').lower() not in ("utf-8", "utf8"):
            ok = False
    if len(_ct_cache) < 256:
        _ct_cache[value] = ok
    return ok


def header_safe(text: str, limit: int = 400) -> str:
    """Header values must be single-line latin-1; debug text may quote client input."""
    text = text.replace("\r", " ").replace("\n", " ")
    text = text.encode("ascii", "backslashreplace").decode("ascii")
    return text if len(text) <= limit else text[: limit - 3] + "..."


async def read_body(
    request: web.Request,
    limit: int,
    decompresses: bool,
    *,
    gzip_ok: bool = True,
    limit_of: str = "json",
    inflate_factor: int = 10,
) -> bytes:
    """The request body, gunzipped if needed; raises BodyTooLarge / BadBody / UnsupportedEncoding.

    ``gzip_ok``: whether this API accepts ``Content-Encoding: gzip`` at all (only where its document
    allows it, or an emulator option says so). ``limit_of``: which size ``limit`` bounds when the body
    is gzipped: ``"json"`` the inflated payload, ``"wire"`` the bytes sent (the inflated payload then
    bounded by ``inflate_factor`` times the limit, against gzip bombs).
    """
    encoding = (request.headers.get("Content-Encoding") or "").strip().lower()
    if encoding not in ("identity", ""):
        if encoding != "gzip":
            raise UnsupportedEncoding(f"unsupported Content-Encoding {encoding!r} (the API takes plain application/json)")
        if not gzip_ok:
            raise UnsupportedEncoding("Content-Encoding 'gzip' is not accepted: the API documents plain application/json bodies")
    # the bytes sent never exceed the limit under either reading (gzip only ever grows
    # incompressible data, which JSON is not)
    wire_limit = limit
    length = request.content_length
    if length is not None and length > wire_limit:
        raise BodyTooLarge(f"payload too large: {length} bytes > {limit}")
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise BodyTooLarge(f"payload too large: > {limit} bytes") from exc
    except ConnectionError as exc:
        raise ClientGone from exc
    if len(body) > wire_limit:
        raise BodyTooLarge(f"payload too large: {len(body)} bytes > {limit}")
    if encoding == "gzip":
        inflated_limit = limit * inflate_factor if limit_of == "wire" else limit
        if body[:2] == _GZIP_MAGIC:
            body = gunzip(body, inflated_limit)
        elif not decompresses:
            raise BadBody("Content-Encoding is gzip but the body is not gzip data")
        elif len(body) > inflated_limit:  # inflated by the server already
            raise BodyTooLarge(f"payload too large: decompressed size > {inflated_limit} bytes")
    return body


def gunzip(body: bytes, limit: int) -> bytes:
    inflater = zlib.decompressobj(wbits=31)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise BadBody(f"invalid gzip body: {exc}") from exc
    if len(out) > limit or inflater.unconsumed_tail:
        raise BodyTooLarge(f"payload too large: decompressed size > {limit} bytes")
    if not inflater.eof:
        raise BadBody("invalid gzip body: truncated")
    return out


def json_response(status: int, data: Any, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(data), content_type=JSON_CT, headers=headers)


def client_gone(st: DestinationStats) -> web.StreamResponse:
    st.client_disconnects += 1
    return web.Response(status=499)  # never delivered: the connection is gone


async def json_body(
    request: web.Request, st: DestinationStats, error: ErrorResponse, limit: int, decompresses: bool, gzip_ok: bool = True
) -> Any:
    """The request's JSON document, or the error response (Audiohook and activation share the rules;
    a Content-Encoding the API does not take is 415, as HTTP has it)."""
    if not is_json_content_type(request.headers.get("Content-Type")):
        ct = request.headers.get("Content-Type")
        return error(st, 400, "invalid_content_type", f"Content-Type must be application/json, got {ct!r}")
    try:
        body = await read_body(request, limit, decompresses, gzip_ok=gzip_ok)
    except ClientGone:
        return client_gone(st)
    except BodyTooLarge as exc:
        return error(st, 413, "payload_too_large", str(exc))
    except UnsupportedEncoding as exc:
        return error(st, 415, "unsupported_content_encoding", str(exc))
    except BadBody as exc:
        return error(st, 400, "invalid_body", str(exc))
    st.bytes_received += len(body)
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return error(st, 400, "invalid_json", str(exc))
