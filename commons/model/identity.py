"""An Ed25519 key pair kept in a file only its owner can read."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import nacl.signing

from commons.model.errors import IdentityError

SEED_BYTES = 32


class Identity:
    """A signing key. `bytes(identity)` is the 32-byte seed; keep it secret."""

    def __init__(self, seed: bytes) -> None:
        if not isinstance(seed, bytes) or len(seed) != SEED_BYTES:
            raise IdentityError(f"a secret key is {SEED_BYTES} bytes, got {len(seed)}")
        self._key = nacl.signing.SigningKey(seed)

    @classmethod
    def generate(cls) -> Identity:
        return cls(bytes(nacl.signing.SigningKey.generate()))

    @property
    def verify_key(self) -> nacl.signing.VerifyKey:
        return self._key.verify_key

    @property
    def public_key(self) -> bytes:
        return bytes(self._key.verify_key)

    def sign(self, message: bytes) -> nacl.signing.SignedMessage:
        return self._key.sign(message)

    def __bytes__(self) -> bytes:
        return bytes(self._key)

    def __repr__(self) -> str:
        return f"Identity(public_key={self.public_key.hex()[:16]}…)"

    # -- the key file ---------------------------------------------------------

    def save(self, path: Path) -> None:
        """Write the seed as hex to a new file with mode 0600; never overwrite."""
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError as exc:
            raise IdentityError(
                f"{path} already exists; refusing to overwrite a secret key"
            ) from exc
        with os.fdopen(fd, "w") as f:
            f.write(bytes(self).hex() + "\n")

    @classmethod
    def load(cls, path: Path) -> Identity:
        try:
            mode = path.stat().st_mode
        except FileNotFoundError as exc:
            raise IdentityError(
                f"no secret key at {path}; run `commons init` to create one"
            ) from exc
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise IdentityError(
                f"{path} can be read by other users (mode {stat.S_IMODE(mode):04o});"
                f" run `chmod 600 {path}` and try again"
            )
        try:
            text = path.read_text().strip()
            return cls(bytes.fromhex(text))
        except (ValueError, UnicodeDecodeError) as exc:
            raise IdentityError(
                f"{path} does not hold a secret key (64 hex characters); restore it from a backup"
            ) from exc
