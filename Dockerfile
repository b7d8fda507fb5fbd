# The CPU image of the ML Safety labs: JupyterLab on the pinned environment,
# with the datasets and checkpoints of the smoke and cpu profiles baked in.
#
#   docker build -t mlsafety-labs:cpu .
#   docker compose up            (see docker-compose.yml)
#
# Dockerfile.cuda is the same image with the CUDA torch wheels; both run the
# shared steps in docker/build.sh.

ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}

ENV LANG=C.UTF-8 \
    PYTHONUNBUFFERED=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    MLSAFETY_HOME=/opt/mlsafety \
    MLSAFETY_DATA=/opt/mlsafety/data \
    MLSAFETY_WORK=/home/student/work \
    MLSAFETY_IMAGE=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    HF_HUB_DISABLE_TELEMETRY=1 \
    VENV=/opt/venv \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt

# Optional extra CA certificates (*.crt in docker/certs/), trusted before any download.
COPY docker/certs/ /tmp/extra-certs/
COPY docker/build.sh /opt/mlsafety/docker/
RUN /opt/mlsafety/docker/build.sh system

COPY environments/requirements.txt environments/models.txt /opt/mlsafety/repo/environments/
# Where the torch wheel comes from: the CPU-only wheels, without CUDA libraries.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
RUN /opt/mlsafety/docker/build.sh python "${TORCH_INDEX}"

COPY environments/ /opt/mlsafety/repo/environments/
COPY pyproject.toml README.md Makefile conftest.py .pre-commit-config.yaml /opt/mlsafety/repo/
COPY src/ /opt/mlsafety/repo/src/
COPY scripts/ /opt/mlsafety/repo/scripts/
COPY labs/ /opt/mlsafety/repo/labs/
COPY solutions/ /opt/mlsafety/repo/solutions/
COPY tests/ /opt/mlsafety/repo/tests/
COPY docker/build.sh docker/entrypoint.sh /opt/mlsafety/repo/docker/
# Profiles whose datasets and checkpoints are fetched and built into the image.
ARG ASSET_PROFILES="smoke cpu"
RUN /opt/mlsafety/docker/build.sh toolkit \
    && /opt/mlsafety/docker/build.sh assets "${ASSET_PROFILES}"

USER 1000:1000
WORKDIR /home/student/work
EXPOSE 8888
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/api' % os.environ.get('JUPYTER_PORT', '8888'), timeout=4)"]
# tini is PID 1 (compose adds no init of its own); no -s: a subreaper is needless
# as PID 1, and QEMU's user-mode emulation cannot make one (tini -s stops there)
ENTRYPOINT ["/usr/bin/tini", "--", "/opt/mlsafety/repo/docker/entrypoint.sh"]
