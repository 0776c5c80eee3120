from datetime import UTC, datetime
from typing import Annotated

from pydantic import PlainSerializer

MAX_COMMENT_CHARS = 4_000
MAX_CORRECTION_CHARS = 16_000
MAX_COMPLETION_ID_CHARS = 64


def as_utc(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything is stored in UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


UtcDatetime = Annotated[datetime, PlainSerializer(lambda v: as_utc(v).isoformat(), return_type=str)]
