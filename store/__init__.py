"""Flywheel's one system of record, shared by the gateway and the learner."""
