"""Image upload without a store or a cluster: the queue of uploads, who sees them, and the
refusals made before a byte is read (tests/e2e/test_openstack_cli.py streams real bytes)."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from kubenova.kube import ConnectionConfig, KubeClient
from kubenova.openstack.app import build_app
from kubenova.openstack.cache import WatchCache
from kubenova.openstack.cloud import Cloud
from kubenova.openstack.tokens import TokenIssuer
from kubenova.openstack.upload import QUEUED_PER_USER, UploadStore
from tests.unit.openstack.test_app import Directory


class Rbac(Cloud):
    """RBAC as a set of users who may create Images, instead of a SubjectAccessReview."""

    creators: frozenset[str] = frozenset()

    async def may(self, user: str, verb: str, resource: str) -> bool:
        return (verb, resource) == ("create", "images") and user in self.creators


STORE = UploadStore("127.0.0.1:9", "key", "secret", False, "images", max_bytes=1000)


def run(
    check: Any, store: UploadStore | None = STORE, creators: frozenset[str] = frozenset()
) -> None:
    async def main() -> None:
        client = KubeClient(ConnectionConfig(server="https://127.0.0.1:9"))  # never reached
        issuer = TokenIssuer()
        cloud = Rbac(issuer, WatchCache(client), client, Directory())
        cloud.creators = creators
        headers = {"X-Auth-Token": issuer.encode(issuer.issue("alice", "alpha", "alpha", ()))}
        async with TestClient(TestServer(build_app(cloud, store))) as http:
            await check(http, headers)
        await client.close()

    asyncio.run(main())


ALICE = frozenset({"alice"})
IMAGE = {"name": "tiny", "disk_format": "qcow2", "container_format": "bare"}


def test_a_user_who_may_not_create_images_cannot_queue_one() -> None:
    async def check(http: TestClient[Any, Any], headers: dict[str, str]) -> None:
        refused = await http.post("/image/v2/images", json=IMAGE, headers=headers)
        assert refused.status == 403
        body = await refused.json()
        assert body["message"].startswith("You are not authorized to create images")
        listed = await (await http.get("/image/v2/images", headers=headers)).json()
        assert listed["images"] == []

    run(check)


def test_a_queued_upload_is_listed_shown_and_deleted_by_its_owner() -> None:
    async def check(http: TestClient[Any, Any], headers: dict[str, str]) -> None:
        made = await http.post("/image/v2/images", json=IMAGE, headers=headers)
        assert made.status == 201
        image = await made.json()
        assert (image["status"], image["disk_format"], image["os_hash_value"]) == (
            "queued", "qcow2", None,
        )  # fmt: skip
        shown = await (await http.get(f"/image/v2/images/{image['id']}", headers=headers)).json()
        assert shown["name"] == "tiny"
        again = await http.post("/image/v2/images", json=IMAGE, headers=headers)
        assert again.status == 409  # a name is an Image's identity
        gone = await http.delete(f"/image/v2/images/{image['id']}", headers=headers)
        assert gone.status == 204
        missing = await http.get(f"/image/v2/images/{image['id']}", headers=headers)
        assert missing.status == 404

    run(check, creators=ALICE)


def test_bad_requests_are_refused_with_what_to_change() -> None:
    async def check(http: TestClient[Any, Any], headers: dict[str, str]) -> None:
        for wrong, words in (
            ({"name": "Tiny Image"}, "a Kubernetes name is needed"),
            ({"name": "x", "disk_format": "vmdk"}, "kubenova boots qcow2 and raw"),
            ({"name": "x", "container_format": "ovf"}, "only bare"),
            ({"name": "x", "min_ram": -1}, "a whole number >= 0"),
        ):
            answer = await http.post("/image/v2/images", json=wrong, headers=headers)
            assert answer.status == 400, wrong
            assert words in (await answer.json())["message"]
        for n in range(QUEUED_PER_USER):
            made = await http.post("/image/v2/images", json={"name": f"q{n}"}, headers=headers)
            assert made.status == 201
        over = await http.post("/image/v2/images", json={"name": "one-more"}, headers=headers)
        assert over.status == 413

    run(check, creators=ALICE)


def test_data_is_refused_before_a_byte_is_read_when_it_cannot_be_kept() -> None:
    async def check(http: TestClient[Any, Any], headers: dict[str, str]) -> None:
        image = await (await http.post("/image/v2/images", json=IMAGE, headers=headers)).json()
        put = f"/image/v2/images/{image['id']}/file"
        octets = headers | {"Content-Type": "application/octet-stream"}
        too_big = await http.put(put, data=b"QFI\xfb" + b"\0" * 2000, headers=octets)
        assert too_big.status == 413
        message = (await too_big.json())["message"]
        assert "Image exceeds the size limit: 2004 > 1000 bytes" in message
        nobody = await http.put("/image/v2/images/no-such-id/file", data=b"x", headers=octets)
        assert nobody.status == 404
        no_format = await (await http.post("/image/v2/images", json={"name": "bare"},
                                           headers=headers)).json()  # fmt: skip
        unset = await http.put(
            f"/image/v2/images/{no_format['id']}/file", data=b"x", headers=octets
        )
        assert unset.status == 400
        assert "disk_format" in (await unset.json())["message"]

    run(check, creators=ALICE)


def test_without_an_object_store_uploads_are_refused_saying_what_is_missing() -> None:
    async def check(http: TestClient[Any, Any], headers: dict[str, str]) -> None:
        image = await (await http.post("/image/v2/images", json=IMAGE, headers=headers)).json()
        answer = await http.put(f"/image/v2/images/{image['id']}/file", data=b"QFI\xfb",
                                headers=headers)  # fmt: skip
        assert answer.status == 503
        assert "KUBENOVA_S3_ENDPOINT" in (await answer.json())["message"]

    run(check, store=None, creators=ALICE)


def test_the_largest_image_fits_s3s_ten_thousand_parts_in_the_smallest_part() -> None:
    for limit in (1, 20 * 1024**3, 100 * 1024**3, 5 * 1024**4):
        part = UploadStore("h:1", "a", "s", False, "b", max_bytes=limit).part_size
        assert part >= 8 * 1024 * 1024
        assert -(-limit // part) < 10_000
    assert UploadStore("h:1", "a", "s", False, "b", max_bytes=20 * 1024**3).part_size == 8 * 1024**2
