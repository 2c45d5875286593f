"""One management-API frame in, one reply frame out.

A request is a msgpack map, or a JSON object when the frame's first byte is ``{`` (the reply
then is JSON too). Everything a caller can get wrong about the frame itself — size, encoding,
shape, the types of ``cmd``/``params``/``token`` — is a ``BadRequest`` with a text naming the
problem, so the server can answer it and go on.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Mapping
from typing import Any

import msgpack

from brokerflow.errors import BadRequest

log = logging.getLogger(__name__)


def wants_json(frame: bytes) -> bool:
    """Whether the caller speaks JSON: decided by the first byte alone, so even a frame that
    cannot be decoded gets its error in the caller's encoding."""
    return frame[:1] == b"{"


def loads_json(data: bytes | str) -> Any:
    """JSON as both doors accept it, or ``BadRequest`` saying what is wrong with it.

    Beyond ``json.loads``: an int of more than 4300 digits (Python's conversion limit), and
    a ``\\udXXX`` escape that leaves a lone surrogate (a str no UTF-8 encoder, so no store or
    hash, can take) are the caller's mistakes, not server errors.
    """
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        value = json.loads(text, parse_constant=_no_constant)
    except UnicodeDecodeError as exc:
        raise BadRequest(f"not UTF-8 JSON: {exc.reason} at byte {exc.start}") from None
    except json.JSONDecodeError as exc:
        raise BadRequest(f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise BadRequest("invalid JSON: nested too deeply") from None
    except BadRequest:
        raise
    except ValueError:  # int() past sys.get_int_max_str_digits()
        raise BadRequest("invalid JSON: a number has more digits than the 4300 accepted") from None
    if _SURROGATE_ESCAPE.search(text) and not _encodes(value):
        raise BadRequest("invalid JSON: a \\u escape leaves a lone surrogate (not encodable as UTF-8)")
    return value


# Only a \\uD800-\\uDFFF escape can put a surrogate in decoded JSON (UTF-8 input cannot hold one).
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _no_constant(name: str) -> Any:
    """NaN and ±Infinity are not JSON (RFC 8259); Python's reader would take them."""
    raise BadRequest(f"invalid JSON: {name[:9]} is not a JSON number")


def finite(value: Any) -> Any:
    """A copy with NaN and ±Infinity as null: what a JSON reply can say of them."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [finite(v) for v in value]
    return value


def _encodes(value: Any) -> bool:
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except (UnicodeEncodeError, RecursionError):
        return False
    return True


def _decode_json(frame: bytes) -> Any:
    return loads_json(frame)


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
    return {"cmd": cmd, "token": check_token(request.get("token")), "params": dict(params)}, as_json


def check_token(token: Any) -> str | None:
    """The token as the token store can hash it: a str that encodes to UTF-8, or None."""
    if token is not None and not isinstance(token, str):
        raise BadRequest(f"token must be a string, got {type(token).__name__}")
    try:
        if token is not None:
            token.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest("token is not encodable as UTF-8 (it holds a lone surrogate)") from None
    return token


def encode_reply(envelope: Mapping[str, Any], as_json: bool) -> bytes:
    """The reply frame. Values neither codec knows (datetimes, sets, …) are sent as text."""
    if as_json:
        try:
            text = json.dumps(envelope, default=str, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        except ValueError:  # a NaN or infinity somewhere: valid JSON says null (rare, so a second pass)
            text = json.dumps(finite(envelope), default=str, ensure_ascii=False, separators=(",", ":"),
                              allow_nan=False)
        return text.encode("utf-8")
    return msgpack.packb(envelope, use_bin_type=True, default=_msgpack_default)


def _msgpack_default(value: Any) -> Any:
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)
