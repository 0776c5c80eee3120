"""The reviewer page in a real browser: Debian's chromium driven by Playwright against a real uvicorn server.

The app is the in-process feedback app (tests/gateway/feedback_app.py: real lifespan, a vLLM URL that
answers nothing, which the review endpoints never call) on a migrated SQLite database, seeded with
feedback and votes, and served by uvicorn on a free loopback port as a task on the test's event loop.
`make browser` (a prerequisite of `make test`) installs chromium where apt-get and root are available.
"""

import asyncio
import contextlib
from pathlib import Path

import pytest
import uvicorn

from store.enums import PolicyStatus
from store.migrate import upgrade
from store.queries.comparisons import add_comparison, upsert_vote
from tests.conftest import free_port
from tests.gateway.feedback_app import feedback_api

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]  # fmt: skip
TIMEOUT_MS = 10_000
HOSTILE_COMMENT = "<b>not bold</b> & <script>window.pwned = 1</script>"

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing (install Debian's chromium: `make browser` as root)"
)


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers: it shares the test's loop and must leave pytest's Ctrl-C alone."""

    @contextlib.contextmanager
    def capture_signals(self):
        yield


async def _seed(api) -> None:
    challenger = await api.add_policy("challenger-v2", PolicyStatus.CANARY)
    ratings = [("up", ()), ("down", ("too_long",)), ("up", ()), ("down", ("incorrect",))]
    for i, (rating, reasons) in enumerate(ratings):
        cid = await api.add_completion(policy=challenger if i % 2 else None)
        body = {"completion_id": cid, "rating": rating, "reasons": list(reasons)}
        if i == 3:
            body["comment"] = HOSTILE_COMMENT
        response = await api.post("/v1/feedback", "user", body)
        assert response.status_code == 200, response.text
    a_side, b_side = await api.add_completions(6, policy=challenger), await api.add_completions(6)
    async with api.sessionmaker() as session:
        for i, (a, b) in enumerate(zip(a_side, b_side, strict=True)):
            add_comparison(session, comparison_id=f"page-cmp-{i}", api_key_id=api.key_ids["user"], messages=[],
                           params={}, completion_a_id=a, completion_b_id=b)  # fmt: skip
        await session.flush()
        for i in range(6):
            winner = "b" if i == 5 else "a"
            await upsert_vote(session, comparison_id=f"page-cmp-{i}", api_key_id=api.key_ids["user"], winner=winner, reason=None)
        await session.commit()


@pytest.fixture
async def review_server(tmp_path):
    """(base URL, FeedbackApi) for a seeded gateway served by uvicorn on a loopback port."""
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'flywheel.db'}"
    upgrade(db_url)
    async with feedback_api(db_url) as api:
        await _seed(api)
        port = free_port()
        # The lifespan already ran inside feedback_api; uvicorn only serves HTTP.
        server = _Server(uvicorn.Config(api.app, host="127.0.0.1", port=port, lifespan="off", log_level="warning"))
        task = asyncio.create_task(server.serve())
        for _ in range(200):
            if server.started or task.done():
                break
            await asyncio.sleep(0.02)
        assert server.started, "uvicorn did not start"
        try:
            yield f"http://127.0.0.1:{port}", api
        finally:
            server.should_exit = True
            await asyncio.wait_for(task, 10)


async def test_review_page_renders_stats_leaderboard_and_feedback(review_server, tmp_path):
    from playwright.async_api import async_playwright, expect

    base, api = review_server
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(TIMEOUT_MS)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.goto(f"{base}/review")
            await expect(page.locator("#who")).to_have_text("enter a reviewer key")

            # A key without the reviewer role: a visible error, nothing rendered.
            await page.fill("#key", api.secrets["user"])
            await page.click("#key-form button:not([type=button])")
            error = page.locator("#error")
            await expect(error).to_be_visible()
            await expect(error).to_contain_text("reviewer")
            await expect(page.locator("#feedback tr")).to_have_count(0)
            await page.screenshot(path=tmp_path / "review-wrong-key.png", full_page=True)

            # The reviewer key: stats, leaderboard and the feedback rows.
            await page.fill("#key", api.secrets["reviewer"])
            await page.click("#key-form button:not([type=button])")
            await expect(page.locator("#feedback tr")).to_have_count(4)
            await expect(error).to_have_text("")
            assert await page.evaluate("localStorage.getItem('flywheel.reviewerKey')") == api.secrets["reviewer"]

            stats = page.locator("#stats")
            await expect(stats).to_contain_text("4 verdicts, up-rate 50.0%")
            await expect(stats).to_contain_text("6 votes")
            await expect(stats.locator("tbody tr")).to_have_count(2)
            await expect(stats).to_contain_text("champion-v1")
            await expect(stats).to_contain_text("challenger-v2")

            board = page.locator("#leaderboard")
            await expect(board).to_contain_text("6 votes used")
            rows = board.locator("tbody tr")
            await expect(rows).to_have_count(2)
            await expect(rows.nth(0)).to_contain_text("challenger-v2")  # won 5 of 6
            await expect(rows.nth(1)).to_contain_text("champion-v1 ★")

            feedback = page.locator("#feedback")
            await expect(feedback).to_contain_text("▲ up")
            await expect(feedback).to_contain_text("▼ down")
            await expect(feedback).to_contain_text("too_long")
            await expect(feedback).to_contain_text("user: Say something.")
            await expect(feedback).to_contain_text("choice 0")
            # User text is shown as text, never parsed as markup.
            await expect(feedback).to_contain_text(HOSTILE_COMMENT)
            assert await feedback.locator("b, script").count() == 0
            assert await page.evaluate("window.pwned") is None

            # A filter narrows the rows.
            await page.select_option("#rating", "down")
            await page.click("#filters button:not([type=button])")
            await expect(page.locator("#feedback tr")).to_have_count(2)

            shot = tmp_path / "review.png"
            await page.screenshot(path=shot, full_page=True)
            assert shot.stat().st_size > 10_000

            # A wrong key after a good one: the error, and no stale tables beside it.
            await page.fill("#key", "fw-not-a-key")
            await page.click("#key-form button:not([type=button])")
            await expect(error).to_be_visible()
            await expect(page.locator("#feedback tr")).to_have_count(0)
            await expect(stats).to_have_text("—")
            await expect(board).to_have_text("—")
            await page.screenshot(path=tmp_path / "review-bad-key.png", full_page=True)
            assert errors == []
        finally:
            await browser.close()
