from sqlalchemy import CheckConstraint, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from store.base import Base, CreatedAtMixin
from store.enums import CompletionStatus, sql_in


class Completion(CreatedAtMixin, Base):
    """One chat request as served: who asked, what, with which parameters, and which policy answered."""

    __tablename__ = "completions"
    __table_args__ = (CheckConstraint(f"status IN ({sql_in(CompletionStatus)})", name="status"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    api_key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id"), index=True)
    policy_version_id: Mapped[int] = mapped_column(ForeignKey("policy_versions.id"), index=True)
    end_user: Mapped[str | None] = mapped_column(String(256))
    # The conversation as sent (OpenAI messages) and the sampling parameters used.
    messages: Mapped[list]
    params: Mapped[dict] = mapped_column(default=dict)
    stream: Mapped[bool] = mapped_column(default=False)
    status: Mapped[str] = mapped_column(String(24), default=CompletionStatus.COMPLETE)
    prompt_tokens: Mapped[int | None]
    completion_tokens: Mapped[int | None]
    latency_ms: Mapped[float | None]

    choices: Mapped[list["CompletionChoice"]] = relationship(  # noqa: F821
        order_by="CompletionChoice.index", lazy="selectin", cascade="all, delete-orphan"
    )
