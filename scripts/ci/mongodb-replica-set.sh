#!/usr/bin/env bash
# Start a one-member MongoDB replica set on 127.0.0.1:${MONGODB_PORT:-27017}, initiate it and
# wait for its primary; `stop` removes it. Uses a local mongod and mongosh when both are on
# PATH, otherwise Docker (the mongo image, ${MONGODB_IMAGE:-mongo:7}). Prints the URI to test
# against. (CI starts it here rather than as a service container: a service container takes
# no command-line arguments, and mongod needs --replSet.)
set -euo pipefail
PORT="${MONGODB_PORT:-27017}"
IMAGE="${MONGODB_IMAGE:-mongo:7}"
CONTAINER=taxii-ci-mongodb
DATA="${MONGODB_DBPATH:-${TMPDIR:-/tmp}/taxii-ci-mongodb}"

if command -v mongod >/dev/null && command -v mongosh >/dev/null; then
    mode=local
    shell() { mongosh --quiet --port "$PORT" "$@"; }
else
    mode=docker
    shell() { docker exec "$CONTAINER" mongosh --quiet --port 27017 "$@"; }
fi

if [[ "${1:-start}" == stop ]]; then
    if [[ $mode == docker ]]; then docker rm -f "$CONTAINER" >/dev/null 2>&1 || true
    else shell --eval 'db.getSiblingDB("admin").shutdownServer()' >/dev/null 2>&1 || true; fi
    exit 0
fi

if [[ $mode == docker ]]; then
    docker rm -f "$CONTAINER" >/dev/null 2>&1 || true
    docker run --detach --name "$CONTAINER" --publish "127.0.0.1:$PORT:27017" "$IMAGE" \
        --replSet rs0 --bind_ip_all >/dev/null
else
    mkdir -p "$DATA"
    mongod --replSet rs0 --dbpath "$DATA" --port "$PORT" --bind_ip 127.0.0.1 \
        --fork --logpath "$DATA/mongod.log" >/dev/null
fi

for _ in $(seq 60); do
    shell --eval 'db.runCommand({ping: 1}).ok' >/dev/null 2>&1 && break
    sleep 1
done
# The member's address is the one clients on this host use, so the driver can find the primary.
shell --eval "try { rs.status() } catch (e) { rs.initiate({_id: 'rs0', members: [{_id: 0, host: '127.0.0.1:$PORT'}]}) }" >/dev/null
for _ in $(seq 60); do
    if [[ "$(shell --eval 'db.hello().isWritablePrimary' 2>/dev/null)" == true ]]; then
        echo "mongodb://127.0.0.1:$PORT/?replicaSet=rs0"
        exit 0
    fi
    sleep 1
done
echo "the replica set never elected a primary" >&2
exit 1
