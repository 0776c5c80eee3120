from datetime import datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from store.base import Base, CreatedAtMixin, utcnow
from store.enums import sql_in


class Winner(StrEnum):
    A = "a"
    B = "b"
    TIE = "tie"
    BOTH_BAD = "both_bad"


class ComparisonVote(CreatedAtMixin, Base):
    """A user's (changeable) verdict on a comparison."""

    __tablename__ = "comparison_votes"
    __table_args__ = (
        CheckConstraint(f"winner IN ({sql_in(Winner)})", name="winner"),
        UniqueConstraint("comparison_id", "api_key_id", name="uq_comparison_votes_comparison_key"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    comparison_id: Mapped[str] = mapped_column(ForeignKey("comparisons.id", ondelete="CASCADE"))
    api_key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id"), index=True)
    winner: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow, index=True)
