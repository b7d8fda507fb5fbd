#!/bin/sh
# The dev containers' postCreateCommand: check that the student can work in the
# opened workspace, then install the pre-commit hooks. One clear line when not.
set -eu

WORK=$(pwd)
if [ ! -w "$WORK" ] || [ ! -w "$WORK/labs" ]; then
    owner=$(stat -c %u "$WORK")
    echo "mlsafety: the workspace $WORK belongs to uid $owner and $(id -un) (uid $(id -u)) cannot write to it;" \
        "open the folder as the non-root user who owns it (Dev Containers then maps student to that uid)," \
        "or run on the host: sudo chown -R $(id -u):$(id -g) <your clone>" >&2
    exit 1
fi
if [ -d .git ]; then
    pre-commit install >/dev/null
fi
echo "mlsafety: dev container ready for $(id -un) (uid $(id -u)) in $WORK; grade a week with: make test-week3"
