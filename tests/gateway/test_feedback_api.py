"""POST /v1/feedback in-process on SQLite and PostgreSQL: upsert with history, ownership, bad input, races."""

import asyncio

import pytest
from sqlalchemy import func, select

from store.models import Feedback, FeedbackEvent
from tests.gateway.feedback_app import assert_openai_error, feedback_api


@pytest.fixture
async def api(db_url):
    async with feedback_api(db_url) as api:
        yield api


async def _count(api, model) -> int:
    async with api.sessionmaker() as session:
        return await session.scalar(select(func.count()).select_from(model))


async def test_posting_again_updates_the_verdict_and_keeps_history(api):
    cid = await api.add_completion(n=2)
    first = await api.post("/v1/feedback", "user", {"completion_id": cid, "rating": "up"})
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["choice_index"] == 0 and body["rating"] == "up" and body["reasons"] == []
    assert body["created_at"] == body["updated_at"]

    second = await api.post("/v1/feedback", "user", {
        "completion_id": cid, "rating": "down", "reasons": ["too_long", "incorrect", "too_long"],
        "comment": "rambles", "correction": "Shorter answer.",
    })  # fmt: skip
    assert second.status_code == 200, second.text
    updated = second.json()
    assert updated["id"] == body["id"] and updated["created_at"] == body["created_at"]
    assert updated["updated_at"] > body["updated_at"]
    assert updated["reasons"] == ["too_long", "incorrect"]  # de-duplicated, order kept

    other_choice = await api.post("/v1/feedback", "user", {"completion_id": cid, "choice_index": 1, "rating": "up"})
    assert other_choice.json()["id"] != body["id"]

    # Committed before the 2xx: a fresh session sees it all.
    async with api.sessionmaker() as session:
        row = await session.scalar(select(Feedback).where(Feedback.id == body["id"]))
        history = (await session.scalars(
            select(FeedbackEvent).where(FeedbackEvent.feedback_id == body["id"]).order_by(FeedbackEvent.id)
        )).all()  # fmt: skip
    assert (row.rating, row.comment, row.correction) == ("down", "rambles", "Shorter answer.")
    assert [(e.rating, e.reasons) for e in history] == [("up", []), ("down", ["too_long", "incorrect"])]
    assert await _count(api, Feedback) == 2


async def test_someone_elses_completion_is_indistinguishable_from_an_unknown_one(api):
    cid = await api.add_completion(owner="user")
    foreign = await api.post("/v1/feedback", "other", {"completion_id": cid, "rating": "up"})
    unknown = await api.post("/v1/feedback", "other", {"completion_id": "chatcmpl-nope", "rating": "up"})
    foreign_error = assert_openai_error(foreign, 404, "completion_not_found")
    unknown_error = assert_openai_error(unknown, 404, "completion_not_found")
    assert foreign_error["message"].replace(cid, "X") == unknown_error["message"].replace("chatcmpl-nope", "X")
    assert await _count(api, Feedback) == 0
    # Reviewers may judge anyone's traffic (that is what inter-user agreement is measured on).
    reviewed = await api.post("/v1/feedback", "reviewer", {"completion_id": cid, "rating": "down"})
    assert reviewed.status_code == 200, reviewed.text


async def test_bad_input_gets_a_clear_openai_error_never_a_500(api):
    cid = await api.add_completion(n=2)
    cases = [
        ({"completion_id": cid, "rating": "sideways"}, 422, "invalid_request", "rating"),
        ({"completion_id": cid}, 422, "invalid_request", "rating"),
        ({"rating": "up"}, 422, "invalid_request", "completion_id"),
        ({"completion_id": cid, "rating": "up", "choice_index": 2}, 400, "invalid_choice_index", "choice_index"),
        ({"completion_id": cid, "rating": "up", "choice_index": -1}, 422, "invalid_request", "choice_index"),
        ({"completion_id": cid, "rating": "up", "reasons": ["boring"]}, 400, "invalid_reason", "reasons"),
        ({"completion_id": cid, "rating": "up", "reasons": "too_long"}, 422, "invalid_request", "reasons"),
        ({"completion_id": cid, "rating": "up", "comment": "x" * 4001}, 422, "invalid_request", "comment"),
        ({"completion_id": cid, "rating": "up", "correction": "x" * 16_001}, 422, "invalid_request", "correction"),
        ({"completion_id": "x" * 65, "rating": "up"}, 422, "invalid_request", "completion_id"),
        ([1, 2], 422, "invalid_request", None),
    ]
    for body, status, code, param in cases:
        error = assert_openai_error(await api.post("/v1/feedback", "user", body), status, code)
        if param:
            assert error["param"] == param, (body, error)
    not_json = await api.client.post("/v1/feedback", content=b"{nope", headers={**api.auth("user"), "content-type": "application/json"})
    assert_openai_error(not_json, 400, "invalid_json")
    assert_openai_error(await api.client.post("/v1/feedback", json={"completion_id": cid, "rating": "up"}), 401)
    # Limits are inclusive: exactly 4,000 / 16,000 characters are accepted.
    ok = await api.post("/v1/feedback", "user", {"completion_id": cid, "rating": "up", "comment": "x" * 4000, "correction": "y" * 16_000})
    assert ok.status_code == 200, ok.text
    assert await _count(api, Feedback) == 1


