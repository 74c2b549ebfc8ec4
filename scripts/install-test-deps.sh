#!/usr/bin/env bash
# System packages the test suite needs beyond the Python virtualenv: headless Chromium renders
# the leadership report and the web app, driven by Playwright (a test dependency in pyproject.toml)
# through this system binary: `playwright install` is never run, its browser download site is out
# of reach; the PostgreSQL server and a Java runtime (Spark) run the warehouse parity
# tests. Installs only what
# is missing; a no-op on a prepared machine.
set -euo pipefail
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing chromium (headless report rendering)..."
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "warning: chromium is not installed and cannot be installed here; report rendering tests will fail" >&2
  fi
fi

# PostgreSQL server binaries: tests/loyalty_monitor/warehouse/test_warehouse_postgres.py builds the dbt project on a
# throw-away cluster of its own (tests/helpers/postgres_cluster.py: initdb + pg_ctl on a free port). Debian
# puts them under /usr/lib/postgresql/<version>/bin, off PATH; the fixture looks there too.
have_initdb() {
  command -v initdb >/dev/null 2>&1 && return 0
  local d
  for d in /usr/lib/postgresql/*/bin; do [ -x "$d/initdb" ] && return 0; done
  return 1
}
if ! have_initdb; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing the PostgreSQL server (warehouse parity tests)..."
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  else
    echo "warning: PostgreSQL server binaries (initdb) are not installed and cannot be installed here; the PostgreSQL warehouse tests will be skipped" >&2
  fi
fi

# A Java runtime (17 or later): Apache Spark runs in the test process (dbt-spark's session method,
# pyspark) for the engine parity tests (tests/loyalty_monitor/warehouse/test_warehouse_postgres.py).
if ! command -v java >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing a Java runtime (Spark in the warehouse parity tests)..."
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless >/dev/null
  else
    echo "warning: no Java runtime (java) and none can be installed here; the Spark warehouse tests will fail" >&2
  fi
fi

# The lifetimes wheel (the CDNOW sample of the BG/NBD tests and bench): its own script, which
# `make bench` runs too.
"$(dirname "${BASH_SOURCE[0]}")/fetch-datasets.sh"
