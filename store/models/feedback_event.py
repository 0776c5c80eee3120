from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from store.base import Base, CreatedAtMixin


class FeedbackEvent(CreatedAtMixin, Base):
    """Append-only history: one row per POST /v1/feedback, so updates never lose what was said before."""

    __tablename__ = "feedback_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    feedback_id: Mapped[int] = mapped_column(ForeignKey("feedback.id", ondelete="CASCADE"), index=True)
    rating: Mapped[str] = mapped_column(String(8))
    reasons: Mapped[list] = mapped_column(default=list)
    comment: Mapped[str | None] = mapped_column(Text)
    correction: Mapped[str | None] = mapped_column(Text)
