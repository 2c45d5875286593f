"""Console sign-in sessions, kept in memory: the cookie holds a random id, never the token.

The id is 256 random bits; the table is keyed by its SHA-256, so neither the cookie value nor
the token is a key anything could be read back from. The API token stays on the server side
(the console's pages call the management commands with it, under the same access checks as
any client). Sessions end after ``ttl_s``, at sign-out, or when the engine stops; the table
is capped, the oldest session going first.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

DEFAULT_TTL_S = 8 * 3600
MAX_SESSIONS = 1000


@dataclass(frozen=True)
class ConsoleSession:
    token: str
    role: str
    brand: str | None
    csrf: str  # the sign-out form's hidden field must match it
    expires_ms: int


def _key(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("utf-8", "surrogatepass")).hexdigest()


def same(a: str | None, b: str | None) -> bool:
    """Constant-time equality of two form or cookie values (either may be missing)."""
    return bool(a) and bool(b) and hmac.compare_digest(str(a).encode(), str(b).encode())


class Sessions:
    def __init__(self, now_ms: Callable[[], int], ttl_s: float = DEFAULT_TTL_S, cap: int = MAX_SESSIONS) -> None:
        self.now_ms, self.ttl_ms, self.cap = now_ms, int(ttl_s * 1000), cap
        self._sessions: OrderedDict[str, ConsoleSession] = OrderedDict()
        self._lock = threading.Lock()

    def create(self, token: str, role: str, brand: str | None) -> str:
        """A new session; returns its id (the cookie's value)."""
        session_id = secrets.token_urlsafe(32)
        session = ConsoleSession(token, role, brand, secrets.token_urlsafe(24), self.now_ms() + self.ttl_ms)
        with self._lock:
            self._sessions[_key(session_id)] = session
            while len(self._sessions) > self.cap:
                self._sessions.popitem(last=False)
        return session_id

    def get(self, session_id: str | None) -> ConsoleSession | None:
        if not session_id:
            return None
        key = _key(session_id)
        with self._lock:
            session = self._sessions.get(key)
            if session is not None and session.expires_ms <= self.now_ms():
                del self._sessions[key]
                return None
        return session

    def drop(self, session_id: str | None) -> None:
        if session_id:
            with self._lock:
                self._sessions.pop(_key(session_id), None)
