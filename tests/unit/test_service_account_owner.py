"""Objects a pod makes (its Leases) are owned by the pod's ServiceAccount, read from its
bound token, so `helm uninstall` takes them; never an owner from another namespace."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from kubenova.kube import config as kube_config
from kubenova.kube.config import ConnectionConfig, service_account_owner


def _token(claims: dict[str, Any]) -> str:
    def part(doc: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(doc).encode()).decode().rstrip("=")

    return f"{part({'alg': 'RS256'})}.{part(claims)}.signature"


BOUND = {
    "kubernetes.io": {
        "namespace": "kubenova-system",
        "serviceaccount": {"name": "kubenova-agent", "uid": "1f2e"},
        "pod": {"name": "kubenova-agent-compute-x", "uid": "9a8b"},
    }
}


@pytest.fixture
def account_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(kube_config, "SERVICE_ACCOUNT", tmp_path)
    return tmp_path


def _in_pod(account_dir: Path, token: str) -> ConnectionConfig:
    (account_dir / "token").write_text(token)
    return ConnectionConfig(server="https://10.0.0.1", token_file=str(account_dir / "token"))


def test_a_pod_owns_its_objects_through_its_service_account(account_dir: Path) -> None:
    config = _in_pod(account_dir, _token(BOUND))

    assert service_account_owner(config, "kubenova-system") == {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "name": "kubenova-agent",
        "uid": "1f2e",
    }


def test_no_owner_in_another_namespace_nor_from_a_token_without_the_claims(
    account_dir: Path,
) -> None:
    # A namespaced owner missing from the dependent's namespace gets the dependent deleted.
    assert service_account_owner(_in_pod(account_dir, _token(BOUND)), "default") is None
    assert service_account_owner(_in_pod(account_dir, _token({"sub": "x"})), "default") is None
    assert service_account_owner(_in_pod(account_dir, "not-a-jwt"), "kubenova-system") is None


def test_no_owner_outside_a_pod(account_dir: Path, tmp_path: Path) -> None:
    other = tmp_path / "elsewhere-token"
    other.write_text(_token(BOUND))
    config = ConnectionConfig(server="https://10.0.0.1", token_file=str(other))

    assert service_account_owner(config, "kubenova-system") is None
