#!/usr/bin/env bash
# JupyterHub for a class on one machine (`make hub`, `make hub-down`).
#
#   deploy/jupyterhub/hub.sh up      build the hub image, start the hub, wait until it
#                                    answers, print where to log in
#   deploy/jupyterhub/hub.sh down    stop the hub and every student's server (their
#                                    work stays in their volumes)
#   deploy/jupyterhub/hub.sh status  the hub and the students' servers
#
# Settings are environment variables (README.md lists them): MLSAFETY_HUB_IMAGE (the
# lab image students get), MLSAFETY_HUB_PORT (8000), MLSAFETY_HUB_ADMIN (facilitator) ...
set -euo pipefail
cd "$(dirname "$0")"

PORT=${MLSAFETY_HUB_PORT:-8000}
BIND=${MLSAFETY_HUB_BIND:-127.0.0.1}
IMAGE=${MLSAFETY_HUB_IMAGE:-ghcr.io/mlsafety-labs/mlsafety-labs:cpu}
ADMIN=${MLSAFETY_HUB_ADMIN:-facilitator}
WAIT=${MLSAFETY_HUB_WAIT:-180}

say() { echo "mlsafety-hub: $*"; }
die() { echo "mlsafety-hub: $*" >&2; exit 2; }

compose() {
    if [ -n "${COMPOSE:-}" ]; then
        "$COMPOSE" -f compose.yml "$@"
    elif docker compose version >/dev/null 2>&1; then
        docker compose -f compose.yml "$@"
    elif command -v docker-compose >/dev/null; then
        docker-compose -f compose.yml "$@"
    else
        die "Docker Compose is missing: install the compose plugin (docker compose) or docker-compose"
    fi
}

preflight() {
    command -v docker >/dev/null || die "docker is not installed; see https://docs.docker.com/engine/install/"
    docker info >/dev/null 2>&1 || die "the Docker engine is not running (or you may not use it): start it, e.g. sudo systemctl start docker"
    docker image inspect "$IMAGE" >/dev/null 2>&1 || \
        die "the lab image $IMAGE is not on this machine: docker pull $IMAGE (or build it: make image IMAGE=${IMAGE%:*}); set MLSAFETY_HUB_IMAGE to use another"
    if [ -n "${MLSAFETY_HUB_GPU_IMAGE:-}" ]; then
        docker image inspect "$MLSAFETY_HUB_GPU_IMAGE" >/dev/null 2>&1 || \
            die "the GPU image $MLSAFETY_HUB_GPU_IMAGE is not on this machine: docker pull it or unset MLSAFETY_HUB_GPU_IMAGE"
    fi
    if [ -z "$(docker ps -q --filter name='^mlsafety-hub$')" ] && \
        (exec 3<>"/dev/tcp/${BIND/0.0.0.0/127.0.0.1}/$PORT") 2>/dev/null; then
        die "port $PORT is in use on $BIND: stop what listens there or choose another, e.g. make hub MLSAFETY_HUB_PORT=8001"
    fi
}

up() {
    preflight
    say "building the hub image and starting the hub on $BIND:$PORT (students get $IMAGE)"
    compose up -d --build hub >/dev/null 2>&1 || {
        compose logs --tail 40 hub >&2 || true
        die "the hub did not start; its log is above (compose logs hub)"
    }
    local waited=0 health=
    while [ "$waited" -lt "$WAIT" ]; do
        health=$(docker inspect -f '{{.State.Health.Status}}' mlsafety-hub 2>/dev/null || echo missing)
        [ "$health" = healthy ] && break
        sleep 1
        waited=$((waited + 1))
    done
    if [ "$health" != healthy ]; then
        compose logs --tail 40 hub >&2 || true
        die "the hub is $health, not healthy, after ${WAIT} s; its log is above (compose logs hub)"
    fi
    local host=$BIND
    [ "$host" = 0.0.0.0 ] && host=$(hostname -f 2>/dev/null || echo localhost)
    say "JupyterHub is up: http://$host:$PORT/hub/"
    say "the facilitator signs up first as '$ADMIN' (http://$host:$PORT/hub/signup), then authorizes each student at http://$host:$PORT/hub/authorize"
    say "students sign up at http://$host:$PORT/hub/signup; put an HTTPS proxy in front before sharing the address (deploy/jupyterhub/README.md)"
}

down() {
    compose down --timeout 30 >/dev/null 2>&1 || true
    # the students' servers, if the hub could not stop them itself
    local left
    left=$(docker ps -aq --filter name='^mlsafety-student-' 2>/dev/null || true)
    if [ -n "$left" ]; then
        # shellcheck disable=SC2086  # one id per word
        docker rm -f $left >/dev/null
    fi
    say "the hub and the students' servers are stopped; their work stays in the volumes mlsafety-hub-user-<name>"
}

status() {
    compose ps
    docker ps --filter name='^mlsafety-student-' --format 'table {{.Names}}\t{{.Status}}\t{{.Image}}'
}

case "${1:-up}" in
    up) up ;;
    down) down ;;
    status) status ;;
    *) die "usage: hub.sh up|down|status" ;;
esac
