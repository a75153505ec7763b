#!/usr/bin/env bash
# The whole test suite, its storage cases on SQLite and on mongomock (tests/backends.py).
# Runs anywhere Python 3.10+ with venv is: locally as in CI.
set -euo pipefail
cd "$(dirname "$0")/../.."
exec scripts/test -q "$@"
