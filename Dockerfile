# syntax=docker/dockerfile:1
# ksm-exporter: a small image that runs as an unprivileged user by default.
#
#   docker build -t ksm-exporter .
#   docker run -d --name ksm-exporter -p 10131:10131 --read-only \
#     --cap-drop=ALL --cap-add=DAC_READ_SEARCH \
#     -v /proc:/host/proc:ro -v /sys:/host/sys:ro \
#     ksm-exporter --path.procfs=/host/proc --path.sysfs=/host/sys
#
# README.md ("Container") explains each option.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY ksm_exporter ./ksm_exporter
# A virtual environment holding only the exporter and its runtime dependencies.
RUN python -m venv /opt/ksm-exporter \
 && /opt/ksm-exporter/bin/pip install . \
 && /opt/ksm-exporter/bin/pip uninstall --yes pip setuptools

FROM ${PYTHON_IMAGE}
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="ksm-exporter" \
      org.opencontainers.image.description="Prometheus exporter for Linux Kernel Samepage Merging (KSM)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.documentation="README.md"
COPY --from=build /opt/ksm-exporter /opt/ksm-exporter
# pip is not needed at run time. The interpreter gets CAP_DAC_READ_SEARCH as a *permitted*
# file capability, which the exporter makes effective at start-up: Docker and Kubernetes
# give added capabilities only to uid 0, and this is how the unprivileged user reads other
# users' /proc/<pid>/ksm_stat. Without the effective flag on the file, Python still starts
# where the container was not given the capability, just without it.
RUN python -m pip uninstall --yes --root-user-action=ignore pip setuptools wheel \
 && /opt/ksm-exporter/bin/python -m ksm_exporter.privileges /usr/local/bin/python3
ENV PATH=/opt/ksm-exporter/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
# nobody:nogroup, numeric so that runAsNonRoot can check it.
USER 65534:65534
EXPOSE 10131
ENTRYPOINT ["ksm-exporter"]
