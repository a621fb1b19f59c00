#!/usr/bin/env bash
# pg-test-server: a throwaway PostgreSQL cluster for prenv's tests.
#
#   eval "$(scripts/pg-test-server.sh start)"   # sets PRENV_PG_DIR and PRENV_TEST_PG_URL
#   scripts/pg-test-server.sh url              # prints the admin URL again
#   scripts/pg-test-server.sh stop             # stops it and removes its directory
#
# start makes a temp dir (${TMPDIR:-/tmp}/prenv-pg.XXXXXX), runs initdb as a
# non-root user (the `postgres` system user when run as root), with a
# superuser prenv_admin whose password is random, local (socket) auth trust
# and host auth scram-sha-256, listening on 127.0.0.1 on a free port and on
# a unix socket in the dir; fsync off. It prints `export` lines for eval.
# stop and url find the cluster through PRENV_PG_DIR (or a dir given as their
# argument), so two runs side by side never touch each other's server.
# Nothing here installs PostgreSQL: scripts/deps.sh does.
set -euo pipefail

ADMIN=prenv_admin
MARK=.prenv-pg-test-server

die() {
    echo "pg-test-server: $*" >&2
    exit 1
}

usage() {
    echo "usage: $0 start | stop [DIR] | url [DIR]" >&2
    exit 2
}

