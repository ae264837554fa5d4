"""Tenant data and secrets on a host are born owner-only: 0600 files in 0700 directories.

Volume backing files, root-disk overlays, NoCloud seeds (user-data) and the dev cloud's
keys are made under umask 0 here, the loosest an agent could be started with: what comes
out is still 0600/0700, because each file is created with its mode (or by a tool under
umask 077) rather than fixed up after. A user's client key is deleted once it sits inside
its 0600 kubeconfig.
"""

from __future__ import annotations

import base64
import os
import stat
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from kubenova.agents.compute.instance_files import InstanceFiles
from kubenova.agents.compute.overlay import overlay
from kubenova.agents.compute.spec import CloudInitSeed, DiskFormat, DomainSpec, RootDisk
from kubenova.agents.volume.backing import BackingStore
from kubenova.devcluster import ClusterAccess
from kubenova.devcluster.pki import ControlPlanePKI

MIB = 1 << 20


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def loosest_umask() -> Iterator[None]:
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.fixture
def base_image(tmp_path: Path) -> Path:
    base = tmp_path / "images" / "base.raw"
    base.parent.mkdir()
    subprocess.run(["qemu-img", "create", "-q", "-f", "raw", str(base), "8M"], check=True)
    return base


def test_volume_backing_files_are_0600_in_a_0700_directory(
    tmp_path: Path, base_image: Path
) -> None:
    store = BackingStore(tmp_path / "volumes")
    empty = store.create(str(uuid.uuid4()), 4 * MIB)
    from_image = store.create(str(uuid.uuid4()), 16 * MIB, source=base_image)
    assert mode(store.directory) == 0o700
    assert mode(empty) == 0o600
    assert mode(from_image) == 0o600
    assert from_image.stat().st_size == 16 * MIB  # still a real, usable volume file


def test_an_existing_wide_volume_directory_is_narrowed_before_use(tmp_path: Path) -> None:
    directory = tmp_path / "volumes"
    directory.mkdir(mode=0o755)
    BackingStore(directory).create(str(uuid.uuid4()), MIB)
    assert mode(directory) == 0o700


def test_instance_overlay_and_seed_are_0600_in_a_0700_directory(
    tmp_path: Path, base_image: Path
) -> None:
    secret = f"password: {uuid.uuid4().hex}"
    files = InstanceFiles(tmp_path / "instances")
    spec = DomainSpec(
        uid=str(uuid.uuid4()),
        namespace="alpha",
        name="vm",
        vcpus=1,
        memory_mib=96,
        root_disk=RootDisk(base_image, DiskFormat.RAW),
        seed=CloudInitSeed("i-1", "vm", user_data=f"#cloud-config\n{secret}\n"),
    )
    prepared = files.prepare(spec)
    assert prepared.root_overlay is not None
    assert prepared.seed_image is not None
    assert mode(files.directory(spec.uid)) == 0o700
    assert mode(prepared.root_overlay) == 0o600
    assert mode(prepared.seed_image) == 0o600
    assert secret.encode() in prepared.seed_image.read_bytes()  # the seed really holds it
    assert not list(files.directory(spec.uid).glob(".seed-*"))


def test_image_overlays_are_0600_in_a_0700_directory(tmp_path: Path, base_image: Path) -> None:
    made = overlay(base_image, tmp_path / "overlays" / "disk.qcow2")
    assert mode(made.parent) == 0o700
    assert mode(made) == 0o600


def test_dev_cloud_keys_are_0600_and_a_users_key_lives_only_in_its_kubeconfig(
    tmp_path: Path,
) -> None:
    pki = ControlPlanePKI(tmp_path / "pki").ensure()
    assert mode(pki.directory) == 0o700
    keys = [pki.serving.key, pki.service_account.key, pki.token_file, *pki.directory.glob("*.key")]
    assert all(mode(key) == 0o600 for key in keys), {str(k): oct(mode(k)) for k in keys}

    access = ClusterAccess(
        url="https://127.0.0.1:6443",
        kubeconfig=tmp_path / "kube" / "admin.kubeconfig",
        ca_file=pki.serving_ca,
        kubectl_binary=Path("kubectl"),
        pki=pki,
    )
    kubeconfig = access.user_kubeconfig("bob", groups=("kubenova:tenants",))
    assert mode(kubeconfig) == 0o600
    assert mode(pki.directory / "users") == 0o700
    assert not list((pki.directory / "users").glob("*.key"))  # removed once embedded
    user = yaml.safe_load(kubeconfig.read_text())["users"][0]["user"]
    key = serialization.load_pem_private_key(
        base64.b64decode(user["client-key-data"]), password=None
    )
    cert = x509.load_pem_x509_certificate(base64.b64decode(user["client-certificate-data"]))
    assert key.public_key() == cert.public_key()  # the kubeconfig still authenticates
