from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from store.base import Base


class CompletionChoice(Base):
    """One generated answer of a completion (`n` > 1 gives several)."""

    __tablename__ = "completion_choices"
    __table_args__ = (UniqueConstraint("completion_id", "index", name="uq_completion_choices_completion_index"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    completion_id: Mapped[str] = mapped_column(ForeignKey("completions.id", ondelete="CASCADE"))
    index: Mapped[int]
    text: Mapped[str] = mapped_column(Text, default="")
    finish_reason: Mapped[str | None] = mapped_column(String(32))
    completion_tokens: Mapped[int | None]