pg_bindir() {
    local d best=""
    for d in /usr/lib/postgresql/*/bin; do
        if [ ! -x "$d/initdb" ] || [ ! -x "$d/pg_ctl" ]; then
            continue
        fi
        if [ -z "$best" ] || [ "$(printf '%s\n%s\n' "$best" "$d" | sort -V | tail -n 1)" = "$d" ]; then
            best=$d
        fi
    done
    [ -n "$best" ] || die "PostgreSQL server binaries not found under /usr/lib/postgresql: run scripts/deps.sh"
    echo "$best"
}

# as_owner: run a command as the user that owns the cluster in $dir
as_owner() {
    local who
    who=$(cat "$dir/runas")
    if [ "$who" = "-" ]; then
        "$@"
    else
        runuser -u "$who" -- "$@"
    fi
}

free_port() {
    if command -v python3 >/dev/null 2>&1; then
        python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()' && return 0
    fi
    # fallback: a random port nothing answers on
    local p _
    for _ in $(seq 1 200); do
        p=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return 0
        fi
    done
    die "no free port found on 127.0.0.1"
}

# resolve_dir: the cluster directory from $1 or PRENV_PG_DIR; must be ours
resolve_dir() {
    dir=${1:-${PRENV_PG_DIR:-}}
    [ -n "$dir" ] || die "PRENV_PG_DIR is not set: run eval \"\$($0 start)\" first, or pass the directory"
    case "$(basename "$dir")" in
    prenv-pg.*) ;;
    *) die "$dir is not a directory made by $0 start" ;;
    esac
}

running() {
    [ -f "$dir/runas" ] && [ -d "$dir/data" ] &&
        as_owner "$(cat "$dir/bindir")/pg_ctl" -D "$dir/data" status >/dev/null 2>&1
}

print_exports() {
    printf "export PRENV_PG_DIR='%s'\n" "$dir"
    printf "export PRENV_TEST_PG_URL='%s'\n" "$(cat "$dir/url")"
}

cleanup_failed_start() {
    local rc=$?
    if [ $rc -ne 0 ] && [ -n "${dir:-}" ] && [ -f "$dir/$MARK" ]; then
        if [ -f "$dir/runas" ] && [ -d "$dir/data" ]; then
            as_owner "$(cat "$dir/bindir")/pg_ctl" -D "$dir/data" stop -m immediate -w \
                >/dev/null 2>&1 || true
        fi
        rm -rf "$dir"
    fi
    exit $rc
}

cmd_start() {
    if [ -n "${PRENV_PG_DIR:-}" ] && [ -d "$PRENV_PG_DIR" ]; then
        resolve_dir "$PRENV_PG_DIR"
        if [ -f "$dir/$MARK" ] && [ -f "$dir/url" ] && running; then
            echo "pg-test-server: already running in $dir" >&2
            print_exports
            return 0
        fi
    fi
    local bindir runas pw port tries
    bindir=$(pg_bindir)
    dir=$(mktemp -d "${TMPDIR:-/tmp}/prenv-pg.XXXXXX")
    touch "$dir/$MARK"
    trap cleanup_failed_start EXIT
    echo "$bindir" >"$dir/bindir"
    if [ "$(id -u)" -eq 0 ]; then
        id postgres >/dev/null 2>&1 ||
            die "running as root and there is no 'postgres' user to run the server: run scripts/deps.sh"
        command -v runuser >/dev/null 2>&1 || die "runuser is missing (util-linux)"
        runas=postgres
        chown postgres: "$dir"
        runuser -u postgres -- test -w "$dir" ||
            die "the postgres user cannot write $dir: set TMPDIR to a directory it can reach"
    else
        runas=-
    fi
    echo "$runas" >"$dir/runas"
    pw=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
    (umask 077 && printf '%s\n' "$pw" >"$dir/pwfile")
    [ "$runas" = "-" ] || chown "$runas" "$dir/pwfile"
    as_owner "$bindir/initdb" -D "$dir/data" -U "$ADMIN" --pwfile="$dir/pwfile" \
        --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C --no-sync \
        >"$dir/initdb.log" 2>&1 || {
        tail -n 20 "$dir/initdb.log" >&2
        die "initdb failed (log above)"
    }
    rm -f "$dir/pwfile"
    for tries in 1 2 3 4 5; do
        port=$(free_port)
        cat >>"$dir/data/postgresql.conf" <<EOF
# pg-test-server
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
fsync = off
synchronous_commit = off
full_page_writes = off
shared_buffers = 16MB
max_connections = 100
password_encryption = 'scram-sha-256'
EOF
        if as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start \
            >/dev/null 2>&1; then
            printf 'postgres://%s:%s@127.0.0.1:%s/postgres\n' "$ADMIN" "$pw" "$port" >"$dir/url"
            chmod 600 "$dir/url"
            trap - EXIT
            echo "pg-test-server: PostgreSQL $(basename "$(dirname "$bindir")") on 127.0.0.1:$port, socket and files in $dir" >&2
            print_exports
            return 0
        fi
        # the port may have been taken between the check and the bind: try another
        echo "pg-test-server: start on port $port failed (try $tries)" >&2
    done
    tail -n 20 "$dir/server.log" >&2 || true
    die "pg_ctl start failed (server log above)"
}

cmd_stop() {
    resolve_dir "${1:-}"
    if [ ! -d "$dir" ]; then
        echo "pg-test-server: $dir is already gone" >&2
        return 0
    fi
    [ -f "$dir/$MARK" ] || die "$dir was not made by $0 start; not touching it"
    if [ -f "$dir/runas" ] && [ -f "$dir/data/postmaster.pid" ]; then
        as_owner "$(cat "$dir/bindir")/pg_ctl" -D "$dir/data" stop -m fast -w -t 60 \
            >/dev/null 2>&1 ||
            as_owner "$(cat "$dir/bindir")/pg_ctl" -D "$dir/data" stop -m immediate -w \
                >/dev/null 2>&1 || true
        if [ -f "$dir/data/postmaster.pid" ]; then
            pid=$(head -n 1 "$dir/data/postmaster.pid")
            if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
                die "the server (pid $pid) did not stop; $dir is left in place"
            fi
        fi
    fi
    rm -rf "$dir"
    echo "pg-test-server: stopped, removed $dir" >&2
}

cmd_url() {
    resolve_dir "${1:-}"
    [ -f "$dir/url" ] || die "no server in $dir (start one first)"
    cat "$dir/url"
}

[ $# -ge 1 ] || usage
case "$1" in
start)
    [ $# -eq 1 ] || usage
    cmd_start
    ;;
stop)
    [ $# -le 2 ] || usage
    cmd_stop "${2:-}"
    ;;
url)
    [ $# -le 2 ] || usage
    cmd_url "${2:-}"
    ;;
*) usage ;;
esac
