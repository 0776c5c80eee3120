from datetime import datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from store.base import Base, utcnow
from store.enums import sql_in


class TrainingRunStatus(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"  # a candidate passed the gates and was registered
    FAILED = "failed"  # an exception (or a killed process, found at the next start)
    REJECTED = "rejected"  # trained, but the gates said no; the policy row says why
    SKIPPED = "skipped"  # too little new data to train on; the data stays unconsumed


class TrainingRun(Base):
    """One learner cycle: which data it saw (watermarks), what it trained, what came of it."""

    __tablename__ = "training_runs"
    __table_args__ = (CheckConstraint(f"status IN ({sql_in(TrainingRunStatus)})", name="status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default=TrainingRunStatus.RUNNING, index=True)
    algorithm: Mapped[str | None] = mapped_column(String(32))
    holder: Mapped[str | None] = mapped_column(String(200))
    started_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    finished_at: Mapped[datetime | None]
    # Data window (since, until]: the next cycle starts from the last succeeded run's `watermark_to`.
    watermark_from: Mapped[datetime | None]
    watermark_to: Mapped[datetime | None]
    counts: Mapped[dict] = mapped_column(default=dict)
    metrics: Mapped[dict] = mapped_column(default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    policy_version_id: Mapped[int | None] = mapped_column(ForeignKey("policy_versions.id"), index=True)
    artifact_path: Mapped[str | None] = mapped_column(Text)
    seed: Mapped[int | None]
