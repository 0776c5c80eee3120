"""Run and check Alembic migrations from code: `python -m store.migrate upgrade|downgrade|current|check`."""

import argparse
import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncEngine

from store.config import database_url

ROOT = Path(__file__).resolve().parents[1]


class DatabaseNotMigrated(RuntimeError):
    pass


def alembic_config(url: str | None = None) -> Config:
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "migrations"))
    cfg.attributes["database_url"] = url or database_url()
    return cfg


def _in_thread(fn, *args) -> None:
    # env.py calls asyncio.run(); run it where no loop is running (CLI, or a worker thread from async code).
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        fn(*args)
        return
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(fn, *args).result()


def upgrade(url: str | None = None, revision: str = "heads") -> None:
    _in_thread(command.upgrade, alembic_config(url), revision)


def downgrade(url: str | None = None, revision: str = "base") -> None:
    _in_thread(command.downgrade, alembic_config(url), revision)


def expected_heads() -> set[str]:
    return set(ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads())


async def current_heads(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        return set(await conn.run_sync(lambda sync: MigrationContext.configure(sync).get_current_heads()))


async def ensure_migrated(engine: AsyncEngine) -> None:
    """Refuse to run on a database whose schema is not at the code's head revision(s)."""
    have, want = await current_heads(engine), expected_heads()
    if have != want:
        raise DatabaseNotMigrated(
            f"database {engine.url.render_as_string(hide_password=True)} is at revision "
            f"{sorted(have) or 'none (empty)'}, the code needs {sorted(want)}: "
            "run `make migrate` (or `python -m store.migrate upgrade`) first"
        )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m store.migrate")
    parser.add_argument("action", choices=["upgrade", "downgrade", "current"])
    parser.add_argument("revision", nargs="?")
    args = parser.parse_args()
    cfg = alembic_config()
    if args.action == "upgrade":
        command.upgrade(cfg, args.revision or "heads")
    elif args.action == "downgrade":
        command.downgrade(cfg, args.revision or "-1")
    else:
        command.current(cfg, verbose=True)


if __name__ == "__main__":
    main()
