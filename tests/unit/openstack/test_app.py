"""The HTTP face without a cluster: discovery is public, everything else wants a scoped
token, and errors come in each service's own shape."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from kubenova.kube import ConnectionConfig, KubeClient
from kubenova.openstack.app import build_app
from kubenova.openstack.cache import WatchCache
from kubenova.openstack.cloud import Cloud
from kubenova.openstack.tokens import TokenIssuer
from kubenova.operator.auth import Member, Role, UserInfo


class NoBackend:
    """Nobody's password is right (the app must answer 401 before asking anything else)."""

    name = "none"

    def members(self, project: str) -> frozenset[Any]:
        return frozenset()

    def user(self, name: str) -> UserInfo | None:
        return None

    def authenticate(self, name: str, password: str) -> UserInfo | None:
        return None

    def close(self) -> None:
        pass


class Directory(NoBackend):
    """alice, a member of alpha, until she is disabled."""

    def __init__(self) -> None:
        self.enabled = True

    def members(self, project: str) -> frozenset[Any]:
        return frozenset({Member("alice", Role.MEMBER)}) if self.enabled else frozenset()

    def user(self, name: str) -> UserInfo | None:
        return UserInfo(name) if self.enabled and name == "alice" else None


def with_app(
    check: Callable[[TestClient[Any, Any], TokenIssuer], Awaitable[None]],
    backend: NoBackend | None = None,
) -> None:
    async def run() -> None:
        # Never connected: nothing here may reach an apiserver.
        client = KubeClient(ConnectionConfig(server="https://127.0.0.1:9"))
        issuer = TokenIssuer()
        cloud = Cloud(issuer, WatchCache(client), client, backend or NoBackend())
        async with TestClient(TestServer(build_app(cloud))) as http:
            await check(http, issuer)
        await client.close()

    asyncio.run(run())


def test_discovery_documents_are_public_at_every_root() -> None:
    async def check(http: TestClient[Any, Any], _: TokenIssuer) -> None:
        compute = await (await http.get("/compute/v2.1")).json()
        assert compute["version"]["version"] == "2.79"
        assert compute["version"]["min_version"] == "2.1"
        identity = await http.get("/identity")
        assert identity.status == 300
        assert (await identity.json())["versions"]["values"][0]["id"] == "v3.14"
        for root in ("/image", "/volume", "/network", "/compute", "/identity/v3"):
            assert (await http.get(root)).status == 200, root

    with_app(check)


def test_no_token_or_a_wrong_password_is_401_in_each_services_shape() -> None:
    async def check(http: TestClient[Any, Any], _: TokenIssuer) -> None:
        servers = await http.get("/compute/v2.1/servers")
        assert servers.status == 401
        assert (await servers.json())["unauthorized"]["code"] == 401
        networks = await http.get("/network/v2.0/networks")
        assert (await networks.json())["NeutronError"]["type"] == "NotAuthorized"
        login = {"auth": {"identity": {"methods": ["password"],
                 "password": {"user": {"name": "alice", "password": "nope"}}}}}  # fmt: skip
        refused = await http.post("/identity/v3/auth/tokens", json=login)
        assert refused.status == 401
        assert (await refused.json())["error"]["title"] == "Unauthorized"
        system = {"auth": {"identity": {"methods": ["password"],
                  "password": {"user": {"name": "system:admin", "password": "x"}}}}}  # fmt: skip
        assert (await http.post("/identity/v3/auth/tokens", json=system)).status == 401

    with_app(check)


def test_an_unscoped_token_reaches_identity_only() -> None:
    async def check(http: TestClient[Any, Any], issuer: TokenIssuer) -> None:
        text = issuer.encode(issuer.issue("alice", "", "", ()))
        answer = await http.get("/compute/v2.1/servers", headers={"X-Auth-Token": text})
        assert answer.status == 401
        assert "project-scoped" in (await answer.json())["unauthorized"]["message"]

    with_app(check)


def test_a_microversion_beyond_279_is_406() -> None:
    async def check(http: TestClient[Any, Any], issuer: TokenIssuer) -> None:
        text = issuer.encode(issuer.issue("alice", "alpha", "alpha", ("member",)))
        headers = {"X-Auth-Token": text, "OpenStack-API-Version": "compute 2.90"}
        answer = await http.get("/compute/v2.1/servers", headers=headers)
        assert answer.status == 406
        assert (await answer.json())["notAcceptable"]["code"] == 406

    with_app(check, Directory())


def test_a_disabled_user_loses_every_token_at_the_next_recheck() -> None:
    async def run() -> None:
        client = KubeClient(ConnectionConfig(server="https://127.0.0.1:9"))
        issuer, directory = TokenIssuer(), Directory()
        cloud = Cloud(issuer, WatchCache(client), client, directory, recheck_interval=0.0)
        one = issuer.encode(issuer.issue("alice", "alpha", "alpha", ("member",)))
        two = issuer.encode(issuer.issue("alice", "alpha", "alpha", ("member",)))
        async with TestClient(TestServer(build_app(cloud))) as http:
            assert (
                await http.get("/identity/v3/projects", headers={"X-Auth-Token": one})
            ).status == 200
            directory.enabled = False
            assert (
                await http.get("/identity/v3/projects", headers={"X-Auth-Token": one})
            ).status == 401
            directory.enabled = True  # enabled again: the old tokens stay void
            assert (
                await http.get("/identity/v3/projects", headers={"X-Auth-Token": two})
            ).status == 401
        await client.close()

    asyncio.run(run())
