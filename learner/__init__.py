"""The learner: feedback → datasets → reward model → policy optimisation → gates → registry."""
