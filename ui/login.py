"""Logins (--auth): every failed attempt is slowed down, and after repeated failures the login, and the address
the attempts came from, are locked out for a while, so passwords cannot be guessed at speed, one login's or many."""
from __future__ import annotations

import asyncio
import hmac
import logging
import os
import time
from collections import defaultdict, deque
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

logger = logging.getLogger("gator.login")

# the address of the client whose login is being checked (Gradio's `auth=` callable is given no request)
_client_address: ContextVar[str | None] = ContextVar("gator_login_client_address", default=None)


def set_client_address(address: str | None) -> Token:
    """Make `address` the one `LoginGuard.check` counts a failure against (a login checked outside /login, as
    HTTP Basic auth on /sdapi/v1); hand the token to `reset_client_address` after the check."""
    return _client_address.set(address or "unknown")


def reset_client_address(token: Token) -> None:
    _client_address.reset(token)


class ClientAddress:
    """ASGI middleware: makes the client's address of a /login request known to `LoginGuard.check`. Behind a
    reverse proxy every client has the proxy's address, so they share its count."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or not scope.get("path", "").rstrip("/").endswith("/login"):
            await self.app(scope, receive, send)
            return
        token = set_client_address((scope.get("client") or (None,))[0])
        try:
            await self.app(scope, receive, send)
        finally:
            reset_client_address(token)


@dataclass
class LoginGuard:
    """Checks user:password pairs; `check` is the async callable Gradio's `auth=` takes."""

    pairs: list[tuple[str, str]]
    max_failures: int = 5  # GATOR_LOGIN_MAX_FAILURES: failures for one login within `window_s` that lock it
    max_address_failures: int = 20  # GATOR_LOGIN_MAX_ADDRESS_FAILURES: the same from one address, any logins
    window_s: float = 300.0
    lockout_s: float = 60.0  # GATOR_LOGIN_LOCKOUT_S
    delay_s: float = 1.0  # GATOR_LOGIN_DELAY_S: every failed attempt answers this much later
    _failures: dict[str, deque[float]] = field(default_factory=lambda: defaultdict(deque))
    _locked_until: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_env(cls, pairs: list[tuple[str, str]]) -> "LoginGuard":
        env = os.environ
        return cls(pairs, max_failures=int(env.get("GATOR_LOGIN_MAX_FAILURES", cls.max_failures)),
                   max_address_failures=int(env.get("GATOR_LOGIN_MAX_ADDRESS_FAILURES", cls.max_address_failures)),
                   lockout_s=float(env.get("GATOR_LOGIN_LOCKOUT_S", cls.lockout_s)),
                   delay_s=float(env.get("GATOR_LOGIN_DELAY_S", cls.delay_s)))

    def locked(self, username: str, address: str | None = None) -> bool:
        """True while the login, or the address the attempt comes from, is locked out."""
        now = time.monotonic()
        return any(now < self._locked_until.get(key, 0.0) for key in _keys(username, address))

    async def check(self, username: str, password: str) -> bool:
        """True for a right pair of a login that is not locked out, from an address that is not; a failure
        answers after `delay_s`."""
        address = _client_address.get()
        if self.locked(username, address):  # refused without a look at the password, and not counted again
            await asyncio.sleep(self.delay_s)
            return False
        if self._matches(username, password):
            self._failures.pop(_keys(username)[0], None)  # an address's count stays: one good login resets nothing
            return True
        self._record_failure(username, address)
        await asyncio.sleep(self.delay_s)
        return False

    def _matches(self, username: str, password: str) -> bool:
        found = False
        for user, secret in self.pairs:  # compare every pair in constant time: no early exit
            found |= hmac.compare_digest(user.encode(), username.encode()) \
                & hmac.compare_digest(secret.encode(), password.encode())
        return found

    def _record_failure(self, username: str, address: str | None) -> None:
        now = time.monotonic()
        self._forget_old(now)
        for key, limit in zip(_keys(username, address), (self.max_failures, self.max_address_failures)):
            failures = self._failures[key]
            failures.append(now)
            while failures and failures[0] < now - self.window_s:
                failures.popleft()
            if limit and len(failures) >= limit:  # a limit of 0 is off
                self._locked_until[key] = now + self.lockout_s
                failures.clear()
                who = f"Login for {username[:64]!r}" if key.startswith("login:") else f"Logins from {address}"
                logger.warning("%s locked for %g s after %d failed attempts.", who, self.lockout_s, limit)

    def _forget_old(self, now: float) -> None:
        """Drop counts older than the window and lock-outs that ended (names and addresses come and go)."""
        for key in [k for k, times in self._failures.items() if not times or times[-1] < now - self.window_s]:
            del self._failures[key]
        for key in [k for k, until in self._locked_until.items() if until <= now]:
            del self._locked_until[key]


def _keys(username: str, address: str | None = None) -> list[str]:
    """The counts an attempt goes into: its login's, and its address's when known."""
    return [f"login:{username}", *([f"address:{address}"] if address else [])]


def not_an_admin(username: str | None, admins: Iterable[str] | None) -> bool:
    """Whether this visitor may not change what every login shares (downloads, styles, checkpoints, the managed
    ComfyUI): with logins (--auth) only the admins (--admin) may; without logins, whoever reaches the app may."""
    return bool(username) and username not in (admins or ())
