"""Bradley-Terry maths: properties (hypothesis) and recovery of known strengths."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.services.bradley_terry import bootstrap_intervals, fit, leaderboard, tally, win_probability

strength = st.floats(-8, 8, allow_nan=False)
outcome_lists = st.integers(2, 5).flatmap(
    lambda k: st.tuples(
        st.just(k),
        st.lists(
            st.tuples(st.integers(0, k - 1), st.integers(0, k - 1), st.sampled_from([0.0, 0.5, 1.0])).filter(
                lambda o: o[0] != o[1]
            ),
            max_size=40,
        ),
    )
)


@given(strength, strength)
def test_win_probability_is_a_probability_symmetric_in_the_players(a, b):
    p = win_probability(a, b)
    assert 0 < p < 1
    assert p + win_probability(b, a) == pytest.approx(1)
    assert win_probability(a, a) == 0.5
    if abs(a - b) > 1e-9:
        assert (p > 0.5) == (a > b)


@given(strength, strength, st.floats(0.01, 4))
def test_win_probability_grows_with_own_strength(a, b, delta):
    assert win_probability(a + delta, b) >= win_probability(a, b)


@settings(max_examples=60, deadline=None)
@given(outcome_lists)
def test_fit_is_finite_mean_zero_and_a_stationary_point(case):
    k, outcomes = case
    wins = tally(outcomes, k)
    assert wins.sum() == pytest.approx(len(outcomes))  # each game is one unit, ties split
    theta = fit(wins)
    assert np.all(np.isfinite(theta)) and abs(theta.mean()) < 1e-9
    # Gradient of the penalised log-likelihood vanishes at the optimum.
    diff = theta[:, None] - theta[None, :]
    pressure = wins / (1 + np.exp(diff))
    grad = -pressure.sum(axis=1) + pressure.sum(axis=0) + 0.01 * theta
    assert np.abs(grad).max() < 1e-4


@settings(max_examples=40, deadline=None)
@given(outcome_lists, st.randoms(use_true_random=False))
def test_relabelling_players_relabels_strengths(case, rnd):
    k, outcomes = case
    perm = list(range(k))
    rnd.shuffle(perm)
    theta = fit(tally(outcomes, k))
    relabelled = fit(tally([(perm[i], perm[j], s) for i, j, s in outcomes], k))
    assert np.allclose(relabelled[perm], theta, atol=1e-5)


@settings(max_examples=40, deadline=None)
@given(outcome_lists)
def test_swapping_every_result_mirrors_the_strengths(case):
    k, outcomes = case
    theta = fit(tally(outcomes, k))
    mirrored = fit(tally([(i, j, 1 - s) for i, j, s in outcomes], k))
    assert np.allclose(mirrored, -theta, atol=1e-5)


@settings(max_examples=30, deadline=None)
@given(outcome_lists, st.data())
def test_one_more_win_never_lowers_the_winner_relative_to_the_loser(case, data):
    k, outcomes = case
    i = data.draw(st.integers(0, k - 1))
    j = data.draw(st.integers(0, k - 1).filter(lambda x: x != i))
    before = fit(tally(outcomes, k))
    after = fit(tally([*outcomes, (i, j, 1.0)], k))
    assert after[i] - after[j] >= before[i] - before[j] - 1e-6


def test_recovers_known_strengths_and_intervals_cover_them():
    rng = np.random.default_rng(7)
    truth = np.array([0.0, 1.0, -1.0, 0.5])
    truth -= truth.mean()
    outcomes = []
    for _ in range(4000):
        i, j = rng.choice(4, 2, replace=False)
        outcomes.append((int(i), int(j), float(rng.random() < win_probability(truth[i], truth[j]))))
    theta = fit(tally(outcomes, 4))
    assert np.allclose(theta, truth, atol=0.15)
    low, high = bootstrap_intervals(outcomes, 4, n_boot=200, seed=1)
    assert np.all(low <= theta) and np.all(theta <= high)
    assert np.all(high - low < 0.4)


def test_95_percent_intervals_cover_the_truth_about_95_percent_of_the_time():
    rng = np.random.default_rng(11)
    truth = np.array([0.4, -0.4])
    covered = 0
    trials = 40
    for trial in range(trials):
        wins = int(rng.binomial(150, win_probability(truth[0], truth[1])))
        outcomes = [(0, 1, 1.0)] * wins + [(0, 1, 0.0)] * (150 - wins)
        low, high = bootstrap_intervals(outcomes, 2, n_boot=100, seed=trial)
        covered += bool(low[0] <= truth[0] <= high[0])
    assert covered >= 0.85 * trials


def test_more_votes_narrow_the_interval():
    few = [(0, 1, 1.0)] * 6 + [(0, 1, 0.0)] * 4
    many = few * 20
    low_few, high_few = bootstrap_intervals(few, 2, n_boot=200)
    low_many, high_many = bootstrap_intervals(many, 2, n_boot=200)
    assert (high_many - low_many)[0] < (high_few - low_few)[0] / 2


def test_bootstrap_is_reproducible_and_empty_input_is_neutral():
    outcomes = [(0, 1, 1.0), (1, 2, 0.5), (2, 0, 0.0), (0, 2, 1.0)]
    assert np.array_equal(bootstrap_intervals(outcomes, 3, seed=3)[0], bootstrap_intervals(outcomes, 3, seed=3)[0])
    low, high = bootstrap_intervals([], 3)
    assert np.all(low == 0) and np.all(high == 0)
    board = leaderboard(["only"], [])
    assert [(s.player, s.score, s.low, s.high, s.games) for s in board] == [("only", 0.0, 0.0, 0.0, 0.0)]


def test_leaderboard_orders_by_strength_and_counts_ties_as_half():
    outcomes = [(0, 1, 1.0)] * 8 + [(0, 1, 0.5)] * 2 + [(1, 2, 1.0)] * 6 + [(2, 1, 1.0)] * 2
    board = leaderboard(["x", "y", "z"], outcomes, n_boot=50)
    assert [s.player for s in board] == ["x", "y", "z"]
    x = board[0]
    assert (x.games, x.wins) == (10, 9)
    assert x.elo > 1000 > board[-1].elo
