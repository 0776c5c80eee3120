from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from store.base import Base, CreatedAtMixin, utcnow
from store.enums import PolicyKind, PolicyStatus, sql_in


class PolicyVersion(CreatedAtMixin, Base):
    """The registry: the contract between the learner (writes candidates) and the gateway (serves them)."""

    __tablename__ = "policy_versions"
    __table_args__ = (
        CheckConstraint(f"kind IN ({sql_in(PolicyKind)})", name="kind"),
        CheckConstraint(f"status IN ({sql_in(PolicyStatus)})", name="status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(8))
    artifact_path: Mapped[str] = mapped_column(Text)
    # sha256 over the weight files (see store.hashing); the gateway re-checks it before loading.
    sha256: Mapped[str | None] = mapped_column(String(64))
    base_model: Mapped[str | None] = mapped_column(Text)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("policy_versions.id"))
    status: Mapped[str] = mapped_column(String(16), default=PolicyStatus.CANDIDATE, index=True)
    status_reason: Mapped[str | None] = mapped_column(Text)
    algorithm: Mapped[str | None] = mapped_column(String(32))
    training_run_id: Mapped[int | None] = mapped_column(index=True)
    # Gate and canary evidence: open-ended by nature, so one JSON document.
    metrics: Mapped[dict] = mapped_column(default=dict)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    promoted_at: Mapped[datetime | None]
    retired_at: Mapped[datetime | None]
