#!/usr/bin/env bash
# bench/seed.sh — synthetic data: the generation rate of a 10-column table
# (`prenv seed preview` to /dev/null) next to @faker-js/faker generating the
# same columns in Node, and the load rate of 1,000,000 rows into PostgreSQL
# (`prenv seed ENV --reset`) next to a plain COPY of the same rows from a file,
# all measured in the same run.
#
# A report, not a test: it prints figures, targets and ratios and exits 0
# whatever they are; it exits non-zero only when a command it runs fails.
# See bench/README.md (seed.sh) for what is measured and how to read it.
#
# Environment: PRENV (binary, default build/prenv), BENCH_ROWS (rows per
# table, default 1000000), BENCH_GEN_REPS (prenv generation runs, default 5),
# BENCH_FAKER_REPS (faker runs, default 3), BENCH_LOAD_REPS (runs per load
# figure, default 5), BENCH_NPM_DIR (npm prefix faker is installed in,
# default build/npm-bench: reused when it already holds the pinned version).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
PRENV=${PRENV:-$root/build/prenv}
ROWS=${BENCH_ROWS:-1000000}
GEN_REPS=${BENCH_GEN_REPS:-5}
FAKER_REPS=${BENCH_FAKER_REPS:-3}
LOAD_REPS=${BENCH_LOAD_REPS:-5}
NPM_DIR=${BENCH_NPM_DIR:-$root/build/npm-bench}
FAKER_VERSION=10.6.0 # pinned: a new faker is a new peer
TARGET_GEN=20        # prenv generation rate / faker's, at least
TARGET_LOAD=70       # prenv load rate / plain COPY's, at least, %
TABLE=people
DB=prenv_bench_seed

die() {
    echo "bench: $*" >&2
    exit 1
}
[[ -x $PRENV ]] || die "$PRENV not found; run \`make build\`"
PRENV=$(cd "$(dirname "$PRENV")" && pwd)/$(basename "$PRENV")
[[ $ROWS =~ ^[1-9][0-9]*$ ]] || die "BENCH_ROWS must be a positive whole number"
for c in node npm psql; do
    command -v "$c" >/dev/null || die "$c is required (scripts/deps.sh installs it)"
done
HAVE_TIME=$([[ -x /usr/bin/time ]] && echo 1 || echo 0) # GNU time: peak RSS, CPU time

work=$(mktemp -d "${TMPDIR:-/tmp}/prenv-bench-seed.XXXXXX")
pg_dir="" # the PostgreSQL test server this run started
env_up=0  # 1 once `env up dev` may have created the env

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if ((env_up)) && [[ -f $work/proj/.prenv/state/dev.json ]]; then
        "$PRENV" --no-color -C "$work/proj" env destroy dev --yes >/dev/null 2>&1 ||
            echo "bench: could not destroy env dev in $work/proj" >&2
    fi
    if [[ -n $pg_dir ]]; then
        "$root/scripts/pg-test-server.sh" stop "$pg_dir" >/dev/null 2>&1 ||
            echo "bench: could not stop the PostgreSQL test server in $pg_dir" >&2
    fi
    rm -rf "$work"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# timed CMD...: run CMD (stdout to $OUT, default $work/last.log; stderr to
# $work/last.err); T = its wall time in ms, from bash's $EPOCHREALTIME.
timed() {
    local s e out=${OUT:-$work/last.log}
    s=${EPOCHREALTIME/[.,]/}
    if ! "$@" >"$out" 2>"$work/last.err"; then
        echo "bench: command failed: $*" >&2
        tail -n 20 "$work/last.err" >&2
        exit 1
    fi
    e=${EPOCHREALTIME/[.,]/}
    T=$(((e - s) / 1000)).$(printf '%03d' $(((e - s) % 1000)))
}
# rusage CMD...: CMD under GNU time when present (its figures to $work/rusage:
# "user-s sys-s max-rss-KiB"), else CMD alone
rusage() {
    if ((HAVE_TIME)); then
        /usr/bin/time -f '%U %S %M' -o "$work/rusage" "$@"
    else
        "$@"
    fi
}

samples() { printf '%s\n' "$@" | tr -s ' ' '\n' | awk NF | sort -g; }
median() { samples "$@" | awk '{a[NR] = $1} END {
    if (NR == 0) { print "nan"; exit }
    m = NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2; printf "%.3f\n", m }'; }
