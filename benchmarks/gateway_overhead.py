"""Gateway overhead: the same chat workload sent straight to vLLM and through the gateway, in one run.

    .venv/bin/python -m benchmarks.gateway_overhead [--requests 300] [--concurrency 32]

Loopback only, bounded. Goal: >= 0.97x direct throughput and <= 2 ms added p50.
"""

import argparse
import asyncio
import json

from benchmarks._common import gateway_for, run_load, vllm_server

MESSAGES = [{"role": "user", "content": "Tell me something short."}]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2, help="alternate direct/gateway rounds to cancel drift")
    args = parser.parse_args(argv)
    params = {"max_tokens": args.max_tokens, "temperature": 0.0, "ignore_eos": True}
    with vllm_server() as (vllm_url, model_id), gateway_for(vllm_url) as gateway:
        key = gateway.create_key("user", name="bench", rate_limit_per_s=1e9, rate_limit_burst=10**9)
        direct_body = {"model": model_id, "messages": MESSAGES, **params}
        gateway_body = {"model": "policy", "messages": MESSAGES, **params}
        warm = {"total": 32, "concurrency": 8}
        asyncio.run(run_load(f"{vllm_url}/v1/chat/completions", direct_body, {}, **warm))
        asyncio.run(run_load(f"{gateway.url}/v1/chat/completions", gateway_body, {"Authorization": f"Bearer {key}"}, **warm))
        results = {"direct": [], "gateway": []}
        for _ in range(args.rounds):
            results["direct"].append(
                asyncio.run(run_load(f"{vllm_url}/v1/chat/completions", direct_body, {}, args.requests, args.concurrency))
            )
            results["gateway"].append(
                asyncio.run(
                    run_load(
                        f"{gateway.url}/v1/chat/completions", gateway_body, {"Authorization": f"Bearer {key}"},
                        args.requests, args.concurrency,
                    )  # fmt: skip
                )
            )
    mean = lambda runs, k: sum(r[k] for r in runs) / len(runs)  # noqa: E731
    summary = {
        "benchmark": "gateway_overhead",
        "direct_rps": mean(results["direct"], "throughput_rps"),
        "gateway_rps": mean(results["gateway"], "throughput_rps"),
        "throughput_ratio": mean(results["gateway"], "throughput_rps") / mean(results["direct"], "throughput_rps"),
        "added_p50_ms": mean(results["gateway"], "p50_ms") - mean(results["direct"], "p50_ms"),
        "added_p99_ms": mean(results["gateway"], "p99_ms") - mean(results["direct"], "p99_ms"),
        "failures": sum(r["failures"] for runs in results.values() for r in runs),
        "goal": "throughput_ratio >= 0.97, added_p50_ms <= 2",
    }
    print(f"{'':10}{'rps':>10}{'p50 ms':>10}{'p99 ms':>10}")
    for name, runs in results.items():
        print(f"{name:10}{mean(runs, 'throughput_rps'):10.1f}{mean(runs, 'p50_ms'):10.1f}{mean(runs, 'p99_ms'):10.1f}")
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
