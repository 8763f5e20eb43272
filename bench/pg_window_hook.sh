#!/usr/bin/env bash
# BENCH_HOOK for bench/e2e.py: PostgreSQL's view of the measured window, for bench/pg_window.py.
#
#   PG_WINDOW_OUT=/tmp/w BENCH_KEEP_DB= BENCH_HOOK=bench/pg_window_hook.sh \
#       .venv/bin/python bench/e2e.py > /tmp/w/e2e.json
#   .venv/bin/python bench/pg_window.py /tmp/w
#
# At the window's start and stop: the WAL position, pg_stat_wal and pg_stat_bgwriter (WAL
# writes, fsyncs, checkpoints) and the bench database's table and index counters; at the
# start the database's relfilenodes (to name the WAL's blocks); at the stop a copy of the
# window's WAL segments (a checkpoint may recycle them before they are read; pg_waldump
# reads the copy). PG_WINDOW_PERF=1: perf record with DWARF call chains of the database's
# client backends over the window (perf.data; root, perf installed). PG_WINDOW_IDLE_SQL=
# file: SQL run in the bench database before the idle measurement (e.g. a storage setting
# to try). PG_WINDOW_CHECKPOINT=1: a CHECKPOINT just before the window (its full-page
# images). Needs psql as the server's superuser on 127.0.0.1 (the scripts' server).
set -u
OUT=${PG_WINDOW_OUT:?set PG_WINDOW_OUT to a directory}
mkdir -p "$OUT"
P=(psql -h 127.0.0.1 -p "${HOTLINE_PG_PORT:-5432}" -U postgres -X -q)
DB=$("${P[@]}" -Atc "SELECT datname FROM pg_database WHERE datname LIKE 'hotline_t%' ORDER BY oid DESC LIMIT 1")
PGDATA_DIR=$("${P[@]}" -Atc "SHOW data_directory")
if [ "$1" = idle ] && [ -n "${PG_WINDOW_IDLE_SQL:-}" ]; then
    "${P[@]}" -d "$DB" -f "$PG_WINDOW_IDLE_SQL" >>"$OUT/idle_sql.log" 2>&1
fi
if [ "$1" = start ] && [ -n "${PG_WINDOW_CHECKPOINT:-}" ]; then
    "${P[@]}" -c CHECKPOINT
fi
case "$1" in
start | stop)
    echo "$1 $("${P[@]}" -Atc 'SELECT pg_current_wal_lsn()')" >>"$OUT/lsn.txt"
    echo "$1 $("${P[@]}" -AF' ' -Atc 'SELECT wal_records, wal_bytes, wal_fpi, wal_write, wal_sync FROM pg_stat_wal') $("${P[@]}" -AF' ' -Atc 'SELECT checkpoints_timed, checkpoints_req FROM pg_stat_bgwriter')" >>"$OUT/walstat.txt"
    "${P[@]}" -d "$DB" -AF'|' -Atc "SELECT '$1', schemaname || '.' || indexrelname, idx_scan FROM pg_stat_user_indexes" >>"$OUT/idx.txt"
    "${P[@]}" -d "$DB" -AF'|' -Atc "SELECT '$1', schemaname || '.' || relname, n_tup_ins, n_tup_upd, n_tup_hot_upd, n_tup_del FROM pg_stat_user_tables" >>"$OUT/tab.txt"
    ;;
esac
case "$1" in
start)
    "${P[@]}" -d "$DB" -AF'|' -Atc "SELECT (SELECT oid FROM pg_database WHERE datname = current_database()), c.relfilenode, coalesce(o.nspname || '.' || t.relname || ' (TOAST)', n.nspname || '.' || c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace LEFT JOIN pg_class t ON t.reltoastrelid = c.oid LEFT JOIN pg_namespace o ON o.oid = t.relnamespace WHERE c.relfilenode <> 0" >"$OUT/rels.txt"
    if [ -n "${PG_WINDOW_PERF:-}" ]; then
        PIDS=$("${P[@]}" -d "$DB" -Atc "SELECT string_agg(pid::text, ',') FROM pg_stat_activity WHERE datname = current_database() AND backend_type = 'client backend' AND coalesce(application_name, '') <> 'bench' AND pid <> pg_backend_pid()")
        perf record -F "${PG_WINDOW_FREQ:-799}" --call-graph dwarf,16384 -p "$PIDS" -o "$OUT/perf.data" >"$OUT/perf.log" 2>&1 &
        echo $! >"$OUT/perf.pid"
    fi
    ;;
stop)
    if [ -f "$OUT/perf.pid" ]; then kill -INT "$(cat "$OUT/perf.pid")"; sleep 1; fi
    S=$(awk '$1 == "start" {print $2}' "$OUT/lsn.txt" | tail -1)
    E=$(awk '$1 == "stop" {print $2}' "$OUT/lsn.txt" | tail -1)
    mkdir -p "$OUT/wal"
    for f in $("${P[@]}" -Atc "SELECT pg_walfile_name('$S'::pg_lsn + n * 16777216::numeric) FROM generate_series(0, (('$E'::pg_lsn - '$S'::pg_lsn) / 16777216)::int + 1) n"); do
        cp "$PGDATA_DIR/pg_wal/$f" "$OUT/wal/" 2>/dev/null
    done
    ;;
esac
exit 0
