from datetime import datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from store.base import Base, CreatedAtMixin, utcnow
from store.enums import sql_in


class Rating(StrEnum):
    UP = "up"
    DOWN = "down"


class Feedback(CreatedAtMixin, Base):
    """A user's current verdict on one choice of one of their completions (latest post wins).

    Every post is also kept in `feedback_events`; this row is the state the learner reads.
    """

    __tablename__ = "feedback"
    __table_args__ = (
        CheckConstraint(f"rating IN ({sql_in(Rating)})", name="rating"),
        # One verdict per user per (completion, choice): the upsert relies on this constraint.
        UniqueConstraint("api_key_id", "completion_id", "choice_index", name="uq_feedback_key_completion_choice"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    api_key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id"))
    completion_id: Mapped[str] = mapped_column(ForeignKey("completions.id"), index=True)
    choice_index: Mapped[int] = mapped_column(default=0)
    rating: Mapped[str] = mapped_column(String(8))
    reasons: Mapped[list] = mapped_column(default=list)
    comment: Mapped[str | None] = mapped_column(Text)
    correction: Mapped[str | None] = mapped_column(Text)
    # Indexed: the learner's data window and the review list both walk feedback by update time.
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow, index=True)
