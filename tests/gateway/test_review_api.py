"""Reviewer API in-process on SQLite and PostgreSQL: list + cursor, filters, exports, stats, leaderboard, page."""

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import pytest

from store.enums import PolicyStatus
from store.queries.comparisons import add_comparison, upsert_vote
from tests.gateway.feedback_app import assert_openai_error, feedback_api


@pytest.fixture
async def api(db_url):
    async with feedback_api(db_url) as api:
        yield api


async def _rate(api, who, cid, rating, reasons=(), choice_index=0):
    body = {"completion_id": cid, "choice_index": choice_index, "rating": rating, "reasons": list(reasons)}
    response = await api.post("/v1/feedback", who, body)
    assert response.status_code == 200, response.text
    return response.json()["id"]


async def test_reviewer_role_is_required(api):
    for path in ("/v1/review/feedback", "/v1/review/stats", "/v1/review/leaderboard", "/v1/review/feedback.csv"):
        assert_openai_error(await api.get(path, "user"), 403, "insufficient_role")
        assert_openai_error(await api.client.get(path), 401)
        assert (await api.get(path, "reviewer")).status_code == 200, path


async def test_feedback_list_filters_and_cursor_pagination(api):
    other_policy = await api.add_policy("challenger-v2")
    ids = []
    for i in range(7):
        cid = await api.add_completion(policy=other_policy if i % 3 == 0 else None)
        ids.append(await _rate(api, "user", cid, "down" if i % 2 else "up", ["too_long"] if i % 2 else ()))

    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = (await api.get("/v1/review/feedback", "reviewer", **params)).json()
        seen += [item["id"] for item in page["data"]]
        pages += 1
        cursor = page["next_cursor"]
        assert page["has_more"] == (cursor is not None)
        if cursor is None:
            break
    assert pages == 3 and seen == sorted(ids, reverse=True)
    first = (await api.get("/v1/review/feedback", "reviewer", limit=1)).json()["data"][0]
    assert first["messages"] and first["response"] == "choice 0" and first["key_name"] == "user"

    downs = (await api.get("/v1/review/feedback", "reviewer", rating="down")).json()["data"]
    assert len(downs) == 3 and all(item["rating"] == "down" and item["reasons"] == ["too_long"] for item in downs)
    by_policy = (await api.get("/v1/review/feedback", "reviewer", policy_version="challenger-v2")).json()["data"]
    assert len(by_policy) == 3 and {item["policy_version"] for item in by_policy} == {"challenger-v2"}
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert (await api.get("/v1/review/feedback", "reviewer", since=future)).json()["data"] == []
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    assert len((await api.get("/v1/review/feedback", "reviewer", since=past)).json()["data"]) == 7

    for bad in ("garbage", "eyJub3BlIjogMX0", ""):
        if bad:
            assert_openai_error(await api.get("/v1/review/feedback", "reviewer", cursor=bad), 400, "invalid_cursor")
    assert_openai_error(await api.get("/v1/review/feedback", "reviewer", rating="meh"), 422)
    assert_openai_error(await api.get("/v1/review/feedback", "reviewer", limit=0), 422)
    assert_openai_error(await api.get("/v1/review/feedback", "reviewer", since="yesterday"), 422)


async def test_csv_and_jsonl_downloads_hold_the_filtered_feedback(api):
    for i in range(3):
        await _rate(api, "user", await api.add_completion(), ("up", "down", "down")[i], ["formatting", "other"][: i])
    text = (await api.get("/v1/review/feedback.csv", "reviewer", rating="down")).text
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 2 and {r["rating"] for r in rows} == {"down"}
    assert {r["reasons"] for r in rows} == {"formatting", "formatting;other"}
    assert json.loads(rows[0]["messages"])[0]["role"] == "user"
    jsonl = (await api.get("/v1/review/feedback.jsonl", "reviewer")).text.splitlines()
    assert len(jsonl) == 3 and all(json.loads(line)["completion_id"] for line in jsonl)
    via_param = await api.get("/v1/review/feedback", "reviewer", format="jsonl")
    assert via_param.headers["content-type"].startswith("application/x-ndjson")
    assert via_param.text.splitlines() == jsonl
    assert "attachment" in via_param.headers["content-disposition"]


