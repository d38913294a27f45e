#!/usr/bin/env bash
# A throwaway PostgreSQL server for the test suite, on 127.0.0.1 only. Prints its URL
# (and nothing else) on stdout, for MEMEGUARD_TEST_POSTGRES_URL:
#
#   scripts/setup-postgres.sh           # install if missing, start if stopped, print the URL
#   scripts/setup-postgres.sh --stop    # stop it
#
# Installs Debian's `postgresql` with apt-get when no PostgreSQL binaries are present
# (as root). The cluster lives in .cache/postgres; as root it runs as a dedicated
# unprivileged system user (PostgreSQL refuses to run as root). It is for tests only:
# fsync is off and the password is fixed.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
port=${MEMEGUARD_PG_PORT:-55432}
dir=$root/.cache/postgres
user=memeguard-pg
url="postgres://memeguard:memeguard@127.0.0.1:$port/memeguard"
log() { echo "setup-postgres: $*" >&2; }

find_bindir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u "$user" -- "$@"; else "$@"; fi
}

bindir=$(find_bindir)
if [ "${1:-}" = "--stop" ]; then
  [ -n "$bindir" ] && [ -d "$dir/data" ] && as_owner "$bindir/pg_ctl" -D "$dir/data" -m fast stop >&2 || true
  exit 0
fi

if [ -n "$bindir" ] && "$bindir/pg_isready" -q -h 127.0.0.1 -p "$port"; then
  echo "$url"
  exit 0
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
