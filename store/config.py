import os

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./data/flywheel.db"


def database_url() -> str:
    """`DATABASE_URL` picks the backend: SQLite (embedded default) or postgresql+asyncpg."""
    return os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL
