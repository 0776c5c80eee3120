from datetime import datetime

from sqlalchemy import ForeignKey, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from store.base import Base, CreatedAtMixin, utcnow


class Ranking(CreatedAtMixin, Base):
    """A user's (changeable) ordering of the choices of one n>1 completion."""

    __tablename__ = "rankings"
    __table_args__ = (UniqueConstraint("api_key_id", "completion_id", name="uq_rankings_key_completion"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    api_key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id"))
    completion_id: Mapped[str] = mapped_column(ForeignKey("completions.id"), index=True)
    # Choice indices, best first; always a permutation of 0..n-1 (checked by the gateway).
    order: Mapped[list]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow, index=True)
