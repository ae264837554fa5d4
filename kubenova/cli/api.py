"""`kubenova api`: the OpenStack-compatible API (Identity, Compute, Image, Block Storage,
Network) over the cluster's resources, one async process."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click
import yaml

from kubenova.agents.images.credentials import ACCESS_KEY_ENV, ENDPOINT_ENV, SECRET_KEY_ENV
from kubenova.agents.images.ref import StoreCredentials
from kubenova.cli.db import url_option
from kubenova.cli.image import DEFAULT_BUCKET
from kubenova.devcluster import ClusterAccess, ControlPlaneError
from kubenova.devcluster.processes import (
    ProcessSpec,
    launch,
    live_pid,
    log_tail,
    stop_recorded,
)
from kubenova.errors import UserError

if TYPE_CHECKING:
    from sqlalchemy import Engine


DEFAULT_IMAGE_LIMIT = 20 * 1024**3  # bytes; an image larger than this is refused with 413


@click.command("api")
@click.option("--kubeconfig", envvar="KUBECONFIG", default=None, help="kubeconfig file.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8774, show_default=True, type=int, help="Port (0: any free one).")
@click.option(
    "--public-url",
    default=None,
    help="Base URL clients reach this API at (for the catalog); default: the request's Host.",
)
@click.option(
    "--auth-config",
    default=None,
    type=click.Path(exists=True, dir_okay=False),
    help="YAML file choosing the auth backend (database or ldap); default: the database.",
)
@click.option(
    "--token-key-file",
    default=None,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Fernet key file (made when missing); without it a key per process: tokens die with it.",
)
@click.option("--token-lifetime", default=3600.0, show_default=True, help="Seconds a token lives.")
@click.option(
    "--port-file",
    default=None,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the bound port here once serving (for --port 0).",
)
@click.option(
    "--s3-endpoint",
    envvar=ENDPOINT_ENV,
    show_envvar=True,
    default=None,
    help="Object store for image uploads, http(s)://host:port (the hosts' default store); "
    "without it uploads are refused.",
)
@click.option("--s3-access-key", envvar=ACCESS_KEY_ENV, show_envvar=True, default=None)
@click.option("--s3-secret-key", envvar=SECRET_KEY_ENV, show_envvar=True, default=None)
@click.option(
    "--image-bucket", default=DEFAULT_BUCKET, show_default=True, help="Bucket uploads go to."
)
@click.option(
    "--image-size-limit",
    default=DEFAULT_IMAGE_LIMIT,
    show_default=True,
    type=click.IntRange(min=1),
    help="Largest image upload in bytes (413 above).",
)
@url_option
def api(  # noqa: PLR0917 - click passes options positionally
    kubeconfig: str | None,
    host: str,
    port: int,
    public_url: str | None,
    auth_config: str | None,
    token_key_file: Path | None,
    token_lifetime: float,
    port_file: Path | None,
    s3_endpoint: str | None,
    s3_access_key: str | None,
    s3_secret_key: str | None,
    image_bucket: str,
    image_size_limit: int,
    url: str | None,
) -> None:
    """Serve the OpenStack APIs: every request reaches the apiserver as its user."""
    # Imported here: `kubenova --help` must not load the operator's auth manager.
    from kubenova.kube import KubeClient, load_config  # noqa: PLC0415
    from kubenova.openstack.app import serve  # noqa: PLC0415
    from kubenova.openstack.tokens import TokenIssuer  # noqa: PLC0415
    from kubenova.openstack.upload import UploadStore  # noqa: PLC0415
    from kubenova.operator import inventory as inv  # noqa: PLC0415
    from kubenova.operator.auth import build_backend, load_auth_config  # noqa: PLC0415

    store = None
    if s3_endpoint:
        if not (s3_access_key and s3_secret_key):
            raise click.UsageError(f"--s3-endpoint needs {ACCESS_KEY_ENV} and {SECRET_KEY_ENV}")
        try:
            found = StoreCredentials.from_endpoint(
                s3_endpoint, s3_access_key, s3_secret_key, origin="--s3-endpoint"
            )
        except UserError as error:
            raise click.BadParameter(error.message, param_hint="--s3-endpoint") from error
        store = UploadStore(found.endpoint, found.access_key, found.secret_key, found.secure,
                            image_bucket, image_size_limit)  # fmt: skip
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    key = None
    if token_key_file is not None:
        if not token_key_file.exists():
            token_key_file.write_bytes(TokenIssuer.new_key())
            token_key_file.chmod(0o600)
        key = token_key_file.read_bytes().strip()
    issuer = TokenIssuer(key, lifetime=token_lifetime)
    settings = load_auth_config(auth_config)
    engine = inv.make_engine(url)
    backend = build_backend(settings, engine)

    def ready(bound: int) -> None:
        if port_file is not None:
            port_file.write_text(f"{bound}\n")

    async def run() -> None:
        async with KubeClient(load_config(kubeconfig), user_agent="kubenova-api") as client:
            await serve(
                client, backend, issuer, host=host, port=port, public_url=public_url,
                ready=ready, store=store,
            )  # fmt: skip

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass
    finally:
        backend.close()
        engine.dispose()


# -- the dev cloud (`kubenova dev up` / `down`) ----------------------------------------------

DEV_CLOUD = "kubenova-dev"
DEV_PROJECT = "dev"
DEV_USER = "dev"


def _dev_spec(state_dir: Path, argv: tuple[str, ...] = ()) -> ProcessSpec:
    return ProcessSpec(
        "openstack-api",
        argv,
        state_dir / "logs" / "openstack-api.log",
        state_dir / "openstack-api.pid",
    )


def _dev_password(engine: Engine, state_dir: Path) -> str:
    """The dev user's password (made once, kept in the state dir, mode 0600)."""
    from kubenova.operator.auth import Role  # noqa: PLC0415
    from kubenova.operator.auth import db as auth_db  # noqa: PLC0415

    stored = state_dir / "openstack-password"
    if stored.exists():
        return stored.read_text().strip()
    password = secrets.token_urlsafe(18)
    if DEV_USER not in {u.name for u in auth_db.list_users(engine)}:
        auth_db.create_user(engine, DEV_USER, password=password)
    else:
        auth_db.set_password(engine, DEV_USER, password)
    if DEV_PROJECT not in {p.name for p in auth_db.list_projects(engine)}:
        auth_db.create_project(engine, DEV_PROJECT, description="the dev cloud's project")
    auth_db.grant(engine, DEV_USER, DEV_PROJECT, Role.ADMIN)
    stored.write_text(f"{password}\n")
    stored.chmod(0o600)
    return password