async def test_stats_volume_up_rate_reasons_votes_and_agreement(api):
    challenger = await api.add_policy("challenger-v2")
    shared = await api.add_completion(n=2)
    await _rate(api, "user", shared, "down", ["incorrect", "too_long"])
    await _rate(api, "reviewer", shared, "down", ["incorrect"])  # agrees with user
    await _rate(api, "user", shared, "up", choice_index=1)
    await _rate(api, "reviewer", shared, "down", ["unhelpful"], choice_index=1)  # disagrees
    await _rate(api, "user", await api.add_completion(policy=challenger), "up")
    await api.post("/v1/rankings", "user", {"completion_id": shared, "order": [1, 0]})
    comparison = (await api.post("/v1/comparisons", "user", {"messages": [{"role": "user", "content": "hi"}]})).json()["id"]
    await api.post(f"/v1/comparisons/{comparison}/vote", "user", {"winner": "a"})
    await api.post(f"/v1/comparisons/{comparison}/vote", "reviewer", {"winner": "a"})

    stats = (await api.get("/v1/review/stats", "reviewer")).json()
    assert (stats["feedback"], stats["up"], stats["down"]) == (5, 2, 3)
    assert stats["up_rate"] == pytest.approx(0.4) and stats["rankings"] == 1
    assert stats["votes"] == {"total": 2, "a": 2, "b": 0, "tie": 0, "both_bad": 0}
    per = {p["policy_version"]: p for p in stats["policies"]}
    assert per["champion-v1"]["feedback"] == 4 and per["champion-v1"]["up_rate"] == pytest.approx(0.25)
    assert per["champion-v1"]["top_reasons"][0] == {"reason": "incorrect", "count": 2}
    assert per["champion-v1"]["votes"] == 2 and per["champion-v1"]["rankings"] == 1
    assert per["challenger-v2"]["feedback"] == 1 and per["challenger-v2"]["up_rate"] == 1.0
    assert stats["agreement"]["feedback"] == {"items": 2, "pairs": 2, "agreeing_pairs": 1, "rate": 0.5}
    assert stats["agreement"]["votes"] == {"items": 1, "pairs": 1, "agreeing_pairs": 1, "rate": 1.0}
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert (await api.get("/v1/review/stats", "reviewer", since=future)).json()["feedback"] == 0


async def test_leaderboard_ranks_versions_by_bradley_terry_with_intervals(api):
    strong = await api.add_policy("strong-v2", PolicyStatus.CANARY)
    pairs = list(zip(await api.add_completions(40, policy=strong), await api.add_completions(40), strict=True))
    pairs.append(tuple(await api.add_completions(2)))  # champion vs itself: no information
    # strong (side a) wins 32, ties 4, loses 4; the self-comparison is skipped.
    winners = ["a" if i % 5 else ("b" if i % 10 else "tie") for i in range(40)] + ["a"]
    async with api.sessionmaker() as session:
        for i, ((a, b), winner) in enumerate(zip(pairs, winners, strict=True)):
            add_comparison(session, comparison_id=f"cmp-{i}", api_key_id=api.key_ids["user"], messages=[],
                           params={}, completion_a_id=a, completion_b_id=b)  # fmt: skip
        await session.flush()
        for i, winner in enumerate(winners):
            await upsert_vote(session, comparison_id=f"cmp-{i}", api_key_id=api.key_ids["user"], winner=winner, reason=None)
        await session.commit()

    board = (await api.get("/v1/review/leaderboard", "reviewer", bootstrap=100)).json()
    assert board["votes_used"] == 40 and board["votes_skipped"] == 1 and board["champion"] == "champion-v1"
    first, second = board["entries"]
    assert (first["policy_version"], second["policy_version"]) == ("strong-v2", "champion-v1")
    assert first["score"] > 0 > second["score"] and first["score"] == pytest.approx(-second["score"])
    for entry in board["entries"]:
        assert entry["ci_low"] <= entry["score"] <= entry["ci_high"]
    assert first["ci_low"] > second["ci_high"]  # 36-4 is a clear difference
    assert first["win_probability_vs_champion"] > 0.75 and second["win_probability_vs_champion"] == 0.5
    assert first["games"] == 40 and first["wins"] == 34  # ties count half
    assert_openai_error(await api.get("/v1/review/leaderboard", "reviewer", bootstrap=5), 422)


async def test_review_page_is_served(api):
    page = await api.client.get("/review")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for needle in ("localStorage", "/v1/review/stats", "/v1/review/leaderboard", "/v1/review/feedback", "next_cursor"):
        assert needle in page.text
