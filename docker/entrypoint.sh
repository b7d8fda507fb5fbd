#!/bin/sh
# Start JupyterLab in the image: the labs in the work folder (the bind-mounted
# repository), a token from JUPYTER_TOKEN or a generated one that is printed.
set -eu

WORK=${MLSAFETY_WORK:-/home/student/work}
PORT=${JUPYTER_PORT:-8888}

if [ ! -d "$WORK/labs" ]; then
    if [ -n "$(ls -A "$WORK" 2>/dev/null)" ]; then
        echo "mlsafety: $WORK holds files but no labs/ folder; mount the mlsafety-labs repository there" >&2
        exit 2
    fi
    # nothing mounted (or an empty volume): start from the labs baked into the image
    echo "mlsafety: $WORK is empty; copying the labs from the image (mount the repository to keep your work)"
    cp -R "$MLSAFETY_HOME/repo/." "$WORK/"
fi
if [ ! -w "$WORK" ]; then
    echo "mlsafety: $WORK is not writable by uid $(id -u); on the host, run: sudo chown -R $(id -u):$(id -g) <your clone>" >&2
fi

export MLSAFETY_REPO="$WORK"
cd "$WORK"
if [ "$#" -gt 0 ]; then
    exec "$@"
fi
exec mlsafety lab --ip 0.0.0.0 --port "$PORT"
