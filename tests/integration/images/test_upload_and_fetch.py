"""`kubenova image upload` into MinIO + the API server, then an agent fetching the Image.

The uploaded image is the real test guest (hack/build-test-image.sh): qcow2 disk, kernel
and initramfs, as the compute tests boot it.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from kubenova.agents.compute.overlay import overlay
from kubenova.agents.images import (
    ImageService,
    ImageStoreAccessDenied,
    LocalImage,
    StoreCredentials,
    default_store_from_env,
)
from kubenova.agents.images.fetcher import KernelBoot
from kubenova.agents.images.s3 import S3ImageStore
from kubenova.api.v1alpha1 import Image
from kubenova.cli.main import cli
from kubenova.devcluster import ClusterAccess
from kubenova.devcluster.objectstore import ObjectStoreAccess
from kubenova.errors import NotFoundError
from kubenova.kube import KubeClient, kubenova_kind, load_config
from kubenova.kube.paths import SECRETS
from tests.fixtures.test_image import GuestImage

pytestmark = [pytest.mark.s3, pytest.mark.apiserver]

GIB = 1024**3


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass(frozen=True)
class Setup:
    """The servers, a bucket that does not exist yet (the upload creates it), a fresh name."""

    apiserver: ClusterAccess
    s3: ObjectStoreAccess
    bucket: str
    name: str


@pytest.fixture
def setup(
    apiserver: ClusterAccess, crds_installed: list[str], s3: ObjectStoreAccess
) -> Iterator[Setup]:
    bucket = f"upload-{uuid.uuid4().hex[:12]}"
    yield Setup(apiserver, s3, bucket, f"guest-{uuid.uuid4().hex[:8]}")
    if s3.client.bucket_exists(bucket):
        for item in s3.client.list_objects(bucket, recursive=True):
            s3.client.remove_object(bucket, item.object_name)
        s3.client.remove_bucket(bucket)


def upload(apiserver: ClusterAccess, store_env: dict[str, str], file: Path, *args: str) -> Result:
    env = {**store_env, "KUBECONFIG": str(apiserver.kubeconfig)}
    return CliRunner().invoke(cli, ["image", "upload", str(file), *args], env=env)


def get_image(apiserver: ClusterAccess, name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(
        apiserver.kubectl(
            "get", "images.kubenova.io", name, "-o", "json", "--show-managed-fields"
        ).stdout
    )
    return document


def guest_upload_args(test_image: GuestImage, name: str, bucket: str) -> list[str]:
    return [
        "--name",
        name,
        "--bucket",
        bucket,
        "--kernel",
        str(test_image.kernel),
        "--initrd",
        str(test_image.initrd),
        "--cmdline",
        test_image.cmdline,
    ]


def test_upload_creates_the_objects_and_the_image(setup: Setup, test_image: GuestImage) -> None:
    apiserver, s3, bucket, image_name = setup.apiserver, setup.s3, setup.bucket, setup.name
    result = upload(
        apiserver,
        s3.env(),
        test_image.disk_qcow2,
        *guest_upload_args(test_image, image_name, bucket),
    )

    assert result.exit_code == 0, result.output
    assert f"image.kubenova.io/{image_name} applied" in result.output
    image = get_image(apiserver, image_name)
    disk_sha256 = sha256_of(test_image.disk_qcow2)
    assert image["spec"]["sha256"] == disk_sha256
    assert image["spec"]["format"] == "qcow2"
    assert image["spec"]["source"] == {"bucket": bucket, "key": f"{image_name}/disk.qcow2"}
    assert image["spec"]["boot"]["cmdline"] == test_image.cmdline
    managers = {(m["manager"], m["operation"]) for m in image["metadata"]["managedFields"]}
    assert ("kubenova-cli", "Apply") in managers
    disk_size = test_image.disk_qcow2.stat().st_size
    assert image["status"] == {
        "phase": "Available",
        "sizeBytes": disk_size,
        "observedGeneration": 1,
    }
    # The printer columns read those fields: what `kubectl get images` shows.
    row = apiserver.kubectl("get", "images.kubenova.io", image_name, "--no-headers").stdout
    assert row.split()[:4] == [image_name, "Available", "qcow2", str(disk_size)]
    for path, key in (
        (test_image.disk_qcow2, image["spec"]["source"]["key"]),
        (test_image.kernel, image["spec"]["boot"]["kernel"]["key"]),
        (test_image.initrd, image["spec"]["boot"]["initrd"]["key"]),
    ):
        stat = s3.client.stat_object(bucket, key)
        assert stat.size == path.stat().st_size
        assert stat.metadata["x-amz-meta-sha256"] == sha256_of(path)

    again = upload(
        apiserver,
        s3.env(),
        test_image.disk_qcow2,
        *guest_upload_args(test_image, image_name, bucket),
    )

    assert again.exit_code == 0, again.output
    assert again.output.count("is in the store already") == 3
    assert get_image(apiserver, image_name)["metadata"]["generation"] == 1


def test_upload_refuses_to_change_an_existing_image(setup: Setup, test_image: GuestImage) -> None:
    apiserver, s3, bucket, image_name = setup.apiserver, setup.s3, setup.bucket, setup.name
    first = upload(
        apiserver, s3.env(), test_image.disk_qcow2, "--name", image_name, "--bucket", bucket
    )
    assert first.exit_code == 0, first.output

    second = upload(
        apiserver, s3.env(), test_image.disk_raw, "--name", image_name, "--bucket", bucket
    )

    assert second.exit_code == 1
    assert "immutable" in second.output
    # Refused before uploading anything.
    objects = [item.object_name for item in s3.client.list_objects(bucket, recursive=True)]
    assert objects == [f"{image_name}/disk.qcow2"]


def test_upload_with_a_wrong_secret_key_is_refused(setup: Setup, test_image: GuestImage) -> None:
    apiserver, s3, bucket, image_name = setup.apiserver, setup.s3, setup.bucket, setup.name
    env = {**s3.env(), "KUBENOVA_S3_SECRET_KEY": "not-the-secret-key"}

    result = upload(apiserver, env, test_image.disk_raw, "--name", image_name, "--bucket", bucket)

    assert result.exit_code == 1
    assert "refused the credentials (SignatureDoesNotMatch" in result.output
    assert "KUBENOVA_S3_SECRET_KEY" in result.output


async def create_secret(apiserver: ClusterAccess, name: str, data: dict[str, str]) -> None:
    body = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": "default"},
        "data": {key: base64.b64encode(value.encode()).decode() for key, value in data.items()},
    }
    async with KubeClient(load_config(apiserver.kubeconfig)) as client:
        await client.create(SECRETS, body, "default")


def fetch_as_agent(
    apiserver: ClusterAccess, name: str, cache_dir: Path, default: StoreCredentials | None
) -> LocalImage:
    """What the agent does: read the Image and its Secrets, then download in a thread."""

    async def scenario() -> LocalImage:
        async with KubeClient(load_config(apiserver.kubeconfig)) as client:
            image = Image.model_validate(await client.get(kubenova_kind(Image), name))
            service = ImageService(client, S3ImageStore(cache_dir), default)
            return await service.fetch(name, image)

    return asyncio.run(scenario())


def test_agent_fetches_an_uploaded_image_with_its_secret_and_makes_an_overlay(
    setup: Setup, test_image: GuestImage, tmp_path: Path
) -> None:
    apiserver, s3, bucket, image_name = setup.apiserver, setup.s3, setup.bucket, setup.name
    qemu_img = shutil.which("qemu-img")
    if qemu_img is None:
        pytest.fail("qemu-img not found: install qemu-utils (hack/apt-packages.txt)")
    secret = f"{image_name}-store"
    asyncio.run(
        create_secret(
            apiserver,
            secret,
            {"accessKey": s3.access_key, "secretKey": s3.secret_key, "endpoint": s3.url},
        )
    )
    args = guest_upload_args(test_image, image_name, bucket)
    result = upload(
        apiserver,
        s3.env(),
        test_image.disk_qcow2,
        *args,
        "--credentials-secret",
        f"default/{secret}",
    )
    assert result.exit_code == 0, result.output

    # No default store on this agent: only the Secret named in the Image can work.
    local = fetch_as_agent(apiserver, image_name, tmp_path / "images", default=None)

    assert local.disk == tmp_path / "images" / f"{sha256_of(test_image.disk_qcow2)}.qcow2"
    assert local.disk.read_bytes() == test_image.disk_qcow2.read_bytes()
    assert local.kernel is not None
    assert local.kernel.read_bytes() == test_image.kernel.read_bytes()
    assert local.initrd is not None
    assert local.initrd.read_bytes() == test_image.initrd.read_bytes()
    assert (local.format, local.cmdline) == ("qcow2", test_image.cmdline)
    assert local.kernel_boot == KernelBoot(local.kernel, local.initrd, test_image.cmdline)

    disk = overlay(local.disk, tmp_path / "instance" / "disk.qcow2", 2)

    info = json.loads(
        subprocess.run(
            [qemu_img, "info", "--output=json", str(disk)], capture_output=True, check=True
        ).stdout
    )
    assert info["format"] == "qcow2"
    assert info["backing-filename"] == str(local.disk)
    assert info["backing-filename-format"] == "qcow2"
    assert info["virtual-size"] == 2 * GIB
    assert local.disk.read_bytes() == test_image.disk_qcow2.read_bytes()  # base untouched


def test_agent_reports_wrong_and_missing_secrets(
    setup: Setup, test_image: GuestImage, tmp_path: Path
) -> None:
    apiserver, s3, bucket, image_name = setup.apiserver, setup.s3, setup.bucket, setup.name
    wrong, missing = f"{image_name}-wrong", f"{image_name}-missing"
    asyncio.run(
        create_secret(
            apiserver,
            wrong,
            {"accessKey": s3.access_key, "secretKey": "not-the-secret-key", "endpoint": s3.url},
        )
    )
    default = default_store_from_env(s3.env())
    for name, secret in ((image_name, wrong), (f"{image_name}-b", missing)):
        result = upload(
            apiserver,
            s3.env(),
            test_image.disk_raw,
            "--name",
            name,
            "--bucket",
            bucket,
            "--credentials-secret",
            f"default/{secret}",
        )
        assert result.exit_code == 0, result.output

    with pytest.raises(ImageStoreAccessDenied) as refused:
        fetch_as_agent(apiserver, image_name, tmp_path / "images", default)
    assert f"Secret default/{wrong}" in refused.value.message
    assert "SignatureDoesNotMatch" in refused.value.message

    with pytest.raises(NotFoundError) as absent:
        fetch_as_agent(apiserver, f"{image_name}-b", tmp_path / "images", default)
    assert absent.value.reason == "ImageStoreSecretNotFound"
    assert f"Secret default/{missing}" in absent.value.message
