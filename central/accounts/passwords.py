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


# The passwords tried first by anyone guessing, as breach corpora rank them, in China and beyond
# (lower case; compared after folding case). Length alone let "password", "12345678" and
# "admin123" guard an account that reads customers' data.
COMMON = frozenset(
    {
        "password", "password1", "password123", "passw0rd", "p@ssw0rd", "iloveyou", "sunshine",
        "princess", "football", "baseball", "welcome1", "qwertyui", "qwerty123", "1qaz2wsx",
        "1q2w3e4r", "1q2w3e4r5t", "zaq12wsx", "qazwsxedc", "asdfghjkl", "abc12345", "abcd1234",
        "a1234567", "a12345678", "aa123456", "qq123456", "admin123", "admin1234", "administrator",
        "root1234", "test1234", "changeme", "letmein1", "woaini1314", "woaini520", "5201314520",
        "wang1234", "zhang123", "li123456", "huang123", "147258369", "987654321", "1234567890",
        "0123456789", "11223344", "12344321", "123123123", "12341234", "5201314a", "iloveyou1",
    }
)  # fmt: skip
_SEQUENCES = ("0123456789", "abcdefghijklmnopqrstuvwxyz", "qwertyuiop", "asdfghjkl", "zxcvbnm")


class PasswordError(ValueError):
    """A password that cannot be used: too short or too long, common, or made of one run of keys."""


def check_policy(password: str, username: str = "") -> None:
    """Raise PasswordError naming the rule a new password breaks.

    Beside the length: not one of :data:`COMMON`, not one character repeated (``aaaaaaaa``), not a
    run along the digits, the alphabet or a keyboard row, forwards or backwards (``12345678``,
    ``87654321``, ``qwertyui``), and not containing the user's own name.
    """
    if len(password) < MIN_LENGTH:
        raise PasswordError(f"the password must be at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise PasswordError(f"the password must be at most {MAX_LENGTH} characters")
    folded = password.lower()
    if folded in COMMON:
        raise PasswordError("the password is one of the most common passwords; choose another")
    if len(set(folded)) == 1:
        raise PasswordError("the password repeats one character; choose another")
    if any(folded in run or folded in run[::-1] for run in _SEQUENCES):
        raise PasswordError("the password is a run of keys (12345678, qwertyui); choose another")
    if len(username) >= 3 and username.lower() in folded:
        raise PasswordError("the password contains the username; choose another")


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
