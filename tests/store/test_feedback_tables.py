"""Feedback tables (migration 0002) and their queries, on SQLite and PostgreSQL."""

import asyncio

import pytest
from sqlalchemy import func, inspect, select
from sqlalchemy.exc import IntegrityError

from store.enums import PolicyKind, PolicyStatus
from store.migrate import downgrade, upgrade
from store.models import Comparison, ComparisonVote, Feedback, FeedbackEvent, Ranking
from store.queries.comparisons import add_comparison, comparison_view, upsert_vote
from store.queries.completions import ChoiceRecord, CompletionRecord, insert_completions
from store.queries.feedback import FeedbackWrite, completion_facts_many, upsert_feedback, upsert_feedback_many, upsert_ranking
from store.queries.keys import create_key
from store.queries.policies import register

FEEDBACK_TABLES = {"feedback", "feedback_events", "comparisons", "comparison_votes", "rankings"}


async def _seed(sessionmaker) -> tuple[int, int, list[str]]:
    async with sessionmaker() as session, session.begin():
        key, _ = await create_key(session, "k")
        other, _ = await create_key(session, "o")
        policy = await register(session, name="p", kind=PolicyKind.BASE, artifact_path="/x", sha256=None,
                                status=PolicyStatus.CHAMPION)  # fmt: skip
        ids = [f"chatcmpl-{i}" for i in range(3)]
        await insert_completions(session, [
            CompletionRecord(
                id=cid, api_key_id=key.id, policy_version_id=policy.id, messages=[{"role": "user", "content": "q"}],
                params={}, choices=[ChoiceRecord(c, f"text {c}") for c in range(i + 1)],
            )
            for i, cid in enumerate(ids)
        ])  # fmt: skip
    return key.id, other.id, ids


async def test_migration_0002_creates_and_drops_the_feedback_tables(empty_db_url):
    from store.engine import create_engine

    def tables(url):
        async def go():
            engine = create_engine(url)
            try:
                async with engine.connect() as conn:
                    return await conn.run_sync(lambda sync: set(inspect(sync).get_table_names()))
            finally:
                await engine.dispose()

        return asyncio.run(go())

    await asyncio.to_thread(upgrade, empty_db_url, "0002")
    assert FEEDBACK_TABLES <= await asyncio.to_thread(tables, empty_db_url)
    await asyncio.to_thread(downgrade, empty_db_url, "0001")
    assert not FEEDBACK_TABLES & await asyncio.to_thread(tables, empty_db_url)
    await asyncio.to_thread(upgrade, empty_db_url)
    assert FEEDBACK_TABLES <= await asyncio.to_thread(tables, empty_db_url)


async def test_unique_and_check_constraints(sessionmaker):
    key_id, _, ids = await _seed(sessionmaker)
    bad_rows = [
        lambda: [Feedback(api_key_id=key_id, completion_id=ids[0], choice_index=0, rating="up"),
                 Feedback(api_key_id=key_id, completion_id=ids[0], choice_index=0, rating="down")],
        lambda: [Feedback(api_key_id=key_id, completion_id=ids[0], choice_index=0, rating="sideways")],
        lambda: [Feedback(api_key_id=key_id, completion_id="chatcmpl-missing", choice_index=0, rating="up")],
        lambda: [Ranking(api_key_id=key_id, completion_id=ids[1], order=[0, 1]),
                 Ranking(api_key_id=key_id, completion_id=ids[1], order=[1, 0])],
    ]  # fmt: skip
    for rows in bad_rows:
        async with sessionmaker() as session:
            session.add_all(rows())
            with pytest.raises(IntegrityError):
                await session.commit()
    async with sessionmaker() as session:
        add_comparison(session, comparison_id="cmp-1", api_key_id=key_id, messages=[], params={},
                       completion_a_id=ids[0], completion_b_id=ids[1])  # fmt: skip
        await session.commit()
    for rows in (
        [ComparisonVote(comparison_id="cmp-1", api_key_id=key_id, winner="c")],
        [ComparisonVote(comparison_id="cmp-1", api_key_id=key_id, winner="a"),
         ComparisonVote(comparison_id="cmp-1", api_key_id=key_id, winner="b")],
    ):  # fmt: skip
        async with sessionmaker() as session:
            session.add_all(rows)
            with pytest.raises(IntegrityError):
                await session.commit()


async def test_feedback_upsert_keeps_one_row_and_appends_history(sessionmaker):
    key_id, other_id, ids = await _seed(sessionmaker)
    async with sessionmaker() as session:
        first = await upsert_feedback(session, FeedbackWrite(key_id, ids[1], 1, "up", []))
        await session.commit()
    async with sessionmaker() as session:
        batch = await upsert_feedback_many(session, [
            FeedbackWrite(key_id, ids[1], 1, "down", ["incorrect"], "c", "fixed"),  # update
            FeedbackWrite(key_id, ids[1], 0, "up", []),  # new choice
            FeedbackWrite(other_id, ids[1], 1, "up", []),  # same item, another key
        ])  # fmt: skip
        await session.commit()
    assert batch[0].id == first.id and batch[0].created_at == first.created_at
    assert batch[0].updated_at > first.updated_at
    assert len({s.id for s in batch}) == 3
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(Feedback)) == 3
        row = await session.get(Feedback, first.id)
        assert (row.rating, row.reasons, row.comment, row.correction) == ("down", ["incorrect"], "c", "fixed")
        events = (await session.scalars(select(FeedbackEvent).where(FeedbackEvent.feedback_id == first.id).order_by(FeedbackEvent.id))).all()
        assert [(e.rating, e.reasons) for e in events] == [("up", []), ("down", ["incorrect"])]
        facts = await completion_facts_many(session, [*ids, "chatcmpl-missing"])
    assert {cid: f.n_choices for cid, f in facts.items()} == {ids[0]: 1, ids[1]: 2, ids[2]: 3}
    assert {f.api_key_id for f in facts.values()} == {key_id}


async def test_ranking_and_vote_upserts(sessionmaker):
    key_id, other_id, ids = await _seed(sessionmaker)
    async with sessionmaker() as session:
        ranked = await upsert_ranking(session, api_key_id=key_id, completion_id=ids[2], order=[2, 0, 1])
        add_comparison(session, comparison_id="cmp-1", api_key_id=key_id, messages=[{"role": "user", "content": "q"}],
                       params={"temperature": 1.0}, completion_a_id=ids[0], completion_b_id=ids[1])  # fmt: skip
        await session.flush()
        vote = await upsert_vote(session, comparison_id="cmp-1", api_key_id=key_id, winner="a", reason=None)
        await session.commit()
    async with sessionmaker() as session:
        again = await upsert_ranking(session, api_key_id=key_id, completion_id=ids[2], order=[0, 1, 2])
        changed = await upsert_vote(session, comparison_id="cmp-1", api_key_id=key_id, winner="both_bad", reason="meh")
        await upsert_vote(session, comparison_id="cmp-1", api_key_id=other_id, winner="b", reason=None)
        await session.commit()
    assert (again.id, changed.id) == (ranked.id, vote.id)
    async with sessionmaker() as session:
        assert (await session.get(Ranking, ranked.id)).order == [0, 1, 2]
        assert (await session.get(ComparisonVote, vote.id)).winner == "both_bad"
        assert await session.scalar(select(func.count()).select_from(ComparisonVote)) == 2
        view = await comparison_view(session, "cmp-1")
        assert (view.content_a, view.content_b, view.policy_a, view.policy_b) == ("text 0", "text 0", "p", "p")
        assert (await session.get(Comparison, "cmp-1")).params == {"temperature": 1.0}
