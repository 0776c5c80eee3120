"""`python -m learner export --kind preference|unpaired|prompt --out FILE.jsonl [--since ISO] [--until ISO]`.

Writes one TRL conversational row per line, the cleaning report (JSON) to stderr, and the number
of rows written as the last line of stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from learner.data.records import as_utc
from learner.data.snapshot import Snapshot, build_snapshot
from store.config import database_url
from store.engine import create_engine, create_sessionmaker
from store.migrate import DatabaseNotMigrated, ensure_migrated

KINDS = ("preference", "unpaired", "prompt")


def parse_moment(text: str | None) -> datetime | None:
    """ISO 8601 (a trailing Z allowed); without an offset it is taken as UTC."""
    if not text:
        return None
    return as_utc(datetime.fromisoformat(text.strip().replace("Z", "+00:00")))


async def _snapshot(url: str, since: datetime | None, until: datetime) -> Snapshot:
    engine = create_engine(url)
    try:
        await ensure_migrated(engine)
        async with create_sessionmaker(engine)() as session:
            return await build_snapshot(session, since, until)
    finally:
        await engine.dispose()


def write_jsonl(rows: list[dict], out: Path) -> None:
    """Write to a sibling temp file and rename: a reader never sees half a dataset."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def export_command(args: argparse.Namespace) -> int:
    if args.kind not in KINDS:
        print(f"unknown --kind {args.kind!r}; expected one of {', '.join(KINDS)}", file=sys.stderr)
        return 2
    try:
        since = parse_moment(getattr(args, "since", None))
        until = parse_moment(getattr(args, "until", None)) or datetime.now(UTC)
    except ValueError as exc:
        print(f"bad --since/--until: {exc}", file=sys.stderr)
        return 2
    try:
        snapshot = asyncio.run(_snapshot(database_url(), since, until))
    except DatabaseNotMigrated as exc:
        print(str(exc), file=sys.stderr)
        return 1
    rows = snapshot.rows(args.kind)
    write_jsonl(rows, Path(args.out))
    print(json.dumps(snapshot.report, indent=2, default=str), file=sys.stderr)
    summary = f"wrote {len(rows)} {args.kind} rows to {args.out} ({snapshot.new_items} judgements in window)"
    print(summary, file=sys.stderr)
    print(len(rows))
    return 0