spread() { samples "$@" | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%.0f-%.0f\n", lo, hi }'; }
maxof() { samples "$@" | tail -n 1; }
calc() { awk "BEGIN { printf \"%.3f\n\", $* }"; }
# rate ROWS MS -> rows/s
rate() { awk -v n="$1" -v ms="$2" 'BEGIN { printf "%.0f\n", n / (ms / 1000) }'; }
# at_least VALUE TARGET -> PASS / BELOW-TARGET (for "at least" targets)
at_least() { awk -v v="$1" -v t="$2" 'BEGIN { print (v >= t) ? "PASS" : "BELOW-TARGET" }'; }
fmt() { awk -v n="$1" 'BEGIN { s = sprintf("%.0f", n); o = "";
    while (length(s) > 3) { o = "," substr(s, length(s) - 2) o; s = substr(s, 1, length(s) - 3) }
    print s o }'; }

LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
declare -A S # sample lists, keyed by figure

# ---- the seed file: one 10-column table --------------------------------------
cat >"$work/seed.yaml" <<EOF
# bench/seed.sh: one table of the 10 usual kinds of column
tables:
  $TABLE:
    rows: $ROWS
    columns:
      id:         {gen: sequence, start: 1, step: 1}
      uid:        {gen: uuid}
      first_name: {gen: first_name}
      last_name:  {gen: last_name}
      email:      {gen: email, from: [first_name, last_name], domain: example.com, unique: true}
      age:        {gen: int, min: 18, max: 90}
      score:      {gen: float, min: 0, max: 100, decimals: 2}
      active:     {gen: bool, ratio: 0.8}
      tier:       {gen: enum, values: {free: 70, pro: 25, enterprise: 5}}
      created_at: {gen: timestamp, min: "2024-01-01T00:00:00Z", max: "2026-01-01T00:00:00Z"}
EOF

# ---- fixed start-up cost -----------------------------------------------------
for ((r = 0; r < 10; r++)); do
    timed "$PRENV" version
    S[version]+=" $T"
done
STARTUP=$(median "${S[version]}")

# ---- generation: prenv seed preview vs faker ---------------------------------
if [[ $(node -p "require('$NPM_DIR/node_modules/@faker-js/faker/package.json').version" \
    2>/dev/null) != "$FAKER_VERSION" ]]; then
    echo "bench: installing @faker-js/faker@$FAKER_VERSION into $NPM_DIR" >&2
    mkdir -p "$NPM_DIR"
    npm install --prefix "$NPM_DIR" --no-audit --no-fund --no-save --loglevel=error \
        "@faker-js/faker@$FAKER_VERSION" >"$work/npm.log" 2>&1 ||
        die "npm install @faker-js/faker@$FAKER_VERSION failed: $(grep -v 'Unknown user config' \
            "$work/npm.log" | tail -n 5)"
fi
export FAKER_DIR=$NPM_DIR

gen_prenv() { rusage "$PRENV" seed preview "$work/seed.yaml" --rows "$ROWS" --format csv --seed 1; }
gen_faker() { node "$here/seed_faker.mjs" "$ROWS"; }
# untimed: prenv prints the header and ROWS lines; faker's script runs (a few
# rows: at its rate a full untimed run costs half a minute); both warm the cache
read -r got CSV_BYTES < <(gen_prenv | wc -lc)
[[ $got -eq $((ROWS + 1)) ]] || die "prenv seed preview printed $got lines, not $((ROWS + 1))"
got=$(node "$here/seed_faker.mjs" 1000 2>/dev/null | wc -l)
[[ $got -eq 1001 ]] || die "seed_faker.mjs printed $got lines, not 1001"

for ((r = 0; r < GEN_REPS || r < FAKER_REPS; r++)); do
    echo "bench: generating $ROWS rows, run $((r + 1))" >&2
    if ((r < GEN_REPS)); then
        OUT=/dev/null timed gen_prenv
        S[gen]+=" $T"
        if ((HAVE_TIME)); then
            read -r u s m <"$work/rusage"
            S[gen_rss]+=" $m"
            S[gen_cpu]+=" $(calc "($u + $s) * 1000")"
        fi
    fi
    if ((r < FAKER_REPS)); then
        OUT=/dev/null timed gen_faker
        S[faker]+=" $T"
        # its own count of what it wrote: "gen_ms MS rows N bytes B"
        read -r _ ms _ got _ FAKER_BYTES <"$work/last.err"
        [[ $got -eq $ROWS ]] || die "seed_faker.mjs wrote $got rows, not $ROWS"
        S[faker_in]+=" $ms"
    fi
done

# ---- load: prenv seed --reset vs COPY of the same rows -----------------------
echo "bench: starting a PostgreSQL test server" >&2
pg_env=$(env -u PRENV_PG_DIR -u PRENV_TEST_PG_URL "$root/scripts/pg-test-server.sh" start 2>"$work/pg.log") ||
    die "could not start the PostgreSQL test server: $(tail -n 5 "$work/pg.log")"
pg_dir=$(sed -n "s/^export PRENV_PG_DIR='\(.*\)'$/\1/p" <<<"$pg_env")
PG_URL=$(sed -n "s/^export PRENV_TEST_PG_URL='\(.*\)'$/\1/p" <<<"$pg_env")
[[ -n $pg_dir && -n $PG_URL ]] || die "pg-test-server.sh start printed no URL"
DB_URL=${PG_URL%/postgres}/$DB # the env's database, as the superuser
PG_VERSION=$(psql "$PG_URL" -XAtqc 'SHOW server_version' | cut -d' ' -f1)

# the project: a database, a migration creating the table, the seed
mkdir -p "$work/proj/templates" "$work/proj/envs" "$work/proj/seeds"
cp "$work/seed.yaml" "$work/proj/seeds/bench.yaml"
cat >"$work/proj/prenv.yaml" <<EOF
project: seedbench
template: templates/seed.yaml
state_dir: .prenv
stages:
  dev: {config: envs/dev.yaml}
EOF
(
    umask 077
    cat >"$work/proj/envs/dev.yaml" <<EOF
values:
  pg_server: "$PG_URL"
  seed_rows: {$TABLE: $ROWS}
EOF
)
# no index and autovacuum off: the load is the only work; every run loads alike
DDL="CREATE TABLE $TABLE (id bigint, uid uuid, first_name text, last_name text, email text,
  age int, score numeric(5,2), active boolean, tier text, created_at timestamptz)
  WITH (autovacuum_enabled = off)"
