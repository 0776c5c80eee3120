"""Pair derivation: the properties the training data relies on, over generated judgements."""

from datetime import UTC, datetime
from itertools import combinations

from hypothesis import given
from hypothesis import strategies as st

from learner.data.pairs import (
    derive,
    pairs_from_correction,
    pairs_from_ranking,
    pairs_from_vote,
    unpaired_from_vote,
)
from learner.data.records import Correction, RankingRecord, Thumb, Vote, normalize_messages

T0 = datetime(2026, 1, 1, tzinfo=UTC)
PROMPT = normalize_messages([{"role": "user", "content": "hi"}])
texts = st.text(min_size=1, max_size=8)


def vote(winner: str, a: str = "A", b: str = "B") -> Vote:
    return Vote(1, PROMPT, T0, T0, "cmp", winner, a, b)


@given(a=texts, b=texts)
def test_tie_never_paired_and_says_nothing(a, b):
    pairs, unpaired = derive(vote("tie", a, b))
    assert pairs == [] and unpaired == []


@given(a=texts, b=texts)
def test_both_bad_never_paired_but_gives_two_negatives(a, b):
    pairs, unpaired = derive(vote("both_bad", a, b))
    assert pairs == []
    assert [(u.completion, u.label) for u in unpaired] == [(a, False), (b, False)]


@given(winner=st.sampled_from(["a", "b"]), a=texts, b=texts)
def test_a_b_vote_prefers_the_winner(winner, a, b):
    (pair,) = pairs_from_vote(vote(winner, a, b))
    assert (pair.chosen, pair.rejected) == ((a, b) if winner == "a" else (b, a))
    labels = {(u.completion, u.label) for u in unpaired_from_vote(vote(winner, a, b))}
    assert (pair.chosen, True) in labels and (pair.rejected, False) in labels


@given(order=st.permutations(range(6)).flatmap(lambda p: st.integers(2, 6).map(lambda k: tuple(p[:k]))))
def test_ranking_of_k_gives_k_choose_2_pairs_consistent_with_order(order):
    texts_by_index = tuple((i, f"text-{i}") for i in range(6))
    ranking = RankingRecord(1, PROMPT, T0, T0, "c1", order, texts_by_index)
    pairs = pairs_from_ranking(ranking)
    k = len(order)
    assert len(pairs) == k * (k - 1) // 2
    position = {f"text-{index}": rank for rank, index in enumerate(order)}
    assert all(position[p.chosen] < position[p.rejected] for p in pairs)
    # Every unordered pair of ranked choices appears exactly once.
    assert {frozenset((p.chosen, p.rejected)) for p in pairs} == {
        frozenset((f"text-{x}", f"text-{y}")) for x, y in combinations(order, 2)
    }
    _, unpaired = derive(ranking)
    assert [(u.completion, u.label) for u in unpaired] == [
        (f"text-{order[0]}", True),
        (f"text-{order[-1]}", False),
    ]


@given(original=texts, corrected=texts)
def test_correction_beats_original_and_is_a_positive(original, corrected):
    correction = Correction(1, PROMPT, T0, T0, "c1", 0, original, corrected)
    (pair,) = pairs_from_correction(correction)
    assert (pair.chosen, pair.rejected) == (corrected, original)
    _, unpaired = derive(correction)
    assert [(u.completion, u.label) for u in unpaired] == [(corrected, True)]


@given(rating=st.sampled_from(["up", "down"]), text=texts)
def test_thumb_is_unpaired_only(rating, text):
    pairs, unpaired = derive(Thumb(1, PROMPT, T0, T0, "c1", 0, rating, text))
    assert pairs == []
    assert [(u.completion, u.label) for u in unpaired] == [(text, rating == "up")]


def test_rows_are_trl_conversational():
    (pair,) = pairs_from_vote(vote("a"))
    assert pair.to_row() == {
        "prompt": [{"role": "user", "content": "hi"}],
        "chosen": [{"role": "assistant", "content": "A"}],
        "rejected": [{"role": "assistant", "content": "B"}],
    }
    negative = unpaired_from_vote(vote("a"))[1]
    assert negative.to_row() == {
        "prompt": [{"role": "user", "content": "hi"}],
        "completion": [{"role": "assistant", "content": "B"}],
        "label": False,
    }


def test_normalize_messages_flattens_content_parts_and_drops_extra_keys():
    messages = [
        {"role": "system", "content": "be brief", "name": "x"},
        {"role": "user", "content": [{"type": "text", "text": "hel"}, {"type": "text", "text": "lo"}]},
    ]
    assert normalize_messages(messages) == (
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hello"},
    )
