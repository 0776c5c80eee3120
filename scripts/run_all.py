"""`make run`: gateway (which starts vLLM) + learner scheduler, a dev admin key, Ctrl-C stops everything."""

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from store.config import database_url
from store.engine import create_engine, create_sessionmaker
from store.queries.keys import create_key, key_by_secret

DEV_KEY_FILE = Path("data/dev-admin.key")


async def _dev_admin_key() -> str:
    """Reuse the dev admin key across runs (kept in data/, mode 600); create it if missing or unknown."""
    engine = create_engine(database_url())
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            if DEV_KEY_FILE.is_file():
                secret = DEV_KEY_FILE.read_text().strip()
                if await key_by_secret(session, secret):
                    return secret
            _, secret = await create_key(session, "dev-admin", "admin")
    finally:
        await engine.dispose()
    DEV_KEY_FILE.parent.mkdir(parents=True, exist_ok=True)
    DEV_KEY_FILE.write_text(secret + "\n")
    DEV_KEY_FILE.chmod(0o600)
    return secret


def _interrupt(*_):
    raise KeyboardInterrupt


def main() -> int:
    # Explicit handlers: SIGINT may arrive ignored from a non-interactive parent, and SIGTERM means stop too.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    model = os.environ.get("MODEL_PATH", "models/smollm2-135m-instruct")
    host, port = os.environ.get("FLYWHEEL_HOST", "127.0.0.1"), os.environ.get("FLYWHEEL_PORT", "8000")
    key = asyncio.run(_dev_admin_key())
    # Own sessions: the terminal's Ctrl-C reaches only this launcher, which then stops each child exactly
    # once (a second SIGINT would make uvicorn skip its graceful shutdown, and with it stopping vLLM).
    children = [
        subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve", "--model", model, "--host", host, "--port", port],
            start_new_session=True,
        ),
        subprocess.Popen([sys.executable, "-m", "learner", "run"], start_new_session=True),
    ]
    url = f"http://{host}:{port}"
    print(
        f"\nFlywheel gateway: {url}  (OpenAI base URL {url}/v1, model \"policy\")\n"
        f"vLLM is starting (~40 s on CPU); {url}/readyz answers 200 when the champion is serving.\n"
        f"Dev admin key (also in {DEV_KEY_FILE}): {key}\n"
        f"Try: curl {url}/v1/chat/completions -H 'Authorization: Bearer {key}' "
        "-H 'Content-Type: application/json' -d '{\"model\":\"policy\",\"messages\":[{\"role\":\"user\",\"content\":\"Hi!\"}]}'\n"
        f"Review page: {url}/review   Ctrl-C stops everything.\n",
        flush=True,
    )
    try:
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
        print("a Flywheel process exited; stopping the others", file=sys.stderr)
    except KeyboardInterrupt:
        pass
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGINT)
    deadline = time.monotonic() + 40
    for child in children:
        try:
            child.wait(timeout=max(1, deadline - time.monotonic()))
        except (subprocess.TimeoutExpired, KeyboardInterrupt):
            child.kill()
    print("Flywheel stopped.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
