"""POST /v1/rankings in-process on SQLite and PostgreSQL: permutation checks, ownership, upsert."""

import pytest
from sqlalchemy import select

from store.models import Ranking
from tests.gateway.feedback_app import assert_openai_error, feedback_api


@pytest.fixture
async def api(db_url):
    async with feedback_api(db_url) as api:
        yield api


async def test_a_ranking_is_stored_and_can_be_changed(api):
    cid = await api.add_completion(n=3)
    first = await api.post("/v1/rankings", "user", {"completion_id": cid, "order": [2, 0, 1]})
    assert first.status_code == 200, first.text
    changed = await api.post("/v1/rankings", "user", {"completion_id": cid, "order": [1, 2, 0]})
    assert changed.status_code == 200, changed.text
    assert changed.json()["id"] == first.json()["id"] and changed.json()["order"] == [1, 2, 0]
    assert changed.json()["updated_at"] > first.json()["updated_at"]
    reviewer = await api.post("/v1/rankings", "reviewer", {"completion_id": cid, "order": [0, 1, 2]})
    assert reviewer.status_code == 200 and reviewer.json()["id"] != first.json()["id"]
    async with api.sessionmaker() as session:
        rows = (await session.scalars(select(Ranking).order_by(Ranking.id))).all()
    assert [(r.api_key_id, r.order) for r in rows] == [(api.key_ids["user"], [1, 2, 0]), (api.key_ids["reviewer"], [0, 1, 2])]


async def test_an_order_that_is_not_a_permutation_is_refused_with_a_clear_error(api):
    cid = await api.add_completion(n=3)
    single = await api.add_completion(n=1)
    foreign = await api.add_completion(owner="other", n=3)
    cases = [
        ({"completion_id": cid, "order": [0, 0, 1]}, 400, "invalid_order", "repeated [0]"),
        ({"completion_id": cid, "order": [0, 1]}, 400, "invalid_order", "missing [2]"),
        ({"completion_id": cid, "order": [0, 1, 2, 3]}, 400, "invalid_order", "out of range [3]"),
        ({"completion_id": cid, "order": [0, 1, -2]}, 400, "invalid_order", "out of range [-2]"),
        ({"completion_id": cid, "order": []}, 422, "invalid_request", "order"),
        ({"completion_id": cid, "order": "012"}, 422, "invalid_request", "order"),
        ({"completion_id": single, "order": [0]}, 400, "not_rankable", "n > 1"),
        ({"completion_id": foreign, "order": [0, 1, 2]}, 404, "completion_not_found", "not found"),
        ({"completion_id": "chatcmpl-nope", "order": [0, 1]}, 404, "completion_not_found", "not found"),
    ]
    for body, status, code, words in cases:
        error = assert_openai_error(await api.post("/v1/rankings", "user", body), status, code)
        assert words in error["message"], (body, error)
    async with api.sessionmaker() as session:
        assert (await session.scalars(select(Ranking))).all() == []
