#!/bin/sh
# Runs the whole Criterion suite (unit, then end to end) in every build dir
# given, then checks that no test left a process or a port block behind.
# Exits non-zero on any failure.
set -u
[ $# -gt 0 ] || set -- build build-asan
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}
status=0
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
# leak checks: every test worker and every process the tests start is checked
# (tests/testlib.c); only the Criterion runner's own exit is not, because
# Criterion 2.4 leaks a block of its own there
export LSAN_OPTIONS=${LSAN_OPTIONS:-leak_check_at_exit=0:print_suppressions=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# a throwaway PostgreSQL cluster for the postgres.database tests; stopped on
# any exit (the trap), and the tests fail rather than skip without it
PG_SERVER="$(cd "$(dirname "$0")" && pwd)/pg-test-server.sh"
trap '"$PG_SERVER" stop >/dev/null 2>&1 || true' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
unset PRENV_PG_DIR PRENV_TEST_PG_URL # always our own server, never a caller's
if pg_env=$("$PG_SERVER" start); then
    eval "$pg_env"
else
    echo "run-tests: cannot start the PostgreSQL test server" >&2
    status=1
fi
export PRENV_TEST_PG_REQUIRED=1
# GitHub's example payloads (npm), fetched once before the parallel tests ask
if ! "$(dirname "$0")/test-deps.sh" >/dev/null; then
    echo "run-tests: cannot fetch the npm test data (scripts/test-deps.sh)" >&2
    status=1
fi
# what was there before the suite is not the suite's to answer for (a run
# killed earlier, another checkout's run); only what it adds is checked
dirs_before=$(ls -d /tmp/prenv-test-* 2>/dev/null | sort || true)
procs_before=$(pgrep -f 'prenv-test-' | sort || true)
blocks_before=$(ls /tmp/prenv-test-ports 2>/dev/null || true)
for b in "$@"; do
    for t in unit-tests e2e-tests; do
        if [ ! -x "$b/$t" ]; then
            echo "run-tests: $b/$t is missing (build first)" >&2
            status=1
            continue
        fi
        echo "== $b/$t"
        log=$(mktemp)
        if ! "$b/$t" --jobs "$JOBS" --short-filename >"$log" 2>&1; then
            echo "run-tests: $b/$t FAILED" >&2
            status=1
        fi
        cat "$log"
        # a sanitizer report fails the run even where the test itself passed
        # (a leak found when a test's process ends)
        if grep -qE 'ERROR: (Leak|Address)Sanitizer|runtime error:' "$log"; then
            echo "run-tests: $b/$t: sanitizer reports (see above)" >&2
            status=1
        fi
        rm -f "$log"
    done
done
if [ -n "${PRENV_PG_DIR:-}" ] && ! "$PG_SERVER" stop; then
    echo "run-tests: cannot stop the PostgreSQL test server in $PRENV_PG_DIR" >&2
    status=1
fi
# nothing may outlive the suite
new_pids=$(pgrep -f 'prenv-test-' | grep -vxF "${procs_before:-none}" || true)
if [ -n "$new_pids" ]; then
    echo "run-tests: processes left behind by tests:" >&2
    for p in $new_pids; do
        ps -o pid=,args= -p "$p" >&2 || true
        kill -9 "$p" 2>/dev/null || true
    done
    status=1
fi
blocks=$(ls /tmp/prenv-test-ports 2>/dev/null | grep -vxF "$blocks_before" || true)
if [ -n "$blocks" ]; then
    echo "run-tests: port blocks left reserved:" $blocks >&2
    (cd /tmp/prenv-test-ports && rm -f $blocks)
    status=1
fi
leftdirs=$(ls -d /tmp/prenv-test-* 2>/dev/null | sort | grep -vxF "$dirs_before" |
    grep -v prenv-test-ports || true)
if [ -n "$leftdirs" ]; then
    echo "run-tests: directories left behind: $leftdirs" >&2
    rm -rf $leftdirs
    status=1
fi
[ $status -eq 0 ] && echo "run-tests: all passed in: $*"
exit $status
