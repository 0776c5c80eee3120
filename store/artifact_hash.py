"""One definition of an artifact's sha256, shared by the learner (writes it) and the gateway (checks it)."""

import hashlib
from pathlib import Path

MANIFEST = "manifest.json"
_CHUNK = 1 << 20


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def artifact_files(directory: Path) -> list[Path]:
    """Every file of an artifact directory, in a stable order; the manifest describes them and is left out."""
    return sorted(p for p in directory.rglob("*") if p.is_file() and p.name != MANIFEST)


def directory_sha256(directory: str | Path) -> str:
    """sha256 over (relative path, file sha256) of every file: renaming or editing any file changes it."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"artifact directory {directory} does not exist")
    digest = hashlib.sha256()
    for path in artifact_files(directory):
        digest.update(f"{path.relative_to(directory).as_posix()}\0{file_sha256(path)}\n".encode())
    return digest.hexdigest()
