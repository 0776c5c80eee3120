"""`python -m gateway serve [...]` and `python -m gateway keys create --name N --role R`."""

import argparse
import asyncio
import logging
import sys

from store.enums import Role


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from gateway.app import create_app
    from gateway.settings import Settings

    overrides = {"host": args.host, "port": args.port, "model_path": args.model, "vllm_urls": args.vllm_url or None}
    settings = Settings(**{k: v for k, v in overrides.items() if v is not None})
    app = create_app(settings)
    uvicorn.run(
        app, host=settings.host, port=settings.port, log_level=args.log_level, timeout_graceful_shutdown=30,
        # Per-request access lines cost real CPU on the hot path; /metrics counts requests instead.
        access_log=args.access_log,
    )  # fmt: skip
    return 0


async def _create_key(args: argparse.Namespace) -> str:
    from store.config import database_url
    from store.engine import create_engine, create_sessionmaker
    from store.migrate import ensure_migrated
    from store.queries.keys import create_key

    engine = create_engine(database_url())
    try:
        await ensure_migrated(engine)
        async with create_sessionmaker(engine)() as session, session.begin():
            key, secret = await create_key(
                session, args.name, args.role, rate_limit_per_s=args.rate_limit_per_s, rate_limit_burst=args.burst
            )
            print(f"created {key.role} key #{key.id} {key.name!r} (only its hash is stored; keep it now):", file=sys.stderr)
        return secret
    finally:
        await engine.dispose()


def _keys_create(args: argparse.Namespace) -> int:
    print(asyncio.run(_create_key(args)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m gateway")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the gateway")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--model", help="local HF checkpoint dir, served through a vLLM child process")
    serve.add_argument("--vllm-url", action="append", help="a running vLLM server (repeat for replicas)")
    serve.add_argument("--log-level", default="info")
    serve.add_argument("--access-log", action="store_true", help="log every request (off: /metrics counts them)")
    serve.set_defaults(func=_serve)

    keys = sub.add_parser("keys", help="manage API keys").add_subparsers(dest="keys_command", required=True)
    create = keys.add_parser("create", help="create a key; the secret is the last line of stdout")
    create.add_argument("--name", required=True)
    create.add_argument("--role", choices=[r.value for r in Role], default=Role.USER.value)
    create.add_argument("--rate-limit-per-s", type=float)
    create.add_argument("--burst", type=int)
    create.set_defaults(func=_keys_create)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # httpx logs every upstream request at INFO: one line per chat request is noise and CPU.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
