"""Password hashing and checking: argon2id, a constant-time answer for unknown users, and a
short per-process memory of successful checks (issue 4)."""
from __future__ import annotations

import hashlib
import secrets
import threading
import time

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from .config import Settings
from .errors import PypiRepoError

__all__ = ["PasswordChecker", "check_password_quality"]

VERIFIED_CACHE_SIZE = 256
VERIFIED_TTL_S = 60.0


def check_password_quality(password: str) -> None:
    if len(password) < 8:
        raise PypiRepoError("password must have at least 8 characters")


class PasswordChecker:
    """argon2 with the configured cost, and the verified-credentials cache."""

    def __init__(self, settings: Settings) -> None:
        memory = max(8, settings.argon2_memory_kib)
        self.hasher = PasswordHasher(
            time_cost=max(1, settings.argon2_time_cost),
            memory_cost=memory,
            parallelism=max(1, min(4, memory // 8)),
        )
        self._dummy_hash: str | None = None
        self._verified: dict[bytes, float] = {}
        self._lock = threading.Lock()

    def hash(self, password: str) -> str:
        return self.hasher.hash(password)

    def needs_rehash(self, password_hash: str) -> bool:
        return self.hasher.check_needs_rehash(password_hash)

    def verify(self, password_hash: str, password: str) -> bool:
        try:
            return self.hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    def verify_dummy(self, password: str) -> None:
        """Spend the time a real check takes, so unknown and known users look alike."""
        if self._dummy_hash is None:
            self._dummy_hash = self.hasher.hash(secrets.token_hex(16))
        self.verify(self._dummy_hash, password)

    @staticmethod
    def cache_key(name: str, password: str, password_hash: str) -> bytes:
        """Keyed on the stored hash too, so a password change invalidates the entry."""
        return hashlib.blake2b(f"{name}\0{password}\0{password_hash}".encode(), digest_size=32).digest()

    def recently_verified(self, key: bytes) -> bool:
        """pip sends the same Basic credentials on every request of a private index; an
        argon2 check each time would cost more than the page."""
        with self._lock:
            until = self._verified.get(key)
            return until is not None and until > time.monotonic()

    def remember(self, key: bytes) -> None:
        with self._lock:
            if len(self._verified) >= VERIFIED_CACHE_SIZE:
                self._verified.clear()
            self._verified[key] = time.monotonic() + VERIFIED_TTL_S

    def forget_all(self) -> None:
        with self._lock:
            self._verified.clear()