cat >"$work/proj/templates/seed.yaml" <<EOF
resources:
  db:
    type: postgres.database
    properties:
      server: \${config.pg_server}
      name: $DB
  migrate:
    type: exec.command
    properties:
      create: [sh, -c, 'psql "\$DATABASE_URL" -X -q -v ON_ERROR_STOP=1 -c "\$DDL"']
      env:
        DATABASE_URL: \${db.url}
        DDL: "$(tr '\n' ' ' <<<"$DDL")"
  seed:
    type: seed.synthetic
    depends_on: [migrate]
    properties:
      file: seeds/bench.yaml
      database: \${db.url}
      rows: \${config.seed_rows}
      seed: 1
outputs:
  rows: \${seed.rows}
EOF
pv() { "$PRENV" --no-color -C "$work/proj" "$@"; }

echo "bench: env up (creates the database and table, loads $ROWS rows)" >&2
env_up=1
pv env up dev --yes >"$work/up.log" 2>&1 || die "env up dev failed: $(tail -n 10 "$work/up.log")"

# count: rows in the table now
count() { psql "$DB_URL" -XAtqc "SELECT count(*) FROM $TABLE"; }
# digest: a checksum of every row, in id order
digest() { psql "$DB_URL" -XAtqc "SELECT md5(string_agg($TABLE::text, E'\n' ORDER BY id)) FROM $TABLE"; }
expect_rows() {
    local got
    got=$(count)
    [[ $got -eq $ROWS ]] || die "$1 left $got rows in $TABLE, not $ROWS"
}
expect_rows "env up"

# the same rows, generated once, as COPY text in a file the server can read too
mkdir -m 755 "$work/pub"
chmod 711 "$work"
"$PRENV" seed preview "$work/seed.yaml" --rows "$ROWS" --format copy --seed 1 --table "$TABLE" |
    sed '1d;$d' >"$work/pub/$TABLE.copy"
chmod 644 "$work/pub/$TABLE.copy"
COPY_BYTES=$(wc -c <"$work/pub/$TABLE.copy")
DATA=$work/pub/$TABLE.copy
HAVE_SERVER_COPY=0
psql "$PG_URL" -XAtqc "SELECT length(pg_read_binary_file('$DATA', 0, 1))" >/dev/null 2>&1 &&
    HAVE_SERVER_COPY=1

