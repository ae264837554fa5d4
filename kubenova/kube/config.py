"""Where the API server is and how to authenticate: kubeconfig or in-cluster service account."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import ssl
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .credentials import BearerToken

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")


@dataclass(frozen=True)
class ConnectionConfig:
    """Everything needed to open a TLS connection to one API server as one user."""

    server: str
    ca_file: str | None = None
    token: str | None = None
    # Read again whenever it changes (bound ServiceAccount tokens expire); wins over `token`.
    token_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    insecure: bool = False
    namespace: str = "default"

    def current_token(self) -> str | None:
        """The token to send now: the token file's content when there is one."""
        return BearerToken(self.token, self.token_file).current()

    def ssl_context(self) -> ssl.SSLContext | bool:
        if self.insecure:
            return False
        context = ssl.create_default_context(cafile=self.ca_file)
        if self.cert_file and self.key_file:
            context.load_cert_chain(self.cert_file, self.key_file)
        return context


def _materialise(data: str | None, path: str | None, suffix: str) -> str | None:
    """kubeconfigs carry certs inline (base64) or by path; ssl wants a path.

    Inline data is written once per content, into a directory only this user may enter, and
    the same file is handed out again after: a file per call piled up client keys in /tmp
    (over a thousand after one test run) and nothing removed them.
    """
    if path:
        return os.path.expanduser(path)
    if not data:
        return None
    raw = base64.b64decode(data)
    target = _private_dir() / f"{hashlib.sha256(raw).hexdigest()[:40]}{suffix}"
    try:
        if target.read_bytes() == raw:
            return str(target)
    except FileNotFoundError:
        pass
    # Written aside and renamed: a process reading it meanwhile never sees half a key.
    fd, partial = tempfile.mkstemp(dir=target.parent, suffix=".partial")
    with os.fdopen(fd, "wb") as handle:
        handle.write(raw)
    os.replace(partial, target)
    return str(target)


def _private_dir() -> Path:
    """`<tmp>/kubenova-<uid>`, mode 0700 and ours; refused when someone else made it first
    (their files would be ours to trust)."""
    directory = Path(tempfile.gettempdir()) / f"kubenova-{os.getuid()}"
    with contextlib.suppress(FileExistsError):
        directory.mkdir(mode=0o700)
    found = directory.lstat()
    if (
        not stat.S_ISDIR(found.st_mode)
        or found.st_uid != os.getuid()
        or stat.S_IMODE(found.st_mode) & 0o077
    ):
        raise PermissionError(f"{directory} is not a private directory of this user")
    return directory


def from_kubeconfig(path: Path, context: str | None = None) -> ConnectionConfig:
    """Read one kubeconfig file (the current or the given context)."""
    doc: dict[str, Any] = yaml.safe_load(path.read_text()) or {}
    name = context or doc.get("current-context")
    contexts = {c["name"]: c.get("context", {}) for c in doc.get("contexts", [])}
    if name not in contexts:
        raise ValueError(f"{path}: context {name!r} not found")
    ctx = contexts[name]
    cluster = {c["name"]: c.get("cluster", {}) for c in doc.get("clusters", [])}[ctx["cluster"]]
    user = {u["name"]: u.get("user", {}) for u in doc.get("users", [])}.get(ctx.get("user"), {})
    return ConnectionConfig(
        server=cluster["server"].rstrip("/"),
        ca_file=_materialise(
            cluster.get("certificate-authority-data"), cluster.get("certificate-authority"), ".crt"
        ),
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
        token=user.get("token"),
        token_file=os.path.expanduser(user["tokenFile"]) if user.get("tokenFile") else None,
        cert_file=_materialise(
            user.get("client-certificate-data"), user.get("client-certificate"), ".crt"
        ),
        key_file=_materialise(user.get("client-key-data"), user.get("client-key"), ".key"),
        namespace=ctx.get("namespace", "default"),
    )


def in_cluster() -> ConnectionConfig:
    """The pod's service account."""
    host = os.environ["KUBERNETES_SERVICE_HOST"]
    port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    return ConnectionConfig(
        server=f"https://{host}:{port}",
        ca_file=str(SERVICE_ACCOUNT / "ca.crt"),
        token=(SERVICE_ACCOUNT / "token").read_text().strip(),
        token_file=str(SERVICE_ACCOUNT / "token"),
        namespace=(SERVICE_ACCOUNT / "namespace").read_text().strip(),
    )


def load_config(kubeconfig: Path | str | None = None) -> ConnectionConfig:
    """An explicit kubeconfig, else $KUBECONFIG, else the service account, else ~/.kube/config."""
    if kubeconfig:
        return from_kubeconfig(Path(kubeconfig))
    env = os.environ.get("KUBECONFIG")
    if env:
        return from_kubeconfig(Path(env.split(os.pathsep)[0]))
    if (SERVICE_ACCOUNT / "token").exists() and "KUBERNETES_SERVICE_HOST" in os.environ:
        return in_cluster()
    return from_kubeconfig(Path.home() / ".kube" / "config")


def service_account_owner(config: ConnectionConfig, namespace: str) -> dict[str, Any] | None:
    """An ownerReference to the pod's own ServiceAccount, read from its bound token's claims,
    for objects the pod makes in `namespace` that must go when the installation goes
    (`helm uninstall` deletes the account, the garbage collector the objects it owns).

    None outside a pod, with a token without those claims, or for another namespace: a
    namespaced owner must share its dependents' namespace, and the garbage collector deletes
    dependents whose owner it cannot find there.
    """
    if config.token_file != str(SERVICE_ACCOUNT / "token"):
        return None
    try:
        payload = (config.current_token() or "").split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        scope = claims["kubernetes.io"]
        account = scope["serviceaccount"]
        if scope["namespace"] != namespace:
            return None
        return {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "name": str(account["name"]),
            "uid": str(account["uid"]),
        }
    except (IndexError, KeyError, TypeError, ValueError):
        return None
