#!/usr/bin/env bash
# Build the Docker image, run the demo exchange in it and check it as a client would:
# the container's HEALTHCHECK turns healthy, the probes answer, a key issued inside the
# container reads the sample advisory over HTTP, and the logs are JSON lines without the key.
# Needs Docker and curl.
set -euo pipefail
cd "$(dirname "$0")/../.."
IMAGE="${IMAGE:-taxii-server:ci}"
CONTAINER=taxii-ci-demo
PORT="${PORT:-8000}"
BASE="http://127.0.0.1:$PORT"
ACCEPT='Accept: application/taxii+json;version=2.1'

docker build --tag "$IMAGE" .
docker rm -f "$CONTAINER" >/dev/null 2>&1 || true
trap 'docker logs "$CONTAINER" > "${TMPDIR:-/tmp}/taxii-ci-demo.log" 2>&1 || true; docker rm -f "$CONTAINER" >/dev/null 2>&1 || true' EXIT
docker run --detach --name "$CONTAINER" --publish "127.0.0.1:$PORT:8000" \
    --volume "$PWD/scripts/demo-data:/srv/demo-data:ro" "$IMAGE" >/dev/null

echo "waiting for the container's health check"
for _ in $(seq 90); do
    state="$(docker inspect --format '{{.State.Health.Status}}' "$CONTAINER")"
    [[ "$state" == healthy ]] && break
    [[ "$state" == unhealthy ]] && { docker logs "$CONTAINER"; exit 1; }
    sleep 1
done
[[ "$state" == healthy ]] || { echo "never healthy: $state" >&2; docker logs "$CONTAINER"; exit 1; }

# The demo, inside the image: the sample advisory, and a key for one licensee.
docker exec "$CONTAINER" taxii-server import demo-data/advisories.json --collection advisories
key="$(docker exec "$CONTAINER" taxii-server keys issue northtel --expires 1d --label ci 2>/dev/null | tail -n 1)"

curl --fail --silent "$BASE/healthz" | grep -q '"ok"'
curl --fail --silent "$BASE/readyz" | grep -q '"ok"'
[[ "$(curl --silent --output /dev/null --write-out '%{http_code}' -H "$ACCEPT" "$BASE/taxii2/")" == 401 ]]
objects="$(curl --fail --silent -H "$ACCEPT" -u "northtel:$key" "$BASE/api/collections/advisories/objects/")"
python3 -c 'import json, sys; page = json.loads(sys.argv[1]); assert page["objects"], page' "$objects"

logs="$(docker logs "$CONTAINER" 2>&1)"
python3 -c 'import json, sys; [json.loads(line) for line in sys.argv[1].splitlines() if line.strip()]' "$logs"
if grep -qF "${key##*_}" <<<"$logs"; then echo "the key's secret is in the logs" >&2; exit 1; fi
echo "docker demo: healthy, serving, JSON logs without the key"