def _dev_port(state_dir: Path) -> int:
    """$KUBENOVA_DEV_OPENSTACK_PORT, else a free port chosen on the first `up` and kept (the
    clouds.yaml names it; a fixed default would collide between dev clouds)."""
    if "KUBENOVA_DEV_OPENSTACK_PORT" in os.environ:
        return int(os.environ["KUBENOVA_DEV_OPENSTACK_PORT"])
    stored = state_dir / "openstack-api.port"
    if stored.exists():
        return int(stored.read_text())
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    stored.write_text(f"{port}\n")
    return port


def start_dev_api(
    access: ClusterAccess, state_dir: Path, database_url: str, progress: Callable[[str], None]
) -> Path:
    """Run `kubenova api` for the dev cloud (user dev, admin of Project dev) and write a
    clouds.yaml beside the kubeconfig; its path."""
    from kubenova.operator import inventory as inv  # noqa: PLC0415

    port = _dev_port(state_dir)
    engine = inv.make_engine(database_url)
    try:
        password = _dev_password(engine, state_dir)
    finally:
        engine.dispose()
    project = {"apiVersion": "kubenova.io/v1alpha1", "kind": "Project",
               "metadata": {"name": DEV_PROJECT}, "spec": {}}  # fmt: skip
    access.kubectl("apply", "-f", "-", input=json.dumps(project))
    spec = _dev_spec(
        state_dir,
        (
            sys.executable, "-m", "kubenova.cli", "api",
            f"--kubeconfig={access.kubeconfig}", f"--url={database_url}", f"--port={port}",
            f"--token-key-file={state_dir / 'openstack-token.key'}",
        ),
    )  # fmt: skip
    if live_pid(spec) is None:
        progress(f"openstack-api: starting on 127.0.0.1:{port} (log {spec.log})")
        process = launch(spec, detached=True)
        time.sleep(0.5)
        if process.poll() is not None:
            raise ControlPlaneError(f"openstack-api exited at once:\n{log_tail(spec.log)}")
    else:
        progress("openstack-api: running")
    clouds = access.kubeconfig.parent / "clouds.yaml"
    cloud = {
        "auth": {
            "auth_url": f"http://127.0.0.1:{port}/identity",
            "username": DEV_USER,
            "password": password,
            "project_name": DEV_PROJECT,
            "user_domain_name": "Default",
            "project_domain_name": "Default",
        },
        "region_name": "RegionOne",
        "identity_api_version": 3,
    }
    clouds.write_text(yaml.safe_dump({"clouds": {DEV_CLOUD: cloud}}, sort_keys=False))
    clouds.chmod(0o600)
    progress(f"export OS_CLIENT_CONFIG_FILE={clouds} OS_CLOUD={DEV_CLOUD}")
    return clouds


def stop_dev_api(state_dir: Path) -> list[str]:
    return ["openstack-api"] if stop_recorded(_dev_spec(state_dir), timeout=20) else []