async def test_the_reason_vocabulary_is_a_setting(db_url):
    async with feedback_api(db_url, feedback_reasons=["off_topic"]) as api:
        cid = await api.add_completion()
        assert (await api.post("/v1/feedback", "user", {"completion_id": cid, "rating": "down", "reasons": ["off_topic"]})).status_code == 200
        assert_openai_error(await api.post("/v1/feedback", "user", {"completion_id": cid, "rating": "down", "reasons": ["too_long"]}), 400, "invalid_reason")


async def test_concurrent_duplicate_posts_make_one_record_even_across_gateway_processes(api, db_url):
    """Two apps (two engines, two writers: like two gateway processes) race on the same key."""
    cid = await api.add_completion(n=2)
    async with feedback_api(db_url, share_with=api) as second:
        bodies = [{"completion_id": cid, "rating": ("up", "down")[i % 2], "comment": f"post {i}"} for i in range(40)]
        responses = await asyncio.gather(*(
            (api if i % 2 else second).post("/v1/feedback", "user", body) for i, body in enumerate(bodies)
        ))  # fmt: skip
    assert [r.status_code for r in responses] == [200] * 40, [r.text for r in responses if r.status_code != 200]
    assert len({r.json()["id"] for r in responses}) == 1
    assert await _count(api, Feedback) == 1
    assert await _count(api, FeedbackEvent) == 40
    async with api.sessionmaker() as session:
        stored = await session.scalar(select(Feedback))
        last_event = await session.scalar(select(FeedbackEvent).order_by(FeedbackEvent.id.desc()).limit(1))
    # The row holds whichever post committed last, which is the newest history entry.
    assert (stored.rating, stored.comment) == (last_event.rating, last_event.comment)


async def test_a_failing_post_in_a_shared_batch_fails_alone(sessionmaker):
    """Group commit: a batch whose transaction fails is replayed post by post."""
    from gateway.services.auth import Caller
    from gateway.services.feedback_writer import FeedbackWriter
    from store.enums import Role
    from store.queries.feedback import CompletionFacts, FeedbackWrite
    from tests.gateway.feedback_app import FeedbackApi, StubChat

    helper = FeedbackApi(None, None, sessionmaker, StubChat(sessionmaker), champion=None)  # type: ignore[arg-type]
    helper.champion = await helper.add_policy("champion")
    await helper.add_key("user")
    good = await helper.add_completion(n=1)
    caller = Caller(helper.key_ids["user"], "user", Role.USER, None, None)
    writer = FeedbackWriter(sessionmaker)
    # A stale cache entry for a completion that is gone: its insert violates the foreign key.
    writer._facts["chatcmpl-gone"] = CompletionFacts("chatcmpl-gone", caller.key_id, helper.champion.version_id, 1)
    results = await asyncio.gather(
        writer.write(caller, FeedbackWrite(caller.key_id, good, 0, "up", [])),
        writer.write(caller, FeedbackWrite(caller.key_id, "chatcmpl-gone", 0, "up", [])),
        writer.write(caller, FeedbackWrite(caller.key_id, good, 0, "down", [])),
        return_exceptions=True,
    )
    assert results[0].id == results[2].id
    assert getattr(results[1], "status", None) == 404  # re-checked without the cache: not found
    async with sessionmaker() as session:
        assert (await session.scalar(select(Feedback))).rating == "down"
        assert await session.scalar(select(func.count()).select_from(FeedbackEvent)) == 2
