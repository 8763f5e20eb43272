#!/usr/bin/env bash
# The distributed mode on one machine: PostgreSQL and Kafka from scripts/, then every
# service and the gateway as its own process (python -m services.<name>, python -m gateway).
# Ctrl-C stops the six processes (PostgreSQL and Kafka keep running: make infra-down).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PY:-.venv/bin/python}
LOG_DIR=${HOTLINE_LOG_DIR:-var/log}
mkdir -p "$LOG_DIR"

eval "$(scripts/postgres.sh start)"
eval "$(scripts/kafka.sh start)"
export HOTLINE_DB_URL="${HOTLINE_DB_URL:-$HOTLINE_PG_URL}"
export HOTLINE_BUS_URL="${HOTLINE_BUS_URL:-kafka://$KAFKA_BOOTSTRAP}"

pids=()
stop() { kill "${pids[@]}" 2>/dev/null || true; wait || true; }
trap stop EXIT INT TERM

for process in intake dispatch sla knowledge evaluation gateway; do
    module="services.$process"; [ "$process" = gateway ] && module=gateway
    "$PY" -m "$module" >>"$LOG_DIR/$process.log" 2>&1 &
    pids+=($!)
done

for _ in $(seq 1 120); do
    if "$PY" - <<'PY' 2>/dev/null; then break; fi
import urllib.request
urllib.request.urlopen("http://127.0.0.1:8000/readyz", timeout=2)
PY
    sleep 0.5
done
echo "12345 hotline platform (distributed: 5 services + gateway, PostgreSQL, Kafka)"
echo "  URL:      http://127.0.0.1:8000    API docs: http://127.0.0.1:8000/docs"
echo "  logs:     $LOG_DIR/<process>.log   demo logins: see README.md"
wait
