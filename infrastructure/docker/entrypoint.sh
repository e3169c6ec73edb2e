#!/bin/sh
# Entry point of the engine's image: one image, one role per container.
#
#   gateway       the OGC API (uvicorn api_gateway.main:app) on 0.0.0.0:$OAPIP_PORT (8000)
#   worker        the engine's fast worker for the `oapip-fast` pool $OAPIP_WORK_POOL (oapip)
#   stock-worker  Prefect's process worker on the same pool, for a pool of type `process`
#   housekeeping  serve the scheduled housekeeping deployment (expires jobs on the
#                 retention policy, OAPIP_JOB_RETENTION_DAYS; one replica)
#   setup         register blocks, work pool and flow with Prefect (`oapip setup`; run once)
#   anything else is run as given (`oapip up`, `prefect flow-run execute`, `sh`), so a
#   Kubernetes job's `args` from a Prefect work pool work unchanged.
#
# Every role reads its settings from the environment (PREFECT_API_URL, OAPIP_*).
set -eu

case "${1:-help}" in
    gateway)
        shift
        exec uvicorn api_gateway.main:app --host "${OAPIP_HOST:-0.0.0.0}" \
            --port "${OAPIP_PORT:-8000}" --proxy-headers --forwarded-allow-ips '*' "$@"
        ;;
    worker)
        shift
        exec python -m worker.fast "$@"
        ;;
    stock-worker)
        shift
        exec prefect worker start --pool "${OAPIP_WORK_POOL:-oapip}" --type process "$@"
        ;;
    housekeeping)
        shift
        exec python -m flows.housekeeping "$@"
        ;;
    setup)
        shift
        exec oapip setup "$@"
        ;;
    help | -h | --help)
        sed -n '2,/^set -eu/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
        ;;
    *)
        exec "$@"
        ;;
esac