# each load: empty the table and COPY, in one transaction, as prenv does
load_client() {
    psql "$DB_URL" -X -q -1 -v ON_ERROR_STOP=1 -c "TRUNCATE $TABLE" -c "\\copy $TABLE FROM '$DATA'"
}
load_server() {
    psql "$DB_URL" -X -q -1 -v ON_ERROR_STOP=1 -c "TRUNCATE $TABLE" -c "COPY $TABLE FROM '$DATA'"
}
load_prenv() { rusage "$PRENV" --no-color -C "$work/proj" seed dev --reset; }
checkpoint() { psql "$PG_URL" -XAtqc CHECKPOINT >/dev/null; }
# the server's CPU: the postmaster's children's user+sys time (ms), which grows
# by a backend's CPU time when the backend exits (a connection closes)
PM=$(head -n 1 "$pg_dir/data/postmaster.pid" 2>/dev/null || true)
TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)
HAVE_PM=$([[ $PM =~ ^[0-9]+$ && -r /proc/$PM/stat ]] && echo 1 || echo 0)
pg_cpu() {
    if ((HAVE_PM)); then
        sleep 0.1 # let the postmaster reap the backend that just exited
        awk -v t="$TCK" '{ printf "%.0f\n", ($16 + $17) * 1000 / t }' "/proc/$PM/stat"
    else
        echo 0
    fi
}
# load KEY CMD...: one timed load after a checkpoint; T = wall ms; the
# backend's CPU time (ms) goes to S[KEY_pg]
load() {
    local key=$1 c0
    shift
    checkpoint
    c0=$(pg_cpu)
    timed "$@"
    S[${key}_pg]+=" $(($(pg_cpu) - c0))"
}

for ((r = 0; r < LOAD_REPS; r++)); do
    echo "bench: loading $ROWS rows, run $((r + 1)) of $LOAD_REPS" >&2
    load load load_prenv
    grep -q "seeded in .*: $ROWS rows" "$work/last.log" ||
        die "prenv seed did not report $ROWS rows: $(head -n 5 "$work/last.log")"
    S[load]+=" $(calc "$T - $STARTUP")"
    S[load_wall]+=" $T"
    if ((HAVE_TIME)); then
        read -r u s m <"$work/rusage"
        S[load_cpu]+=" $(calc "($u + $s) * 1000")"
        S[load_rss]+=" $m"
    fi
    expect_rows "prenv seed dev --reset"
    ((r > 0)) || DIGEST_PRENV=$(digest)

    load client load_client
    S[client]+=" $T"
    expect_rows "\\copy"
    ((r > 0)) || DIGEST_COPY=$(digest)

    if ((HAVE_SERVER_COPY)); then
        load server load_server
        S[server]+=" $T"
        expect_rows "COPY FROM a file"
    fi
done
[[ $DIGEST_PRENV == "$DIGEST_COPY" ]] ||
    die "prenv loaded other rows than the COPY file holds (md5 $DIGEST_PRENV vs $DIGEST_COPY)"

# ---- report ------------------------------------------------------------------
echo "prenv seed benchmark ($("$PRENV" version 2>/dev/null | head -n 1))"
echo "load average: $LOAD0 at start, $(cut -d' ' -f1-3 /proc/loadavg) at end (other work on the machine skews every figure)"
echo "machine: $(nproc) CPUs, $(uname -sr), node $(node --version), @faker-js/faker $FAKER_VERSION, PostgreSQL $PG_VERSION"
echo "fixed start-up: prenv version $STARTUP ms (median of 10; subtracted from prenv's load time)"

gm=$(median "${S[gen]}")
fm=$(median "${S[faker]}")
fim=$(median "${S[faker_in]}")
gr=$(rate "$ROWS" "$gm")
fr=$(rate "$ROWS" "$fm")
fir=$(rate "$ROWS" "$fim")
gx=$(calc "$gr / $fr")
echo
echo "generation: $(fmt "$ROWS") rows of a 10-column table as CSV to /dev/null," \
    "whole command, wall time"
printf '  %-44s %9s %11s %12s %8s  %s\n' "" "ms" "(min-max)" "rows/s" "MB/s" "runs"
printf '  %-44s %9.1f %11s %12s %8.1f  %s\n' "prenv seed preview --format csv" "$gm" \
    "$(spread "${S[gen]}")" "$(fmt "$gr")" "$(calc "$CSV_BYTES / 1e6 / ($gm / 1000)")" "$GEN_REPS"
printf '  %-44s %9.1f %11s %12s %8.1f  %s\n' "peer: node + @faker-js/faker (seed_faker.mjs)" "$fm" \
    "$(spread "${S[faker]}")" "$(fmt "$fr")" "$(calc "$FAKER_BYTES / 1e6 / ($fm / 1000)")" "$FAKER_REPS"
printf '  %-44s %9.1f %11s %12s %8s  %s\n' "  faker's loop alone (no node start, import)" "$fim" \
    "$(spread "${S[faker_in]}")" "$(fmt "$fir")" "" "$FAKER_REPS"
