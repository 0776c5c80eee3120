from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from store.base import Base, CreatedAtMixin


class PolicyEvent(CreatedAtMixin, Base):
    """Every rollout decision (canary, promote, rollback, reject) with the evidence it was taken on."""

    __tablename__ = "policy_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    policy_version_id: Mapped[int] = mapped_column(ForeignKey("policy_versions.id"), index=True)
    action: Mapped[str] = mapped_column(String(16))
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text, default="")
    # "auto" for the gateway's own decisions, else "admin:<key id>".
    actor: Mapped[str] = mapped_column(String(64), default="auto")
    evidence: Mapped[dict] = mapped_column(default=dict)
