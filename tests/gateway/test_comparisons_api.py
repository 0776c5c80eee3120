"""A/B comparisons: in-process on SQLite and PostgreSQL with a stub generator, and once on a real vLLM."""

import random

import httpx
import pytest
from sqlalchemy import select

from gateway.services.comparisons import pick_pair
from store.enums import PolicyStatus
from store.models import Comparison, ComparisonVote, Completion
from tests.gateway.feedback_app import MESSAGES, assert_openai_error, feedback_api


@pytest.fixture
async def api(db_url):
    async with feedback_api(db_url) as api:
        yield api


async def test_compare_vote_then_reveal(api):
    created = await api.post("/v1/comparisons", "user", {"messages": MESSAGES, "max_tokens": 8})
    assert created.status_code == 200, created.text
    body = created.json()
    assert [c["label"] for c in body["candidates"]] == ["a", "b"]
    assert all(c["content"] and "policy_version" not in c for c in body["candidates"])  # anonymous
    # Both candidates went through the chat service as n=1 samples, temperature 1.0 by default.
    assert [(req.n, req.temperature, req.stream) for req, _ in api.chat.calls] == [(1, 1.0, False)] * 2
    async with api.sessionmaker() as session:
        comparison = await session.get(Comparison, body["id"])
        sides = {comparison.completion_a_id, comparison.completion_b_id}
        stored = (await session.scalars(select(Completion).where(Completion.id.in_(sides)))).all()
    assert len(stored) == 2 and all(c.policy_version_id == api.champion.version_id for c in stored)

    hidden = (await api.get(f"/v1/comparisons/{body['id']}", "user")).json()
    assert hidden["revealed"] is False and "vote" not in hidden
    assert all("policy_version" not in c for c in hidden["candidates"])

    vote = await api.post(f"/v1/comparisons/{body['id']}/vote", "user", {"winner": "a", "reason": "clearer"})
    assert vote.status_code == 200, vote.text
    changed = await api.post(f"/v1/comparisons/{body['id']}/vote", "user", {"winner": "tie"})
    assert changed.json()["id"] == vote.json()["id"] and changed.json()["winner"] == "tie"

    revealed = (await api.get(f"/v1/comparisons/{body['id']}", "user")).json()
    assert revealed["revealed"] is True and revealed["vote"]["winner"] == "tie"
    assert [c["policy_version"] for c in revealed["candidates"]] == [api.champion.name] * 2
    assert [c["content"] for c in revealed["candidates"]] == [c["content"] for c in body["candidates"]]
    async with api.sessionmaker() as session:
        assert len((await session.scalars(select(ComparisonVote))).all()) == 1


async def test_a_live_canary_is_pitted_against_the_champion(api):
    canary = await api.add_policy("canary-v2", PolicyStatus.CANARY)
    api.app.state.policies.canary = canary  # what the policy manager holds while a canary is live
    api.app.state.policies.live = lambda: [api.champion, canary]
    created = await api.post("/v1/comparisons", "user", {"messages": MESSAGES})
    assert created.status_code == 200, created.text
    assert {policy.name for _, policy in api.chat.calls} == {"champion-v1", "canary-v2"}
    await api.post(f"/v1/comparisons/{created.json()['id']}/vote", "user", {"winner": "b"})
    revealed = (await api.get(f"/v1/comparisons/{created.json()['id']}", "user")).json()
    assert sorted(c["policy_version"] for c in revealed["candidates"]) == ["canary-v2", "champion-v1"]


def test_pairs_come_in_random_order_and_honour_the_challenger_share():
    class Policies:
        champion, canary = object(), object()

        def live(self):
            return [self.champion, self.canary]

    policies = Policies()
    policies.champion = type("P", (), {"version_id": 1})()
    policies.canary = type("P", (), {"version_id": 2})()
    rng = random.Random(0)
    pairs = [pick_pair(policies, 1.0, rng) for _ in range(50)]
    assert {(a.version_id, b.version_id) for a, b in pairs} == {(1, 2), (2, 1)}
    assert all(a.version_id != b.version_id for a, b in pairs)
    same = [pick_pair(policies, 0.0, rng) for _ in range(10)]
    assert all(a.version_id == b.version_id == 1 for a, b in same)


async def test_voting_errors(api):
    mine = (await api.post("/v1/comparisons", "user", {"messages": MESSAGES})).json()["id"]
    theirs = (await api.post("/v1/comparisons", "other", {"messages": MESSAGES})).json()["id"]
    assert_openai_error(await api.post(f"/v1/comparisons/{mine}/vote", "user", {"winner": "c"}), 422, "invalid_request")
    assert_openai_error(await api.post(f"/v1/comparisons/{mine}/vote", "user", {}), 422, "invalid_request")
    assert_openai_error(
        await api.post(f"/v1/comparisons/{mine}/vote", "user", {"winner": "a", "reason": "x" * 4001}), 422
    )
    foreign = await api.post(f"/v1/comparisons/{theirs}/vote", "user", {"winner": "a"})
    unknown = await api.post("/v1/comparisons/cmp-nope/vote", "user", {"winner": "a"})
    assert_openai_error(foreign, 404, "comparison_not_found")
    assert_openai_error(unknown, 404, "comparison_not_found")
    assert_openai_error(await api.get(f"/v1/comparisons/{theirs}", "user"), 404, "comparison_not_found")
    # Generation parameters are checked like chat's; a comparison is one unstreamed sample per side.
    assert_openai_error(await api.post("/v1/comparisons", "user", {"messages": []}), 422)
    assert_openai_error(await api.post("/v1/comparisons", "user", {"messages": MESSAGES, "n": 2}), 422)
    assert_openai_error(await api.post("/v1/comparisons", "user", {"messages": MESSAGES, "stream": True}), 422)
    assert_openai_error(await api.post("/v1/comparisons", "user", {"messages": MESSAGES, "temperature": 3}), 422)
    # Reviewers may vote on anyone's comparison (agreement needs two judges of one item).
    assert (await api.post(f"/v1/comparisons/{theirs}/vote", "reviewer", {"winner": "both_bad"})).status_code == 200


@pytest.mark.vllm
def test_comparison_through_a_real_gateway_and_vllm(gateway):
    key = gateway.create_key("user")
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=gateway.url, headers=headers, timeout=120) as client:
        created = client.post("/v1/comparisons", json={"messages": MESSAGES, "max_tokens": 16})
        assert created.status_code == 200, created.text
        body = created.json()
        assert [c["label"] for c in body["candidates"]] == ["a", "b"]
        assert all(isinstance(c["content"], str) and "policy_version" not in c for c in body["candidates"])
        assert client.post(f"/v1/comparisons/{body['id']}/vote", json={"winner": "b"}).status_code == 200
        revealed = client.get(f"/v1/comparisons/{body['id']}").json()
        assert revealed["revealed"] and all(c["policy_version"] for c in revealed["candidates"])
