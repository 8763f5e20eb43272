# shellcheck shell=bash
# Shared helpers for scripts/kafka.sh and scripts/postgres.sh (and .ci/run).
# Source it; it defines functions and a few path variables, nothing else.
#
# Convention: progress/diagnostics go to stderr; the only stdout of a
# successful `start` is a single KEY=value line, so callers can `eval` it.

HOTLINE_SCRIPTS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
HOME="${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}"
HOTLINE_CACHE="${HOTLINE_CACHE:-$HOME/.cache/hotline12345}"
HOTLINE_RUN_DIR="${HOTLINE_RUN_DIR:-$HOTLINE_CACHE/run}"

log() { printf '[%s] %s\n' "${HOTLINE_LOG_TAG:-hotline}" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

is_root() { [ "$(id -u)" -eq 0 ]; }

# tcp_open HOST PORT -> 0 when something accepts TCP connections there.
tcp_open() {
    timeout 3 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" 2>/dev/null
}

# pid_alive PIDFILE -> 0 and echoes the pid when the process in it runs.
pid_alive() {
    local pid
    [ -s "$1" ] || return 1
    pid="$(tr -dc '0-9' <"$1")"
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    echo "$pid"
}

# wait_pid_exit PID SECONDS -> 0 when the process is gone in time.
wait_pid_exit() {
    local pid="$1" deadline=$((SECONDS + $2))
    while kill -0 "$pid" 2>/dev/null; do
        [ "$SECONDS" -ge "$deadline" ] && return 1
        sleep 0.3
    done
}

# apt_install PKG... : installs Debian packages (root only); runs
# `apt-get update` once per process, and only when something is installed.
# Installing `postgresql` never creates/starts Debian's default cluster on
# port 5432 (it would collide with ours).
_HOTLINE_APT_UPDATED=""
apt_install() {
    [ "$#" -gt 0 ] || return 0
    is_root || die "need root to install: $* (install them yourself)"
    command -v apt-get >/dev/null || die "no apt-get here; install: $*"
    local p
    for p in "$@"; do
        case "$p" in postgresql*)
            mkdir -p /etc/postgresql-common
            if ! grep -qs '^[[:space:]]*create_main_cluster' /etc/postgresql-common/createcluster.conf; then
                echo 'create_main_cluster = false' >>/etc/postgresql-common/createcluster.conf
            fi ;;
        esac
    done
    export DEBIAN_FRONTEND=noninteractive
    if [ -z "$_HOTLINE_APT_UPDATED" ]; then
        log "apt-get update"
        apt-get update -qq >&2
        _HOTLINE_APT_UPDATED=1
    fi
    log "apt-get install $*"
    apt-get install -y -qq --no-install-recommends "$@" >&2
}

# pg_bindir -> the newest /usr/lib/postgresql/<major>/bin with initdb+pg_ctl,
# else the directory of pg_ctl on PATH; fails when there is none.
pg_bindir() {
    local d
    d="$(for d in /usr/lib/postgresql/*/bin; do
            [ -x "$d/pg_ctl" ] && [ -x "$d/initdb" ] && printf '%s\n' "$d"
         done | sort -V | tail -n1)"
    if [ -z "$d" ] && command -v pg_ctl >/dev/null && command -v initdb >/dev/null; then
        d="$(dirname "$(command -v pg_ctl)")"
    fi
    [ -n "$d" ] && echo "$d"
}
