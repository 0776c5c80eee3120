"""Print p50/p95/p99 latency and the error rate from a locust `--csv PREFIX` run.

    python load_tests/summarize.py build/load/flywheel [--max-error-rate 0.01]

Reads PREFIX_stats.csv (PREFIX_failures.csv for the commonest errors, PREFIX_ttft.csv for streams).
Exit status 1 when the overall error rate exceeds --max-error-rate (when given) or when no request was made at all.
"""

import argparse
import csv
import sys
from pathlib import Path


def _num(value: str | None) -> float | None:
    try:
        return float(value) if value not in (None, "", "N/A") else None
    except ValueError:
        return None


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def read_stats(prefix: str) -> list[dict]:
    path = Path(f"{prefix}_stats.csv")
    if not path.is_file():
        raise SystemExit(f"{path} not found: did locust run with --csv {prefix}?")
    rows = []
    with path.open(newline="") as fh:
        for row in csv.DictReader(fh):
            requests, failures = int(row["Request Count"]), int(row["Failure Count"])
            rows.append({
                "type": row["Type"], "name": row["Name"], "requests": requests, "failures": failures,
                "error_rate": failures / requests if requests else 0.0,
                "p50": _num(row.get("50%")), "p95": _num(row.get("95%")), "p99": _num(row.get("99%")),
                "rps": _num(row.get("Requests/s")),
            })  # fmt: skip
    return rows


def top_failures(prefix: str, limit: int = 5) -> list[tuple[int, str, str]]:
    path = Path(f"{prefix}_failures.csv")
    if not path.is_file():
        return []
    with path.open(newline="") as fh:
        rows = [(int(r["Occurrences"]), r["Name"], r["Error"]) for r in csv.DictReader(fh)]
    return sorted(rows, reverse=True)[:limit]


def ttft(prefix: str) -> dict | None:
    path = Path(f"{prefix}_ttft.csv")
    if not path.is_file():
        return None
    with path.open(newline="") as fh:
        return next(csv.DictReader(fh), None)


def render(rows: list[dict]) -> str:
    header = (
        f"{'type':<6} {'name':<28} {'reqs':>7} {'fails':>6} {'err%':>6} "
        f"{'p50ms':>7} {'p95ms':>7} {'p99ms':>7} {'rps':>6}"
    )
    lines = [header, "-" * len(header)]
    for r in rows:
        name = "TOTAL" if r["name"] == "Aggregated" else r["name"]
        rps = "-" if r["rps"] is None else f"{r['rps']:.1f}"
        lines.append(
            f"{r['type'][:6]:<6} {name[:28]:<28} {r['requests']:>7} {r['failures']:>6} {100 * r['error_rate']:>5.1f}% "
            f"{_ms(r['p50']):>7} {_ms(r['p95']):>7} {_ms(r['p99']):>7} {rps:>6}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("prefix", help="the --csv prefix given to locust")
    parser.add_argument("--max-error-rate", type=float, help="fail (exit 1) above this fraction, e.g. 0.01")
    args = parser.parse_args(argv)

    rows = read_stats(args.prefix)
    print(render(rows))
    total = next((r for r in rows if r["name"] == "Aggregated"), None)
    if total is None or total["requests"] == 0:
        print("\nno requests were made", file=sys.stderr)
        return 1
    print(
        f"\noverall: {total['requests']} requests, error rate {100 * total['error_rate']:.2f}%, "
        f"p50 {_ms(total['p50'])} ms, p95 {_ms(total['p95'])} ms, p99 {_ms(total['p99'])} ms"
    )
    first = ttft(args.prefix)
    if first:
        print(
            f"stream time to first chunk ({first['Count']} streams): p50 {_ms(_num(first['50%']))} ms, "
            f"p95 {_ms(_num(first['95%']))} ms, p99 {_ms(_num(first['99%']))} ms"
        )
    failures = top_failures(args.prefix)
    if failures:
        print("\ncommonest failures:")
        for count, name, error in failures:
            print(f"  {count:>6} x {name}: {error[:160]}")
    if args.max_error_rate is not None and total["error_rate"] > args.max_error_rate:
        print(f"\nerror rate above {100 * args.max_error_rate:.2f}%", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
