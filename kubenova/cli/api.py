"""`kubenova api`: the OpenStack-compatible API (Identity, Compute, Image, Block Storage,
Network) over the cluster's resources, one async process."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import click

from kubenova.cli.db import url_option


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
    url: str | None,
) -> None:
    """Serve the OpenStack APIs: every request reaches the apiserver as its user."""
    # Imported here: `kubenova --help` must not load the operator's auth manager.
    from kubenova.kube import KubeClient, load_config  # noqa: PLC0415
    from kubenova.openstack.app import serve  # noqa: PLC0415
    from kubenova.openstack.tokens import TokenIssuer  # noqa: PLC0415
    from kubenova.operator import inventory as inv  # noqa: PLC0415
    from kubenova.operator.auth import build_backend, load_auth_config  # noqa: PLC0415

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
                client, backend, issuer, host=host, port=port, public_url=public_url, ready=ready
            )

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass
    finally:
        backend.close()
        engine.dispose()
