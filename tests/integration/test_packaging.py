"""The distribution: a built wheel carries kubenova.operator and kubenova.agents as real files."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import kubenova.agents
import kubenova.operator

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(REPO),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    (built,) = out.glob("kubenova-*.whl")
    return built


def test_wheel_holds_every_package_as_files(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for module in (
        "kubenova/__init__.py",
        "kubenova/py.typed",
        "kubenova/api/v1alpha1/instance.py",
        "kubenova/operator/__init__.py",
        "kubenova/operator/instances/reconciler.py",
        "kubenova/operator/inventory/migrations/env.py",
        "kubenova/agents/__init__.py",
        "kubenova/agents/host/registration.py",
    ):
        assert module in names, f"{module} missing from {wheel.name}"
    assert any(n.startswith("kubenova/operator/inventory/migrations/versions/") for n in names)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    for script in ("kubenova =", "kubenova-operator =", "kubenova-agent ="):
        assert script in text


def test_wheel_imports_outside_the_checkout(wheel: Path, tmp_path: Path) -> None:
    """Unpacked alone (no checkout, no editable finder first on the path) it imports."""
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    probe = (
        "import kubenova, kubenova.operator.instances, kubenova.agents.host, "
        "kubenova.api.v1alpha1, kubenova.operator.inventory as inv;"
        "print(kubenova.__file__); print(inv.head_revision())"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        env={"PYTHONPATH": str(site)},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    first = result.stdout.splitlines()[0]
    assert first.startswith(str(site)), f"imported from {first}, not the wheel"


def test_editable_install_maps_the_real_folders() -> None:
    assert Path(kubenova.operator.__file__).resolve().parent == REPO / "operator"
    assert Path(kubenova.agents.__file__).resolve().parent == REPO / "agents"
