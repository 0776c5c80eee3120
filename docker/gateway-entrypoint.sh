#!/bin/sh
# Gateway container entrypoint.
#   (no args) / serve [ARGS]  migrate (unless FLYWHEEL_MIGRATE=0), then serve on 0.0.0.0
#   migrate                   only run the migrations
#   keys ... / anything else  passed to `python -m gateway` (e.g. `keys create --name ops --role admin`)
# FLYWHEEL_VLLM_URLS: the vLLM replicas, comma- or space-separated (each becomes a --vllm-url),
# or a JSON list, which the gateway's settings read as is.
set -eu

migrate() {
    python -m store.migrate upgrade
}

case "${1:-serve}" in
    migrate)
        migrate
        exit 0
        ;;
    serve)
        [ "$#" -gt 0 ] && shift
        ;;
    -*)
        ;;
    *)
        exec python -m gateway "$@"
        ;;
esac

urls="${FLYWHEEL_VLLM_URLS:-}"
if [ -z "$urls" ]; then
    echo "flywheel-gateway: set FLYWHEEL_VLLM_URLS to the vLLM server(s), e.g. http://vllm:8000" >&2
    exit 2
fi
case "$urls" in
    \[*) ;;  # JSON list: Settings parses it
    *)
        unset FLYWHEEL_VLLM_URLS
        for url in $(printf '%s' "$urls" | tr ',' ' '); do
            set -- "$@" --vllm-url "$url"
        done
        ;;
esac

if [ "${FLYWHEEL_MIGRATE:-1}" != "0" ]; then
    migrate
fi
exec python -m gateway serve --host "${FLYWHEEL_HOST:-0.0.0.0}" "$@"
