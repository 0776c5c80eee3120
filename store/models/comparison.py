from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from store.base import Base, CreatedAtMixin


class Comparison(CreatedAtMixin, Base):
    """An anonymous A/B pair: two stored completions for the same messages, shown as labels a and b."""

    __tablename__ = "comparisons"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    api_key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id"), index=True)
    messages: Mapped[list]
    # Generation parameters as requested (both candidates share them).
    params: Mapped[dict] = mapped_column(default=dict)
    completion_a_id: Mapped[str] = mapped_column(ForeignKey("completions.id"))
    completion_b_id: Mapped[str] = mapped_column(ForeignKey("completions.id"))
