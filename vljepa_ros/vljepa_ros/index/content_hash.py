"""Content hash of a bag folder: the same recordings under another path or name hash the same."""

from __future__ import annotations

import hashlib
from pathlib import Path

CHUNK_BYTES = 1 << 22


def bag_content_hash(bag: Path | str) -> str:
    """sha256 (hex) over every file of the bag folder: relative path, size and bytes, in sorted order."""
    root = Path(bag)
    if not root.is_dir():
        raise FileNotFoundError(f"bag {root} is not a folder")
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(f"{path.relative_to(root).as_posix()}\0{path.stat().st_size}\0".encode())
        with path.open("rb") as handle:
            while chunk := handle.read(CHUNK_BYTES):
                digest.update(chunk)
    return digest.hexdigest()
