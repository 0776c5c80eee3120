"""`python -m learner run | once | export | make-demo-model`."""

import argparse
import sys
from pathlib import Path


def _make_demo_model(args: argparse.Namespace) -> int:
    from learner.demo_model import ensure_demo_model

    out = ensure_demo_model(Path(args.out), tiny=args.tiny, seed=args.seed)
    print(out)
    return 0


def _export(args: argparse.Namespace) -> int:
    from learner.data.export import export_command

    return export_command(args)


def _once(args: argparse.Namespace) -> int:
    from learner.pipeline import once_command

    return once_command(args)


def _run(args: argparse.Namespace) -> int:
    from learner.scheduler import run_command

    return run_command(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m learner", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("make-demo-model", help="build the offline demo model (SmolLM2-135M-Instruct) or --tiny")
    demo.add_argument("--out", required=True)
    demo.add_argument("--tiny", action="store_true", help="a small random Llama for tests, deterministic for --seed")
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(func=_make_demo_model)

    export = sub.add_parser("export", help="write cleaned feedback as a TRL dataset (JSONL)")
    export.add_argument("--kind", required=True, choices=["preference", "unpaired", "prompt"])
    export.add_argument("--out", required=True)
    export.add_argument("--since", help="ISO timestamp watermark (exclusive)")
    export.add_argument("--until", help="ISO timestamp watermark (inclusive)")
    export.set_defaults(func=_export)

    once = sub.add_parser("once", help="run one full learning cycle now")
    once.add_argument("--algorithm", choices=["auto", "ppo", "kto", "dpo"], default=None)
    once.set_defaults(func=_once)

    run = sub.add_parser("run", help="run learning cycles on a schedule")
    run.set_defaults(func=_run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
