"""The canary decision rule (pure): promote, roll back or wait, on votes and thumbs."""

from gateway.services.rollout import RolloutPolicy, decide, p_down_rate_worse, win_probability_interval

POLICY = RolloutPolicy(min_votes=20, min_thumbs=20, n_boot=300)


def test_clear_winner_is_promoted():
    decision = decide(["win"] * 30 + ["loss"] * 5 + ["tie"] * 3, (0, 0), (0, 0), POLICY)
    assert decision.action == "promote"
    assert decision.evidence.low > 0.5 and decision.evidence.votes == 38


def test_clear_loser_is_rolled_back():
    decision = decide(["win"] * 4 + ["loss"] * 30, (0, 0), (0, 0), POLICY)
    assert decision.action == "rollback" and decision.evidence.high < 0.5


def test_too_few_or_balanced_votes_wait():
    assert decide(["win"] * 10, (0, 0), (0, 0), POLICY).action is None
    balanced = decide(["win", "loss"] * 15 + ["both_bad"] * 5, (0, 0), (0, 0), POLICY)
    assert balanced.action is None and balanced.evidence.both_bad == 5 and balanced.evidence.votes == 30


def test_credibly_worse_thumbs_roll_back_even_without_votes():
    assert p_down_rate_worse((5, 25), (25, 5)) > 0.99
    assert decide([], (5, 25), (25, 5), POLICY).action == "rollback"
    assert decide([], (15, 15), (15, 15), POLICY).action is None


def test_interval_contains_the_point_estimate():
    point, low, high = win_probability_interval(["win"] * 12 + ["loss"] * 8 + ["tie"] * 4, n_boot=300)
    assert low <= point <= high and 0.5 < point < 0.65
