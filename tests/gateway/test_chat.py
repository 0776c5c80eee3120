"""Chat through a real gateway process in front of a real vLLM (tiny model), checked in the real DB."""

import asyncio
import time

import httpx
import openai
import pytest
from sqlalchemy import select

from store.models import Completion, CompletionChoice, PolicyVersion
from tests.gateway_process import query

pytestmark = pytest.mark.vllm

MESSAGES = [{"role": "user", "content": "Say hello."}]


@pytest.fixture(scope="module")
def user_key(gateway) -> str:
    return gateway.create_key("user")


@pytest.fixture(scope="module")
def client(gateway, user_key) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=user_key, max_retries=0)


def stored(gateway, completion_id: str, wait_s: float = 10.0):
    deadline = time.monotonic() + wait_s
    while True:
        rows = asyncio.run(query(gateway.db_url, select(Completion).where(Completion.id == completion_id)))
        if rows or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert rows, f"completion {completion_id} was not stored"
    completion = rows[0][0]
    choices = [
        row[0]
        for row in asyncio.run(
            query(
                gateway.db_url,
                select(CompletionChoice)
                .where(CompletionChoice.completion_id == completion_id)
                .order_by(CompletionChoice.index),
            )
        )
    ]
    version = asyncio.run(query(gateway.db_url, select(PolicyVersion).where(PolicyVersion.id == completion.policy_version_id)))
    return completion, choices, version[0][0]


def test_non_stream_chat_is_stored_with_the_champion_version(gateway, client):
    raw = client.chat.completions.with_raw_response.create(
        model="policy", messages=MESSAGES, max_tokens=8, temperature=0.7, seed=3, stop=["\n\n"]
    )
    response = raw.parse()
    header_version = raw.headers["x-policy-version"]
    assert float(raw.headers["x-gateway-overhead-ms"]) >= 0
    assert response.model_extra["policy_version"] == header_version
    assert response.choices[0].message.content is not None

    completion, choices, version = stored(gateway, response.id)
    assert version.name == header_version and version.status == "champion" and version.kind == "base"
    assert version.sha256 and len(version.sha256) == 64
    assert completion.messages == MESSAGES
    assert completion.params == {"max_tokens": 8, "temperature": 0.7, "seed": 3, "stop": ["\n\n"], "n": 1}
    assert completion.status == "complete" and completion.stream is False
    assert completion.prompt_tokens > 0 and completion.completion_tokens == response.usage.completion_tokens
    assert completion.latency_ms > 0
    assert [c.text for c in choices] == [response.choices[0].message.content]
    assert choices[0].finish_reason == response.choices[0].finish_reason


def test_n2_stores_every_choice(gateway, client):
    response = client.chat.completions.create(model="policy", messages=MESSAGES, max_tokens=6, n=2, temperature=1.0)
    assert len(response.choices) == 2
    _, choices, _ = stored(gateway, response.id)
    assert [c.index for c in choices] == [0, 1]
    assert [c.text for c in choices] == [c.message.content for c in response.choices]


def test_stream_passes_through_and_is_stored_when_it_ends(gateway, client):
    with client.chat.completions.with_streaming_response.create(
        model="policy", messages=MESSAGES, max_tokens=8, stream=True, n=2
    ) as raw:
        header_version = raw.headers["x-policy-version"]
        chunks = list(raw.parse())
    assert chunks[0].model_extra.get("policy_version") == header_version
    assert len({chunk.id for chunk in chunks}) == 1
    texts = {0: "", 1: ""}
    for chunk in chunks:
        for choice in chunk.choices:
            texts[choice.index] += choice.delta.content or ""
    # No usage chunk unless asked for, even though the gateway asks vLLM for one to record tokens.
    assert all(chunk.usage is None for chunk in chunks)

    completion, choices, version = stored(gateway, chunks[0].id)
    assert version.name == header_version
    assert completion.stream is True and completion.status == "complete"
    assert completion.completion_tokens and completion.prompt_tokens
    assert {c.index: c.text for c in choices} == texts


def test_stream_usage_chunk_when_asked(client):
    chunks = list(
        client.chat.completions.create(
            model="policy", messages=MESSAGES, max_tokens=4, stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_stream_client_disconnect_is_stored_as_such(gateway, user_key):
    # ignore_eos (a vLLM extra, passed through) and n=8 keep the stream going long after we hang up, even
    # on an idle machine where one 1000-token stream of the tiny model would end within a second.
    body = {"model": "policy", "messages": MESSAGES, "max_tokens": 1000, "n": 8, "stream": True, "ignore_eos": True}
    with httpx.Client(timeout=30) as http:
        with http.stream(
            "POST", f"{gateway.url}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {user_key}"}
        ) as response:
            completion_id = response.headers["x-completion-id"]
            next(response.iter_lines())  # read the first event, then hang up mid-stream
    completion, choices, _ = stored(gateway, completion_id)
    assert completion.status == "client_disconnected"
    assert choices and all(c.finish_reason is None for c in choices)  # the partial texts are kept


def test_models_lists_the_policy_alias(client):
    ids = [model.id for model in client.models.list().data]
    assert "policy" in ids


def test_missing_and_bad_keys_are_401(gateway):
    anonymous = httpx.post(f"{gateway.url}/v1/chat/completions", json={"messages": MESSAGES})
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["type"] == "authentication_error"
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="fw-wrong", max_retries=0).chat.completions.create(
            model="policy", messages=MESSAGES, max_tokens=2
        )


