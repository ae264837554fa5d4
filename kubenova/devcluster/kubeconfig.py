"""Kubeconfig files for the local control plane: CA data inline, never insecure-skip-tls-verify."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import yaml

CLUSTER_NAME = "kubenova-dev"


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def write_kubeconfig(
    path: Path,
    *,
    server: str,
    ca_file: Path,
    user: str,
    token: str | None = None,
    client_cert: Path | None = None,
    client_key: Path | None = None,
) -> Path:
    """Write a one-context kubeconfig that authenticates by bearer token or client cert."""
    credentials: dict[str, Any] = {}
    if token is not None:
        credentials["token"] = token
    if client_cert is not None and client_key is not None:
        credentials["client-certificate-data"] = _b64(client_cert)
        credentials["client-key-data"] = _b64(client_key)
    if not credentials:
        raise ValueError("a kubeconfig needs a token or a client certificate and key")
    context = f"{user}@{CLUSTER_NAME}"
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": CLUSTER_NAME,
                "cluster": {"server": server, "certificate-authority-data": _b64(ca_file)},
            }
        ],
        "users": [{"name": user, "user": credentials}],
        "contexts": [{"name": context, "context": {"cluster": CLUSTER_NAME, "user": user}}],
        "current-context": context,
        "preferences": {},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    # Credentials inside: readable by the owner only, also while being written.
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.touch(mode=0o600)
    tmp.chmod(0o600)
    tmp.write_text(yaml.safe_dump(document, sort_keys=False))
    tmp.replace(path)
    return path
