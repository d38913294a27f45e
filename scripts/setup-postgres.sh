#!/usr/bin/env bash
# A throwaway PostgreSQL server for the test suite, on 127.0.0.1 only. Prints its URL
# (and nothing else) on stdout, for MEMEGUARD_TEST_POSTGRES_URL:
#
#   scripts/setup-postgres.sh           # install if missing, start if stopped, print the URL
#   scripts/setup-postgres.sh --stop    # stop it
#   scripts/setup-postgres.sh --running # exit 0 when this checkout's cluster is running
#
# The port is derived from the checkout's path (55432-56431), so two checkouts on one
# machine (a developer's and CI's fresh clone) never share a server; MEMEGUARD_PG_PORT
# overrides it. A server on that port that is not this checkout's cluster is refused,
# never used: the tests would otherwise run against somebody else's database.
#
# Installs Debian's `postgresql` with apt-get when no PostgreSQL binaries are present
# (as root). The cluster lives in .cache/postgres; as root it runs as a dedicated
# unprivileged system user (PostgreSQL refuses to run as root). It is for tests only:
# fsync is off and the password is fixed.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
dir=$root/.cache/postgres
port=${MEMEGUARD_PG_PORT:-$((55432 + $(printf '%s' "$root" | cksum | cut -d' ' -f1) % 1000))}
user=memeguard-pg
url="postgres://memeguard:memeguard@127.0.0.1:$port/memeguard"
log() { echo "setup-postgres: $*" >&2; }

find_bindir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u "$user" -- "$@"; else "$@"; fi
}

# True when this checkout's cluster is the server running on $port: its postmaster.pid
# names a live process and this port.
own_cluster_running() {
  local pidfile=$dir/data/postmaster.pid pid pidport
  [ -r "$pidfile" ] || return 1
  pid=$(sed -n 1p "$pidfile")
  pidport=$(sed -n 4p "$pidfile")
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && [ "$pidport" = "$port" ]
}

# True when anything accepts connections on 127.0.0.1:$port (PostgreSQL or not).
port_answers() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }

bindir=$(find_bindir)
case "${1:-}" in
  --stop)
    if own_cluster_running; then as_owner "$bindir/pg_ctl" -D "$dir/data" -m fast stop >&2 || true; fi
    exit 0
    ;;
  --running)
    own_cluster_running
    exit
    ;;
esac

if own_cluster_running && port_answers; then
  echo "$url"
  exit 0
fi
if port_answers; then
  log "something else listens on 127.0.0.1:$port (not this checkout's cluster in $dir/data);"
  log "stop it, or choose another port with MEMEGUARD_PG_PORT"
  exit 1
fi

if [ -z "$bindir" ]; then
  if [ "$(id -u)" != 0 ]; then
    log "PostgreSQL is not installed; run as root or: sudo apt-get install postgresql"
    exit 1
  fi
  log "installing Debian's postgresql"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq postgresql >&2
  bindir=$(find_bindir)
fi

if [ "$(id -u)" = 0 ] && ! id "$user" >/dev/null 2>&1; then
  useradd --system --no-create-home --shell /usr/sbin/nologin "$user"
fi

mkdir -p "$dir"
if [ "$(id -u)" = 0 ]; then chown "$user" "$dir"; fi
if [ ! -f "$dir/data/PG_VERSION" ]; then
  log "creating a test cluster in $dir/data"
  rm -rf "$dir/data"
  as_owner sh -c "umask 077; echo memeguard > '$dir/pwfile'"
  as_owner "$bindir/initdb" -D "$dir/data" -U memeguard --pwfile="$dir/pwfile" \
    --auth-local=scram-sha-256 --auth-host=scram-sha-256 -E UTF8 --locale=C >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; exit 1; }
  rm -f "$dir/pwfile"
fi
mkdir -p "$dir/run"
if [ "$(id -u)" = 0 ]; then chown "$user" "$dir/run"; fi
log "starting PostgreSQL on 127.0.0.1:$port"
as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
  -o "-c listen_addresses=127.0.0.1 -p $port -k $dir/run -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
  start >&2 || { tail -n 20 "$dir/server.log" >&2; exit 1; }
# The cluster's superuser owns a database of the same name.
PGPASSWORD=memeguard "$bindir/psql" -q -h 127.0.0.1 -p "$port" -U memeguard -d postgres -tAc \
  "SELECT 1 FROM pg_database WHERE datname = 'memeguard'" | grep -q 1 \
  || PGPASSWORD=memeguard "$bindir/createdb" -h 127.0.0.1 -p "$port" -U memeguard memeguard
echo "$url"
