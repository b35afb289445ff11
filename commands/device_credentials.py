"""Device (and service) NATS passwords: random, shown once, kept only as bcrypt hashes.

bcrypt because it is the one hash nats-server verifies (a `$2…` password in its config);
the library is pyca's `bcrypt`, from the maintainers of `cryptography`. A password is 32
random bytes (`secrets`), so the hash's work factor guards a secret nobody could guess anyway;
cost 10 keeps each connection's check on the server in the tens of milliseconds.
"""

from __future__ import annotations

import secrets

import bcrypt

BCRYPT_COST = 10


def new_password() -> str:
    return secrets.token_urlsafe(32)


def hash_password(password: str) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(BCRYPT_COST)).decode()


def password_matches(password: str, password_hash: str) -> bool:
    return bcrypt.checkpw(password.encode(), password_hash.encode())
