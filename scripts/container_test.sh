#!/bin/sh
# The container test (`make test-container`, and CI): build both images from a
# Debian base, bring the CPU one up with compose and use it as a student would
# (tests/container/). Needs root for the Docker engine; installs what is missing
# from Debian's packages, and cleans up what it started.
#
#   MLSAFETY_BASE_IMAGE=debian:bookworm-slim  use this base instead of debootstrapping one
#   MLSAFETY_TEST_TORCH_INDEX=<url>           the CPU image's torch index (default: PyPI)
#   CHROMIUM=<browser>                        the browser of the JupyterLab check (chromium)
#
# The dev containers are opened with the Dev Containers CLI (npm), pinned here.
DEVCONTAINER_CLI=0.89.0
set -eu
cd "$(dirname "$0")/.."

BASE=${MLSAFETY_BASE_IMAGE:-mlsafety-base:bookworm}
mkdir -p artifacts
STARTED_DOCKERD=
COPIED_CERTS=

say() { echo "container-test: $*"; }

cleanup() {
    for cert in $COPIED_CERTS; do rm -f "docker/certs/$cert"; done
    # the layers of images this run replaced (each build retags the test images)
    if docker info >/dev/null 2>&1; then docker image prune -f >/dev/null 2>&1 || true; fi
    if [ -n "$STARTED_DOCKERD" ]; then
        say "stopping the Docker engine it started"
        kill "$STARTED_DOCKERD" 2>/dev/null || true
        wait "$STARTED_DOCKERD" 2>/dev/null || true
    fi
}
trap cleanup EXIT INT TERM

missing=
command -v docker >/dev/null || missing="$missing docker.io"
command -v docker-compose >/dev/null || missing="$missing docker-compose"
command -v "${CHROMIUM:-chromium}" >/dev/null || missing="$missing chromium"
command -v npm >/dev/null || missing="$missing npm"
if [ "$BASE" = mlsafety-base:bookworm ]; then
    command -v debootstrap >/dev/null || missing="$missing debootstrap"
fi
if [ -n "$missing" ]; then
    if [ "$(id -u)" -ne 0 ]; then
        say "needs$missing; install them (sudo apt-get install$missing) or run as root" >&2
        exit 2
    fi
    say "installing$missing from Debian's packages"
    apt-get update -q >/dev/null
    # shellcheck disable=SC2086  # one word per package
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing >/dev/null
fi

if [ "$(devcontainer --version 2>/dev/null)" != "$DEVCONTAINER_CLI" ]; then
    if [ "$(id -u)" -ne 0 ]; then
        say "needs the Dev Containers CLI: npm install -g @devcontainers/cli@$DEVCONTAINER_CLI" >&2
        exit 2
    fi
    say "installing the Dev Containers CLI $DEVCONTAINER_CLI from npm"
    npm install -g --silent --no-fund --no-audit "@devcontainers/cli@$DEVCONTAINER_CLI" >/dev/null
fi

if ! docker info >/dev/null 2>&1; then
    if [ "$(id -u)" -ne 0 ]; then
        say "the Docker engine is not running and only root can start it here" >&2
        exit 2
    fi
    say "starting the Docker engine"
    dockerd >artifacts/dockerd.log 2>&1 &
    STARTED_DOCKERD=$!
    tries=0
    until docker info >/dev/null 2>&1; do
        tries=$((tries + 1))
        if [ "$tries" -gt 60 ]; then
            say "dockerd did not start; see artifacts/dockerd.log" >&2
            exit 1
        fi
        sleep 1
    done
fi

if [ "$BASE" = mlsafety-base:bookworm ] && ! docker image inspect "$BASE" >/dev/null 2>&1; then
    mirror=$(sed -n 's/^URIs: *\([^ ]*debian\)$/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n1)
    [ -n "$mirror" ] || mirror=$(awk '$1 == "deb" {print $2; exit}' /etc/apt/sources.list 2>/dev/null)
    mirror=${mirror:-http://deb.debian.org/debian}
    say "building the base image $BASE with debootstrap from $mirror"
    rootfs=$(mktemp -d)
    debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >artifacts/debootstrap.log 2>&1 \
        || { say "debootstrap failed; see artifacts/debootstrap.log" >&2; rm -rf "$rootfs"; exit 1; }
    tar -C "$rootfs" -c . | docker import - "$BASE" >/dev/null
    rm -rf "$rootfs"
fi

# Room for the builds: the layers of images replaced by earlier runs go first;
# the two images and the dev container need about 20 GB on a machine that has
# built none of their layers yet.
docker image prune -f >/dev/null
root=$(docker info -f '{{.DockerRootDir}}' 2>/dev/null || echo /var/lib/docker)
free_gb=$(df -Pk "$root" | awk 'NR == 2 {print int($4 / 1048576)}')
if [ "$free_gb" -lt 20 ]; then
    say "warning: only $free_gb GB free under $root; building both images from nothing needs about 20 GB (docker image ls, docker image rm free room)" >&2
fi

# The host's extra CA certificates (a TLS-inspecting proxy) go into the build
# context for the duration of the build; git ignores them there.
for cert in /usr/local/share/ca-certificates/*.crt; do
    [ -f "$cert" ] || continue
    name=$(basename "$cert")
    [ -e "docker/certs/$name" ] && continue
    cp "$cert" "docker/certs/$name"
    COPIED_CERTS="$COPIED_CERTS $name"
done

# playwright (the browser check) and Compose v2 come from the tool set in .tools/
export MLSAFETY_CONTAINER_TEST=1 MLSAFETY_BASE_IMAGE="$BASE" PYTHONPATH=".tools${PYTHONPATH:+:$PYTHONPATH}"
"${VENV:-.venv}/bin/python" -m pytest tests/container -v -s --durations=0 "$@"
