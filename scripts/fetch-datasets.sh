#!/usr/bin/env bash
# Data sets the tests and benchmarks read that are not Python dependencies (run by
# scripts/install-test-deps.sh for `make test` and by `make bench`). A no-op when they are there.
set -euo pipefail
# The BG/NBD tests and bench (tests/loyalty_monitor/drift/test_bgnbd.py, bench/bench_bgnbd.py) validate against the CDNOW
# sample of Fader, Hardie & Lee (2005), read straight out of the lifetimes 0.11.3 wheel (the package
# itself is never installed: it is archived and its loader is broken on current setuptools).
# LOYALTY_DATASETS_DIR is where loyalty_monitor/drift/cdnow.py looks for it.
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="${LOYALTY_DATASETS_DIR:-$REPO/.venv/datasets}"
VENV_PY="$(command -v python || true)"
if [ -x "$REPO/.venv/bin/python" ]; then VENV_PY="$REPO/.venv/bin/python"; fi
# PyPI names the file Lifetimes-0.11.3-py3-none-any.whl: match the name case-insensitively.
have_wheel() {
  local f
  for f in "$DIR"/*.whl; do
    case "${f##*/}" in [Ll]ifetimes-0.11.3-*.whl) return 0 ;; esac
  done
  return 1
}
if ! have_wheel; then
  echo "downloading the lifetimes 0.11.3 wheel (CDNOW sample for the BG/NBD tests) into $DIR..."
  mkdir -p "$DIR"
  "$VENV_PY" -m pip download --quiet --no-deps --only-binary :all: lifetimes==0.11.3 -d "$DIR"
fi
