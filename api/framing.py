"""One management-API frame in, one reply frame out.

A request is a msgpack map, or a JSON object when the frame's first byte is ``{`` (the reply
then is JSON too). Everything a caller can get wrong about the frame itself — size, encoding,
shape, the types of ``cmd``/``params``/``token`` — is a ``BadRequest`` with a text naming the
problem, so the server can answer it and go on.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

import msgpack

from brokerflow.errors import BadRequest

log = logging.getLogger(__name__)


def wants_json(frame: bytes) -> bool:
    """Whether the caller speaks JSON: decided by the first byte alone, so even a frame that
    cannot be decoded gets its error in the caller's encoding."""
    return frame[:1] == b"{"


def _decode_json(frame: bytes) -> Any:
    try:
        return json.loads(frame.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise BadRequest(f"frame is not UTF-8 JSON: {exc.reason} at byte {exc.start}") from None
    except json.JSONDecodeError as exc:
        raise BadRequest(f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise BadRequest("invalid JSON: nested too deeply") from None


def _decode_msgpack(frame: bytes) -> Any:
    try:
        return msgpack.unpackb(frame, raw=False)
    except msgpack.ExtraData:
        raise BadRequest("invalid msgpack: extra bytes after the request map") from None
    except (ValueError, TypeError, msgpack.UnpackException, RecursionError) as exc:
        # ValueError covers truncated data, bad UTF-8 and non-string map keys (strict_map_key).
        raise BadRequest(f"frame is neither a JSON object nor valid msgpack: {type(exc).__name__}") from None


def decode_request(frame: bytes, max_bytes: int) -> tuple[dict[str, Any], bool]:
    """``(request, as_json)`` with request ``{"cmd": str, "token": str | None, "params": dict}``.

    A ``null`` or missing ``params`` is ``{}``; a missing or ``null`` token is ``None`` (the
    dispatcher decides whether the command needs one).
    """
    if len(frame) > max_bytes:
        raise BadRequest(f"frame of {len(frame)} bytes exceeds the limit of {max_bytes} bytes")
    if not frame:
        raise BadRequest("empty frame: expected a msgpack map or a JSON object")
    as_json = wants_json(frame)
    request = _decode_json(frame) if as_json else _decode_msgpack(frame)
    if not isinstance(request, Mapping):
        raise BadRequest(f"request must be a map, got {type(request).__name__}")
    cmd = request.get("cmd")
    if cmd is None:
        raise BadRequest("request has no cmd")
    if not isinstance(cmd, str) or not cmd:
        raise BadRequest(f"cmd must be a non-empty string, got {type(cmd).__name__}")
    params = request.get("params")
    if params is None:
        params = {}
    if not isinstance(params, Mapping):
        raise BadRequest(f"params must be a map, got {type(params).__name__}")
    token = request.get("token")
    if token is not None and not isinstance(token, str):
        raise BadRequest(f"token must be a string, got {type(token).__name__}")
    return {"cmd": cmd, "token": token, "params": dict(params)}, as_json


def encode_reply(envelope: Mapping[str, Any], as_json: bool) -> bytes:
    """The reply frame. Values neither codec knows (datetimes, sets, …) are sent as text."""
    if as_json:
        return json.dumps(envelope, default=str, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return msgpack.packb(envelope, use_bin_type=True, default=_msgpack_default)


def _msgpack_default(value: Any) -> Any:
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)
