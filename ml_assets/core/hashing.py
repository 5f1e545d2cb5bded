"""Content hashing and data-version keys (README: "Data versions and the versioned store")."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from ml_assets.config import slug

CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def copy_and_hash(source: Path, destination: Path) -> str:
    """Copy `source` to `destination` and return the sha256 of the bytes actually copied.

    Hashing the stream we write (rather than hashing, then copying) means the key always
    describes the snapshot, even if the user overwrites the landing file meanwhile.
    """
    digest = hashlib.sha256()
    with open(source, "rb") as src, open(destination, "wb") as dst:
        for block in iter(lambda: src.read(CHUNK), b""):
            digest.update(block)
            dst.write(block)
        dst.flush()
    shutil.copystat(source, destination, follow_symlinks=True)
    return digest.hexdigest()


def version_key(file_name: str, sha256: str) -> str:
    """`<stem>-<first 12 hex digits of sha256>`, the stem lower-cased and slugged."""
    return f"{slug(Path(file_name).stem)}-{sha256[:12]}"
