"""Gateway overhead: the same chat workload sent straight to vLLM and through the gateway, in one run.

    .venv/bin/python -m benchmarks.gateway_overhead [--requests 300] [--concurrency 32]

Loopback only, bounded. Goal: >= 0.97x direct throughput (32 concurrent) and <= 2 ms added p50 (measured
one request at a time, where queueing does not hide or inflate the gateway's cost).
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
    parser.add_argument("--serial-requests", type=int, default=100, help="one at a time, for added latency")
    args = parser.parse_args(argv)
    params = {"max_tokens": args.max_tokens, "temperature": 0.0, "ignore_eos": True}
    with vllm_server() as (vllm_url, model_id), gateway_for(vllm_url) as gateway:
        key = gateway.create_key("user", name="bench", rate_limit_per_s=1e9, rate_limit_burst=10**9)
        direct_body = {"model": model_id, "messages": MESSAGES, **params}
        gateway_body = {"model": "policy", "messages": MESSAGES, **params}
        # Warm at full concurrency: vLLM compiles CPU kernels per batch size on first use.
        warm = {"total": 3 * args.concurrency, "concurrency": args.concurrency}
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
        # Added latency is measured unsaturated (one request at a time): at saturation both paths queue,
        # and with equal throughput Little's law makes their mean latencies equal whatever the gateway costs.
        serial = {
            "direct": asyncio.run(run_load(f"{vllm_url}/v1/chat/completions", direct_body, {}, args.serial_requests, 1)),
            "gateway": asyncio.run(
                run_load(f"{gateway.url}/v1/chat/completions", gateway_body, {"Authorization": f"Bearer {key}"},
                         args.serial_requests, 1)
            ),
        }  # fmt: skip
    mean = lambda runs, k: sum(r[k] for r in runs) / len(runs)  # noqa: E731
    summary = {
        "benchmark": "gateway_overhead",
        "direct_rps": mean(results["direct"], "throughput_rps"),
        "gateway_rps": mean(results["gateway"], "throughput_rps"),
        "throughput_ratio": mean(results["gateway"], "throughput_rps") / mean(results["direct"], "throughput_rps"),
        "added_p50_ms": serial["gateway"]["p50_ms"] - serial["direct"]["p50_ms"],
        "added_p99_ms": serial["gateway"]["p99_ms"] - serial["direct"]["p99_ms"],
        "saturated_added_p50_ms": mean(results["gateway"], "p50_ms") - mean(results["direct"], "p50_ms"),
        # Time each request spent in the gateway outside vLLM, as the gateway itself measures it.
        "gateway_overhead_header_p50_ms": mean(results["gateway"], "overhead_header_p50_ms"),
        "gateway_overhead_header_p99_ms": mean(results["gateway"], "overhead_header_p99_ms"),
        "failures": sum(r["failures"] for runs in results.values() for r in runs),
        "goal": "throughput_ratio >= 0.97, added_p50_ms <= 2",
    }
    print(f"{'':10}{'rps':>10}{'p50 ms':>10}{'p99 ms':>10}")
    for name, runs in results.items():
        print(f"{name:10}{mean(runs, 'throughput_rps'):10.1f}{mean(runs, 'p50_ms'):10.1f}{mean(runs, 'p99_ms'):10.1f}")
    for name, run in serial.items():
        print(f"{name + ' x1':10}{run['throughput_rps']:10.1f}{run['p50_ms']:10.1f}{run['p99_ms']:10.1f}")
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
