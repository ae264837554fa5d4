# syntax=docker/dockerfile:1
# kubenova container images, both on the Debian 12 userland the tests run on:
#   docker build --target operator -t kubenova-operator .   (non-root, uid 65532)
#   docker build --target agent    -t kubenova-agent .      (root: the DaemonSet is privileged)
# Without Docker: hack/build-images.sh (a Debian base from mmdebstrap, buildah, no daemon).
# tests/unit/test_dockerfile.py checks this file statically: the base is pinned, the agent
# installs exactly the Debian packages of the programs the code runs, and the entry points
# are the console scripts pyproject.toml declares.

ARG DEBIAN_IMAGE=debian:12.11-slim

# ---- build: a virtualenv with kubenova and its pinned dependencies ----------------------
FROM ${DEBIAN_IMAGE} AS build
# libvirt-python is built from source against Debian's libvirt (as on the test machines).
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      python3 python3-venv python3-dev gcc pkg-config libvirt-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml requirements.lock README.md ./
# kubenova/operator and kubenova/agents are symlinks to these two folders.
COPY operator ./operator
COPY agents ./agents
COPY kubenova ./kubenova
# -P: the current directory (/src) stays off sys.path, or the repository's operator/ package
# would hide the standard library's `operator` (ImportError: cannot import name 'eq'). Every
# `python3 -m` run from here needs it.
RUN python3 -P -m venv /opt/kubenova \
 && /opt/kubenova/bin/python -P -m pip install --no-cache-dir --upgrade pip \
 && /opt/kubenova/bin/python -P -m pip install --no-cache-dir -c requirements.lock . \
 && /opt/kubenova/bin/kubenova-operator --version \
 && /opt/kubenova/bin/kubenova-agent --version

# ---- operator: scheduler, inventory, admission; no hypervisor tools --------------------
FROM ${DEBIAN_IMAGE} AS operator
# Programs the operator runs (derived from operator/ by the test: none today).
ARG OPERATOR_PROGRAMS=""
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 ca-certificates ${OPERATOR_PROGRAMS} \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /opt/kubenova /opt/kubenova
# A named user with a home it can write: without one HOME is / (the default SQLite inventory
# ~/.local/share/kubenova fails with PermissionError: '/.local') and kopf's
# getpass.getuser() fails with KeyError: 'getpwuid(): uid not found: 65532'.
RUN groupadd --system --gid 65532 kubenova \
 && useradd --system --uid 65532 --gid 65532 --home-dir /home/kubenova --create-home \
      --shell /usr/sbin/nologin kubenova
ENV PATH=/opt/kubenova/bin:${PATH} \
    HOME=/home/kubenova \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 65532:65532
EXPOSE 8080 9443
ENTRYPOINT ["kubenova-operator"]

# ---- agent: one per hypervisor host --------------------------------------------------------
FROM ${DEBIAN_IMAGE} AS agent
# Shared libraries the Python code loads (libvirt-python's extension links libvirt.so.0).
ARG AGENT_LIBRARIES="libvirt0"
# Debian packages of the programs the agent runs (derived from agents/ by the test).
ARG AGENT_PROGRAMS="dnsmasq-base ethtool genisoimage iproute2 nftables openvswitch-switch procps qemu-utils tgt vblade"
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      python3 ca-certificates ${AGENT_LIBRARIES} ${AGENT_PROGRAMS} \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /opt/kubenova /opt/kubenova
ENV PATH=/opt/kubenova/bin:${PATH} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
EXPOSE 8080
ENTRYPOINT ["kubenova-agent"]
