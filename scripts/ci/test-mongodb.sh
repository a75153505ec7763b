#!/usr/bin/env bash
# The suite's cases on a real MongoDB replica set: every storage-contract and HTTP case of
# tests/backends.py's `mongodb` backend, and the query-plan checks that need a real server.
# TAXII_TEST_MONGODB_URI names the replica set; without it, one is started here
# (scripts/ci/mongodb-replica-set.sh) and removed afterwards.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [[ -z "${TAXII_TEST_MONGODB_URI:-}" ]]; then
    TAXII_TEST_MONGODB_URI="$(scripts/ci/mongodb-replica-set.sh start)"
    trap 'scripts/ci/mongodb-replica-set.sh stop' EXIT
fi
export TAXII_TEST_MONGODB_URI
scripts/test -q -k mongodb "$@"
