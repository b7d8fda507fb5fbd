#!/bin/sh
# The container test (`make test-container`, and CI): build both images from a
# Debian base, bring the CPU one up with compose and use it as a student would
# (tests/container/). Needs root for the Docker engine; installs what is missing
# from Debian's packages, and cleans up what it started.
#
#   MLSAFETY_BASE_IMAGE=debian:bookworm-slim  use this base instead of debootstrapping one
#   MLSAFETY_TEST_TORCH_INDEX=<url>           the CPU image's torch index (default: PyPI)
#   CHROMIUM=<browser>                        the browser of the JupyterLab check (chromium)
#   MLSAFETY_ARM64=0                          skip the arm64 stage (the CPU image for
#                                             linux/arm64, built and checked under QEMU)
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
if [ "$BASE" = mlsafety-base:bookworm ] || [ "${MLSAFETY_ARM64:-1}" != 0 ]; then
    command -v debootstrap >/dev/null || missing="$missing debootstrap"
fi
NATIVE=$(uname -m)
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

# the Debian mirror this machine's apt uses
mirror=$(sed -n 's/^URIs: *\([^ ]*debian\)$/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n1)
[ -n "$mirror" ] || mirror=$(awk '$1 == "deb" {print $2; exit}' /etc/apt/sources.list 2>/dev/null)
mirror=${mirror:-http://deb.debian.org/debian}
if [ "$BASE" = mlsafety-base:bookworm ] && ! docker image inspect "$BASE" >/dev/null 2>&1; then
    say "building the base image $BASE with debootstrap from $mirror"
    rootfs=$(mktemp -d)
    debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >artifacts/debootstrap.log 2>&1 \
        || { say "debootstrap failed; see artifacts/debootstrap.log" >&2; rm -rf "$rootfs"; exit 1; }
    tar -C "$rootfs" -c . | docker import - "$BASE" >/dev/null
    rm -rf "$rootfs"
fi

# The arm64 stage (tests/container/test_arm64.py) needs a way to run arm64 code:
# the processor itself, or QEMU registered with binfmt_misc (root, a kernel with
# binfmt_misc). When there is none it is skipped, and says why.
ARM64_BASE=mlsafety-base:bookworm-arm64
arm64_skip=
if [ "${MLSAFETY_ARM64:-1}" = 0 ]; then
    arm64_skip="MLSAFETY_ARM64=0 was set"
elif [ "$NATIVE" != aarch64 ]; then
    # QEMU 8 or newer: torch's aarch64 build crashes on import under bookworm's 7.2;
    # on bookworm it comes from bookworm-backports
    qemu_major() { qemu-aarch64-static --version 2>/dev/null | sed -n 's/.*version \([0-9]*\)\..*/\1/p' | head -n1; }
    version=$(qemu_major || true)
    if [ -z "$version" ] || [ "$version" -lt 8 ]; then
        if [ "$(id -u)" -eq 0 ]; then
            suite=
            if grep -q '^VERSION_CODENAME=bookworm' /etc/os-release 2>/dev/null; then
                suite=bookworm-backports
                echo "deb $mirror bookworm-backports main" >/etc/apt/sources.list.d/mlsafety-backports.list
            fi
            say "installing QEMU for the arm64 stage${suite:+ from $suite}"
            apt-get update -q >/dev/null 2>&1 || true
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q ${suite:+-t "$suite"} \
                qemu-user-static binfmt-support >/dev/null 2>&1 || true
            # the registration holds the interpreter it opened: register the new one
            update-binfmts --disable qemu-aarch64 >/dev/null 2>&1 || true
        fi
    fi
    version=$(qemu_major || true)
    binfmt=/proc/sys/fs/binfmt_misc
    if [ ! -e "$binfmt/status" ] && [ "$(id -u)" -eq 0 ]; then
        mount -t binfmt_misc binfmt_misc "$binfmt" 2>/dev/null || true
    fi
    if [ -z "$version" ] || [ "$version" -lt 8 ]; then
        arm64_skip="QEMU ${version:-for arm64} is missing or too old for torch's aarch64 build (needs 8 or newer: qemu-user-static, from bookworm-backports on Debian 12)"
    elif [ ! -e "$binfmt/status" ]; then
        arm64_skip="binfmt_misc is not available here (no way to run arm64 code under QEMU)"
    else
        [ -e "$binfmt/qemu-aarch64" ] || update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
        if [ ! -e "$binfmt/qemu-aarch64" ]; then
            arm64_skip="QEMU is not registered for arm64 in binfmt_misc (update-binfmts --enable qemu-aarch64)"
        elif ! grep -q '^flags:.*F' "$binfmt/qemu-aarch64"; then
            arm64_skip="QEMU's arm64 registration lacks the F flag, so containers cannot use it"
        fi
    fi
fi
if [ -z "$arm64_skip" ] && ! docker image inspect "$ARM64_BASE" >/dev/null 2>&1; then
    say "building the arm64 base image $ARM64_BASE with debootstrap --arch=arm64"
    context=$(mktemp -d)
    mkdir "$context/rootfs"
    if debootstrap --arch=arm64 --variant=minbase bookworm "$context/rootfs" "$mirror" \
        >artifacts/debootstrap-arm64.log 2>&1; then
        # `docker import` labels the image with the engine's own platform; a
        # build from scratch labels it arm64
        tar -C "$context/rootfs" -cf "$context/rootfs.tar" .
        printf 'FROM scratch\nADD rootfs.tar /\nCMD ["bash"]\n' >"$context/Dockerfile"
        docker build -q --platform linux/arm64 -t "$ARM64_BASE" -f "$context/Dockerfile" \
            "$context" >/dev/null 2>&1 \
            || arm64_skip="the engine cannot build linux/arm64 images (docker build --platform)"
    else
        arm64_skip="debootstrap --arch=arm64 failed; see artifacts/debootstrap-arm64.log"
    fi
    rm -rf "$context"
fi
if [ -z "$arm64_skip" ]; then
    ran=$(docker run --rm --platform linux/arm64 "$ARM64_BASE" uname -m 2>&1 || true)
    [ "$ran" = aarch64 ] || arm64_skip="the arm64 base does not run here (uname -m said: $ran)"
fi
if [ -n "$arm64_skip" ]; then
    say "the arm64 stage is skipped: $arm64_skip"
    export MLSAFETY_ARM64_SKIP="$arm64_skip"
else
    export MLSAFETY_ARM64_BASE="$ARM64_BASE"
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
