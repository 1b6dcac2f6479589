"""Logins (--auth): every failed attempt is slowed down, and a user is locked out for a while after repeated
failures, so passwords cannot be guessed at speed."""
from __future__ import annotations

import asyncio
import hmac
import logging
import os
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field

logger = logging.getLogger("gator.login")


@dataclass
class LoginGuard:
    """Checks user:password pairs; `check` is the async callable Gradio's `auth=` takes."""

    pairs: list[tuple[str, str]]
    max_failures: int = 5  # GATOR_LOGIN_MAX_FAILURES: failures within `window_s` that lock a user out
    window_s: float = 300.0
    lockout_s: float = 60.0  # GATOR_LOGIN_LOCKOUT_S
    delay_s: float = 1.0  # GATOR_LOGIN_DELAY_S: every failed attempt answers this much later
    _failures: dict[str, deque[float]] = field(default_factory=lambda: defaultdict(deque))
    _locked_until: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_env(cls, pairs: list[tuple[str, str]]) -> "LoginGuard":
        env = os.environ
        return cls(pairs, max_failures=int(env.get("GATOR_LOGIN_MAX_FAILURES", 5)),
                   lockout_s=float(env.get("GATOR_LOGIN_LOCKOUT_S", 60)),
                   delay_s=float(env.get("GATOR_LOGIN_DELAY_S", 1.0)))

    def locked(self, username: str) -> bool:
        return time.monotonic() < self._locked_until.get(username, 0.0)

    async def check(self, username: str, password: str) -> bool:
        """True for a right pair of a user who is not locked out; a failure answers after `delay_s`."""
        if not self.locked(username) and self._matches(username, password):
            self._failures.pop(username, None)
            return True
        self._record_failure(username)
        await asyncio.sleep(self.delay_s)
        return False

    def _matches(self, username: str, password: str) -> bool:
        found = False
        for user, secret in self.pairs:  # compare every pair in constant time: no early exit
            found |= hmac.compare_digest(user.encode(), username.encode()) \
                & hmac.compare_digest(secret.encode(), password.encode())
        return found

    def _record_failure(self, username: str) -> None:
        now = time.monotonic()
        failures = self._failures[username]
        failures.append(now)
        while failures and failures[0] < now - self.window_s:
            failures.popleft()
        if len(failures) >= self.max_failures and not self.locked(username):
            self._locked_until[username] = now + self.lockout_s
            failures.clear()
            logger.warning("Login for %r locked for %g s after %d failed attempts.", username[:64],
                           self.lockout_s, self.max_failures)
