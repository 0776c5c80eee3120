"""Feedback → training data: records, cleaning rules, pair derivation, DB snapshots, JSONL export."""
