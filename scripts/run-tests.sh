#!/usr/bin/env bash
# Everything CI runs (`make test` calls this after installing the tools; `.ci/run` calls
# `make test`): formatting, clippy with warnings as errors, then the whole test suite,
# with the PostgreSQL tests against a throwaway cluster that this script starts and, if
# it started it, stops again.
#
# Under CI=true nothing may be skipped quietly: a PostgreSQL that cannot be set up fails
# the run (elsewhere the PostgreSQL tests are skipped with a warning).
set -euo pipefail
cd "$(dirname "$0")/.."
CARGO=${CARGO:-cargo}
ci=false
case "${CI:-}" in true | 1 | yes) ci=true ;; esac

started_postgres=false
stop_postgres() { if $started_postgres; then scripts/setup-postgres.sh --stop || true; fi; }
trap stop_postgres EXIT

if [ -z "${MEMEGUARD_TEST_POSTGRES_URL:-}" ]; then
  scripts/setup-postgres.sh --running && was_running=true || was_running=false
  if url=$(scripts/setup-postgres.sh); then
    export MEMEGUARD_TEST_POSTGRES_URL=$url
    $was_running || started_postgres=true
  elif $ci; then
    echo "run-tests: PostgreSQL could not be set up (above); under CI=true its tests must run" >&2
    exit 1
  else
    echo "run-tests: WARNING: PostgreSQL could not be set up; its tests are skipped" >&2
  fi
fi

echo "run-tests: cargo fmt --all --check" >&2
$CARGO fmt --all --check
echo "run-tests: cargo clippy --workspace --all-targets -- -D warnings" >&2
$CARGO clippy --workspace --all-targets -- -D warnings
$CARGO test --workspace --no-fail-fast
