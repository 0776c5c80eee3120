"""The real Alembic migrations, up and down, on SQLite and PostgreSQL; and they match the models."""

import asyncio

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from store.engine import create_engine
from store.migrate import DatabaseNotMigrated, downgrade, ensure_migrated, expected_heads, upgrade
from store.models import Base


async def _inspect(url: str, fn):
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(fn)
    finally:
        await engine.dispose()


def _tables(url: str) -> set[str]:
    return set(asyncio.run(_inspect(url, lambda sync: inspect(sync).get_table_names()))) - {"alembic_version"}


def test_upgrade_downgrade_upgrade(empty_db_url):
    upgrade(empty_db_url)
    assert {"api_keys", "policy_versions", "completions", "completion_choices"} <= _tables(empty_db_url)
    downgrade(empty_db_url, "base")
    assert _tables(empty_db_url) == set()
    upgrade(empty_db_url)
    assert set(Base.metadata.tables) == _tables(empty_db_url)


def test_migrations_match_the_models(db_url):
    def diff(sync_conn):
        return compare_metadata(MigrationContext.configure(sync_conn, opts={"compare_type": True}), Base.metadata)

    assert asyncio.run(_inspect(db_url, diff)) == []


async def test_unmigrated_database_is_refused_with_a_clear_message(empty_db_url):
    engine = create_engine(empty_db_url)
    try:
        try:
            await ensure_migrated(engine)
        except DatabaseNotMigrated as exc:
            assert "make migrate" in str(exc)
        else:
            raise AssertionError("an empty database was accepted")
    finally:
        await engine.dispose()
    assert expected_heads()