printf '  %-44s %9s  %-12s (target: at least %sx; %.1fx against faker'"'"'s loop alone)\n' \
    "prenv rate / faker rate" "$(printf '%.1fx' "$gx")" "$(at_least "$gx" "$TARGET_GEN")" \
    "$TARGET_GEN" "$(calc "$gr / $fir")"
if ((HAVE_TIME)); then
    echo "  prenv: peak RSS $(($(maxof "${S[gen_rss]}") / 1024)) MiB, CPU (user+sys)" \
        "$(printf '%.0f' "$(median "${S[gen_cpu]}")") ms; CSV $((CSV_BYTES / 1000000)) MB (faker's $((FAKER_BYTES / 1000000)) MB)"
fi

lm=$(median "${S[load]}")
lw=$(median "${S[load_wall]}")
cm=$(median "${S[client]}")
lr=$(rate "$ROWS" "$lm")
cr=$(rate "$ROWS" "$cm")
lpct=$(calc "100 * $lr / $cr")
echo
echo "load: $(fmt "$ROWS") rows ($((COPY_BYTES / 1000000)) MB of COPY text) into a" \
    "10-column table without indexes, PostgreSQL $PG_VERSION over TCP on 127.0.0.1," \
    "TRUNCATE + COPY in one transaction, median of $LOAD_REPS runs"
printf '  %-44s %9s %11s %12s %8s  %s\n' "" "ms" "(min-max)" "rows/s" "MB/s" "rows/s vs \\copy"
lrow() { # LABEL KEY
    local m
    m=$(median "${S[$2]}")
    printf '  %-44s %9.1f %11s %12s %8.1f  %5.0f%%\n' "$1" "$m" "$(spread "${S[$2]}")" \
        "$(fmt "$(rate "$ROWS" "$m")")" "$(calc "$COPY_BYTES / 1e6 / ($m / 1000)")" \
        "$(calc "100 * $cm / $m")"
}
lrow "prenv seed dev --reset (minus start-up)" load
lrow "peer: psql \\copy from the file (client side)" client
((HAVE_SERVER_COPY)) && lrow "reference: COPY FROM the file (server side)" server
printf '  %-44s %9s  %-12s (target: at least %s%% of \\copy'"'"'s rate)\n' \
    "prenv rate / \\copy rate" "$(printf '%.0f%%' "$lpct")" "$(at_least "$lpct" "$TARGET_LOAD")" \
    "$TARGET_LOAD"
if ((HAVE_SERVER_COPY)); then
    printf '  %-44s %9s  (for information: no client at all)\n' "prenv rate / server-side COPY rate" \
        "$(printf '%.0f%%' "$(calc "100 * $(median "${S[server]}") / $lm")")"
else
    echo "  (server-side COPY skipped: the server cannot read $DATA)"
fi
if ((HAVE_TIME)); then
    lc=$(median "${S[load_cpu]}")
    printf -v lc '%.0f' "$lc"
    printf -v lw '%.0f' "$lw"
    echo "  prenv: CPU (user+sys) $lc ms of $lw ms wall ($(calc "100 * $lc / $lw" | cut -d. -f1)%:" \
        "generating and sending; the rest is waiting on the server), peak RSS" \
        "$(($(maxof "${S[load_rss]}") / 1024)) MiB"
fi
if ((HAVE_PM)); then
    pgc="$(median "${S[load_pg]}") ms with prenv, $(median "${S[client_pg]}") ms with \\copy"
    ((HAVE_SERVER_COPY)) && pgc+=", $(median "${S[server_pg]}") ms with COPY FROM a file"
    echo "  PostgreSQL backend CPU (user+sys) per load: ${pgc//.000/}: the server's work;" \
        "wall time above it is waiting (for a CPU: see the load average, or for the client)"
fi
echo "  rows checked after every load (count = $(fmt "$ROWS")); prenv's rows and the file's" \
    "are identical (md5 of the table ${DIGEST_PRENV:0:12}...)"

cat <<EOF

  prenv seed preview   generates every row in one process and writes CSV; the
                       whole command, start-up included
  faker                node bench/seed_faker.mjs: the same 10 columns with
                       @faker-js/faker (English locale), unique e-mails with a
                       number on repeats as prenv does; the whole command
  prenv seed --reset   prenv's load of the env: connect, TRUNCATE, generate +
                       COPY FROM STDIN (libpq), COMMIT, save state
  \\copy                psql sending the pre-generated file over the same
                       connection path: the physical limit of a client load
  COPY FROM file       the server reading the file itself: no client, no socket
EOF
((HAVE_TIME)) || echo "(/usr/bin/time not found: no peak RSS or CPU figures)"
