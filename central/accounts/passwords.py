"""Console password hashing with Argon2id at OWASP's minimum (19 MiB, 2 passes, 1 lane).

That costs about 0.1 s of one core per login on a small HQ server: enough to make guessing from a
stolen table expensive, cheap enough that a burst of logins (or of throttled attacks) does not
starve the server's two cores the way the 64 MiB, 3-pass profile (0.5 s) did.

Hashes written before Argon2 (Werkzeug's ``scrypt:`` and ``pbkdf2:`` forms) still verify, and
``needs_rehash`` tells the login to store an Argon2 hash in their place.
"""

from __future__ import annotations

import functools
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from werkzeug.security import check_password_hash

MIN_LENGTH = 8
MAX_LENGTH = 256
_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)


class PasswordError(ValueError):
    """A password that cannot be used (too short or too long)."""


def check_policy(password: str) -> None:
    """Raise PasswordError naming the rule a new password breaks."""
    if len(password) < MIN_LENGTH:
        raise PasswordError(f"the password must be at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise PasswordError(f"the password must be at most {MAX_LENGTH} characters")


def hash_password(password: str) -> str:
    """The stored form of a password."""
    return _hasher.hash(password)


def verify(stored: str, password: str) -> bool:
    """True if ``password`` matches the stored hash (Argon2, or a legacy Werkzeug hash)."""
    if stored.startswith("$argon2"):
        try:
            return _hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return False
    if stored.startswith(("scrypt:", "pbkdf2:")):
        return check_password_hash(stored, password)
    return False


def needs_rehash(stored: str) -> bool:
    """True if the hash is not Argon2 with today's parameters."""
    if not stored.startswith("$argon2"):
        return True
    try:
        return _hasher.check_needs_rehash(stored)
    except InvalidHashError:
        return True


@functools.cache
def dummy_hash() -> str:
    """A hash of a random password, verified for unknown usernames so both failures cost the same."""
    return hash_password(secrets.token_urlsafe(16))


def generate() -> str:
    """A random password for a new or reset account, shown once."""
    return secrets.token_urlsafe(18)
