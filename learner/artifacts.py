"""Publishing a trained policy: build in a hidden temp dir beside the destination, write manifest.json,
rename atomically, and only then hand back the hash the registry stores.

A process killed at any point leaves either nothing visible or a complete artifact; leftover hidden temp and
work dirs are removed by `clean_stale` at the next start (under the lease, so never another learner's)."""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from store.artifact_hash import MANIFEST, artifact_files, directory_sha256, file_sha256

log = logging.getLogger("learner.artifacts")

TEMP_PREFIX = ".tmp-"
WORK_PREFIX = ".work-"


@dataclass(frozen=True)
class Published:
    path: Path
    sha256: str  # store.artifact_hash.directory_sha256 of `path`: what policy_versions.sha256 must hold


def work_dir(artifacts_dir: Path, run_id: int) -> Path:
    """Scratch space of one run (trainer outputs, reward model); never served, removed after the run."""
    path = Path(artifacts_dir) / f"{WORK_PREFIX}run{run_id}"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def clean_stale(artifacts_dir: Path) -> list[Path]:
    """Remove temp and work dirs a killed run left behind. Call only while holding the learner lease."""
    artifacts_dir = Path(artifacts_dir)
    removed = []
    if artifacts_dir.is_dir():
        for child in artifacts_dir.iterdir():
            if child.is_dir() and child.name.startswith((TEMP_PREFIX, WORK_PREFIX)):
                shutil.rmtree(child, ignore_errors=True)
                removed.append(child)
    if removed:
        log.info("stage=cleanup removed=%d paths=%s", len(removed), [p.name for p in removed])
    return removed


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    return str(value)


def build_manifest(directory: Path, **fields: Any) -> dict[str, Any]:
    files = {p.relative_to(directory).as_posix(): file_sha256(p) for p in artifact_files(directory)}
    return {"format": 1, "sha256": directory_sha256(directory), "files": files, **fields}


def publish(source: Path, destination: Path, **manifest_fields: Any) -> Published:
    """Copy `source` (a trainer's output dir) to `destination` atomically, with a manifest.

    manifest_fields: base_model, algorithm, config, watermark, metrics, seed, ... (anything JSON-able).
    """
    destination = Path(destination)
    if destination.exists():
        raise FileExistsError(f"artifact {destination} already exists")
    destination.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{destination.name}.", dir=destination.parent))
    try:
        shutil.copytree(source, tmp, dirs_exist_ok=True)
        manifest = build_manifest(tmp, **manifest_fields)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True, default=_json_default))
        for path in tmp.rglob("*"):
            if path.is_file():
                with path.open("rb") as fh:
                    os.fsync(fh.fileno())
        _fsync_dir(tmp)
        _rename(tmp, destination)
        _fsync_dir(destination.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    sha = directory_sha256(destination)
    if sha != manifest["sha256"]:  # the files changed under us: never register something unverified
        raise RuntimeError(f"artifact {destination} changed while being published")
    log.info("stage=artifact path=%s sha256=%s files=%d", destination, sha, len(manifest["files"]))
    return Published(destination, sha)


def _rename(tmp: Path, destination: Path) -> None:
    # One rename: the artifact appears complete or not at all. A seam for tests that simulate a kill here.
    os.rename(tmp, destination)
