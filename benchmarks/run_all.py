"""`make bench`: every benchmark in its own process, then one table of results against their goals."""

import json
import subprocess
import sys
import time

# (module, extra args, [(metric, goal text, check)])
BENCHMARKS = [
    ("benchmarks.gateway_overhead", [], [
        ("throughput_ratio", ">= 0.97", lambda v: v >= 0.97),
        ("added_p50_ms", "<= 2", lambda v: v <= 2),
    ]),
    ("benchmarks.feedback_ingest", [], [
        ("ratio", ">= 0.6", lambda v: v >= 0.6),
        ("gateway_committed_rps", ">= 1500", lambda v: v >= 1500),
    ]),
    ("benchmarks.hot_swap", [], [
        ("lora_time_to_all_new_s", "<= 1", lambda v: v <= 1),
        ("failed_requests", "== 0", lambda v: v == 0),
        ("full_vs_bare_ratio", "<= 1.5", lambda v: v <= 1.5),
    ]),
    ("benchmarks.learner_overhead", ["--model", "models/smollm2-135m-instruct"], [("ratio", "<= 1.1", lambda v: v <= 1.1)]),
    ("benchmarks.closed_loop", ["--cycles", "2", "--max-minutes", "30"], [
        ("final_win_rate", ">= 0.7", lambda v: v >= 0.7),
        ("rm_accuracy_vs_ceiling", ">= 0.9", lambda v: v >= 0.9),
    ]),
]


def _last_json(output: str) -> dict | None:
    for line in reversed(output.strip().splitlines()):
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None


def main() -> int:
    rows = []
    for module, args, metrics in BENCHMARKS:
        started = time.monotonic()
        print(f"== {module} {' '.join(args)}", flush=True)
        try:
            proc = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=3600)
            output, code = proc.stdout + proc.stderr, proc.returncode
        except subprocess.TimeoutExpired:
            output, code = "", "timeout"
        print(proc.stdout[-2000:] if code != "timeout" else "timed out", flush=True)
        summary = _last_json(proc.stdout) if code == 0 else None
        for metric, goal, check in metrics:
            value = summary.get(metric) if summary else None
            met = "yes" if value is not None and check(value) else ("no" if value is not None else f"error ({code})")
            rows.append((module.split(".")[-1], metric, value, goal, met, time.monotonic() - started))
        if summary is None:
            print(output[-3000:], file=sys.stderr)
    print(f"\n{'benchmark':18} {'metric':26} {'value':>12}  {'goal':10} met")
    for name, metric, value, goal, met, _ in rows:
        shown = f"{value:.3f}" if isinstance(value, float) else str(value)
        print(f"{name:18} {metric:26} {shown:>12}  {goal:10} {met}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
