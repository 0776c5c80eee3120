"""An in-process gateway for the feedback-side API tests, on the `db_url` database, without vLLM.

The app runs its real lifespan against a vLLM URL that answers nothing; completions are inserted
directly, and comparisons generate through `StubChat`, which stores completions the way ChatService
does. Tests against a real vLLM use the session `gateway` fixture instead.
"""

import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import httpx
from fastapi import FastAPI

from gateway.app import create_app
from gateway.policy import LivePolicy
from gateway.services.chat import ChatResult, new_completion_id
from gateway.settings import Settings
from store.engine import create_engine, create_sessionmaker
from store.enums import PolicyKind, PolicyStatus
from store.queries.completions import ChoiceRecord, CompletionRecord, insert_completions
from store.queries.keys import create_key
from store.queries.policies import register
from tests.conftest import free_port

MESSAGES = [{"role": "user", "content": "Say something."}]
_names = itertools.count()


class StubChat:
    """Generates canned answers and stores them as completions (like ChatService.complete)."""

    def __init__(self, sessionmaker):
        self._sessionmaker = sessionmaker
        self.calls: list[tuple[object, LivePolicy]] = []

    async def complete(self, caller, req, started, policy=None) -> ChatResult:
        self.calls.append((req, policy))
        cid, text = new_completion_id(), f"answer #{len(self.calls)}"
        async with self._sessionmaker() as session, session.begin():
            await insert_completions(session, [CompletionRecord(
                id=cid, api_key_id=caller.key_id, policy_version_id=policy.version_id,
                messages=[m.model_dump(exclude_none=True) for m in req.messages], params=req.sampling_params(),
                choices=[ChoiceRecord(0, text, "stop")],
            )])  # fmt: skip
        body = {"id": cid, "choices": [{"index": 0, "message": {"role": "assistant", "content": text}}],
                "policy_version": policy.name}  # fmt: skip
        return ChatResult(body, policy, 0.0)


@dataclass
class FeedbackApi:
    app: FastAPI
    client: httpx.AsyncClient
    sessionmaker: object
    chat: StubChat
    champion: LivePolicy
    secrets: dict[str, str] = field(default_factory=dict)
    key_ids: dict[str, int] = field(default_factory=dict)

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secrets[who]}"}

    async def post(self, path: str, who: str, body) -> httpx.Response:
        return await self.client.post(path, json=body, headers=self.auth(who))

    async def get(self, path: str, who: str, **params) -> httpx.Response:
        return await self.client.get(path, params=params, headers=self.auth(who))

    async def add_key(self, who: str, role: str = "user") -> None:
        async with self.sessionmaker() as session, session.begin():
            key, secret = await create_key(session, who, role, rate_limit_per_s=1e6, rate_limit_burst=10**6)
        self.secrets[who], self.key_ids[who] = secret, key.id

    async def add_policy(self, name: str | None = None, status: str = PolicyStatus.CANDIDATE) -> LivePolicy:
        async with self.sessionmaker() as session, session.begin():
            version = await register(
                session, name=name or f"policy-{next(_names)}", kind=PolicyKind.BASE, artifact_path="/nowhere",
                sha256=None, status=status,
            )  # fmt: skip
        return LivePolicy.of(version)

    async def add_completion(self, owner: str = "user", n: int = 1, policy: LivePolicy | None = None) -> str:
        return (await self.add_completions(1, owner, n, policy))[0]

    async def add_completions(self, count: int, owner: str = "user", n: int = 1, policy: LivePolicy | None = None) -> list[str]:
        ids = [new_completion_id() for _ in range(count)]
        async with self.sessionmaker() as session, session.begin():
            await insert_completions(session, [
                CompletionRecord(
                    id=cid, api_key_id=self.key_ids[owner], policy_version_id=(policy or self.champion).version_id,
                    messages=MESSAGES, params={}, choices=[ChoiceRecord(i, f"choice {i}", "stop") for i in range(n)],
                )
                for cid in ids
            ])  # fmt: skip
        return ids


@asynccontextmanager
async def feedback_api(db_url: str, share_with: FeedbackApi | None = None, **settings) -> AsyncIterator[FeedbackApi]:
    """The app with keys `user`, `other` (role user) and `reviewer`, and a registered champion.

    `share_with`: a second app on the same database (like a second gateway process), reusing its keys.
    """
    engine = create_engine(db_url)
    sessionmaker = create_sessionmaker(engine)
    settings = Settings(
        database_url=db_url, vllm_urls=[f"http://127.0.0.1:{free_port()}"], auto_decide=False, auto_canary=False,
        policy_poll_s=3600, **settings,
    )  # fmt: skip
    app = create_app(settings)
    try:
        async with app.router.lifespan_context(app):
            chat = StubChat(sessionmaker)
            app.state.chat = chat
            transport = httpx.ASGITransport(app)
            async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test", timeout=30) as client:
                api = FeedbackApi(app, client, sessionmaker, chat, champion=None)  # type: ignore[arg-type]
                if share_with is not None:
                    api.champion, api.secrets, api.key_ids = share_with.champion, share_with.secrets, share_with.key_ids
                else:
                    api.champion = await api.add_policy("champion-v1", PolicyStatus.CHAMPION)
                    for who, role in (("user", "user"), ("other", "user"), ("reviewer", "reviewer")):
                        await api.add_key(who, role)
                app.state.policies.champion = api.champion
                yield api
    finally:
        await engine.dispose()


def assert_openai_error(response: httpx.Response, status: int | tuple[int, ...], code: str | None = None) -> dict:
    statuses = status if isinstance(status, tuple) else (status,)
    assert response.status_code in statuses, response.text
    error = response.json()["error"]
    assert error["message"] and error["type"], error
    if code is not None:
        assert error["code"] == code, error
    return error
