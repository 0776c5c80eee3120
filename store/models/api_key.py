from datetime import datetime

from sqlalchemy import CheckConstraint, String
from sqlalchemy.orm import Mapped, mapped_column

from store.base import Base, CreatedAtMixin
from store.enums import Role, sql_in


class ApiKey(CreatedAtMixin, Base):
    """A caller. Only the sha256 of the secret is stored; `prefix` lets people tell keys apart."""

    __tablename__ = "api_keys"
    __table_args__ = (CheckConstraint(f"role IN ({sql_in(Role)})", name="role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16), default=Role.USER)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    # Token bucket per key: refill rate and burst; NULL means the gateway's defaults.
    rate_limit_per_s: Mapped[float | None]
    rate_limit_burst: Mapped[int | None]
    revoked_at: Mapped[datetime | None]
