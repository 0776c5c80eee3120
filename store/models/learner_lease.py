from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from store.base import Base, utcnow


class LearnerLease(Base):
    """A named, expiring lock row: whoever holds an unexpired lease may train; everyone else skips."""

    __tablename__ = "learner_leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    acquired_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
