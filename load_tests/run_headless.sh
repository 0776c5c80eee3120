#!/usr/bin/env bash
# Bounded headless load test against a gateway on loopback: 16 users, spawned 4/s, for 60 s.
#   FLYWHEEL_USER_KEY=... FLYWHEEL_REVIEWER_KEY=... load_tests/run_headless.sh [--max-error-rate 0.01]
# Env: FLYWHEEL_LOAD_HOST (default http://127.0.0.1:8000; loopback only), FLYWHEEL_LOAD_OUT (CSV dir).
# Extra arguments go to summarize.py. Exit status: locust's, or summarize's when that fails.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV_BIN="${VENV_BIN:-.venv/bin}"
HOST="${FLYWHEEL_LOAD_HOST:-http://127.0.0.1:8000}"
OUT="${FLYWHEEL_LOAD_OUT:-build/load}"
PREFIX="$OUT/flywheel"
mkdir -p "$OUT"

set +e
"$VENV_BIN/locust" -f load_tests/locustfile.py --headless -u 16 -r 4 -t 60s --stop-timeout 10 \
    --host "$HOST" --csv "$PREFIX" --only-summary
locust_rc=$?
set -e

echo
"$VENV_BIN/python" load_tests/summarize.py "$PREFIX" "$@"
exit "$locust_rc"
