"""Request/response models of the feedback surface (feedback, comparisons, rankings, review)."""