def test_rate_limit_is_429_with_retry_after(gateway):
    key = gateway.create_key("user", rate_limit_per_s=0.2, rate_limit_burst=2)
    headers = {"Authorization": f"Bearer {key}"}
    statuses = [httpx.get(f"{gateway.url}/v1/models", headers=headers) for _ in range(3)]
    assert [r.status_code for r in statuses] == [200, 200, 429]
    assert int(statuses[-1].headers["retry-after"]) >= 1
    assert statuses[-1].json()["error"]["code"] == "rate_limit_exceeded"


@pytest.mark.parametrize(
    ("payload", "status", "code"),
    [
        (b"{not json", 400, "invalid_json"),
        ({"model": "policy"}, 422, "invalid_request"),
        ({"model": "policy", "messages": []}, 422, "invalid_request"),
        ({"model": "policy", "messages": MESSAGES, "n": 0}, 422, "invalid_request"),
        ({"model": "policy", "messages": MESSAGES, "temperature": 9}, 422, "invalid_request"),
        ({"model": "policy", "messages": [{"role": "wizard", "content": "x"}]}, 422, "invalid_request"),
        ({"model": "no-such-model", "messages": MESSAGES}, 404, "model_not_found"),
        ({"model": "policy", "messages": MESSAGES, "max_tokens": 100000}, 400, "upstream_rejected"),
    ],
)
def test_bad_requests_get_openai_style_4xx(gateway, user_key, payload, status, code):
    headers = {"Authorization": f"Bearer {user_key}", "Content-Type": "application/json"}
    kwargs = {"content": payload} if isinstance(payload, bytes) else {"json": payload}
    response = httpx.post(f"{gateway.url}/v1/chat/completions", headers=headers, timeout=30, **kwargs)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["message"] and error["type"]


def test_oversized_body_is_413(gateway, user_key):
    huge = {"model": "policy", "messages": [{"role": "user", "content": "x" * 1_200_000}]}
    response = httpx.post(
        f"{gateway.url}/v1/chat/completions", json=huge, headers={"Authorization": f"Bearer {user_key}"}
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"


def test_health_ready_and_metrics(gateway, client):
    assert httpx.get(f"{gateway.url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{gateway.url}/readyz").json()
    assert ready["status"] == "ready" and all(ready["checks"].values())
    client.chat.completions.create(model="policy", messages=MESSAGES, max_tokens=2)
    text = httpx.get(f"{gateway.url}/metrics").text
    for name in (
        "flywheel_requests_total",
        "flywheel_request_latency_seconds_bucket",
        "flywheel_tokens_total",
        "flywheel_gateway_overhead_seconds",
        "flywheel_upstream_errors_total",
    ):
        assert name in text
    assert 'route="/v1/chat/completions"' in text


def test_unhealthy_replicas_are_skipped(vllm_server, tmp_path):
    """Two replicas configured, one of them dead: every request goes to the live one."""
    from store.migrate import upgrade
    from tests.conftest import free_port
    from tests.gateway_process import GatewayProcess

    db_url = f"sqlite+aiosqlite:///{tmp_path / 'flywheel.db'}"
    upgrade(db_url)
    dead = f"http://127.0.0.1:{free_port()}"
    gateway = GatewayProcess.start(db_url, ["--vllm-url", dead, "--vllm-url", vllm_server], tmp_path)
    try:
        key = gateway.create_key("user")
        client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0)
        for _ in range(4):
            assert client.chat.completions.create(model="policy", messages=MESSAGES, max_tokens=2).choices
    finally:
        gateway.stop()


@pytest.mark.postgres
def test_chat_is_stored_on_postgres(vllm_server, tmp_path):
    """The same gateway on PostgreSQL: chat (plain and streamed) lands in the real database."""
    from store.migrate import upgrade
    from tests.conftest import _drop_postgres_database, _new_postgres_database, _postgres_available
    from tests.gateway_process import GatewayProcess

    if reason := _postgres_available():
        pytest.skip(reason)
    name, db_url = _new_postgres_database()
    try:
        upgrade(db_url)
        gateway = GatewayProcess.start(db_url, ["--vllm-url", vllm_server], tmp_path)
        try:
            client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=gateway.create_key("user"), max_retries=0)
            plain = client.chat.completions.create(model="policy", messages=MESSAGES, max_tokens=4)
            streamed = list(client.chat.completions.create(model="policy", messages=MESSAGES, max_tokens=4, stream=True))
            for completion_id in (plain.id, streamed[0].id):
                completion, choices, version = stored(gateway, completion_id)
                assert completion.status == "complete" and choices and version.status == "champion"
        finally:
            gateway.stop()
    finally:
        _drop_postgres_database(name)
