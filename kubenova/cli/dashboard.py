"""`kubenova dashboard`: serve the web dashboard (kubenova/dashboard)."""

from __future__ import annotations

import asyncio
import contextlib
import ssl

import click

from kubenova.cli.db import url_option


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8443, show_default=True, type=int, help="Port to listen on.")
@click.option(
    "--kubeconfig",
    default=None,
    help="The dashboard's own identity (default: "
    "$KUBECONFIG, else the pod's ServiceAccount). It may only impersonate.",
)
@click.option(
    "--auth-config",
    default=None,
    help="The auth manager's YAML (as the operator's "
    "--auth-config); default: users in the inventory database.",
)
@url_option
@click.option("--tls-cert", default=None, help="PEM certificate: serve HTTPS (Secure cookies).")
@click.option("--tls-key", default=None, help="PEM key of --tls-cert.")
@click.option(
    "--idle-timeout",
    default=900.0,
    show_default=True,
    help="Seconds of inactivity after which a session ends.",
)
@click.option(
    "--image-bucket",
    default="kubenova-images",
    show_default=True,
    help="Bucket for images uploaded from the browser, in the object store of "
    "KUBENOVA_S3_ENDPOINT/_ACCESS_KEY/_SECRET_KEY (the agents' default store); "
    "without those variables uploads are off.",
)
def dashboard(  # click passes every option by name
    *,
    host: str,
    port: int,
    kubeconfig: str | None,
    auth_config: str | None,
    url: str | None,
    tls_cert: str | None,
    tls_key: str | None,
    idle_timeout: float,
    image_bucket: str,
) -> None:
    """Serve the web dashboard: users log in with the auth manager's password and act as
    themselves on the API (impersonation), so RBAC and the admission webhook decide."""
    from aiohttp import web  # noqa: PLC0415 - the server's stack, on demand

    from kubenova.agents.images.credentials import default_store_from_env  # noqa: PLC0415
    from kubenova.dashboard import Dashboard, ImpersonatingClient, build_app  # noqa: PLC0415
    from kubenova.dashboard.images import ImageStore  # noqa: PLC0415
    from kubenova.dashboard.sessions import SessionStore  # noqa: PLC0415
    from kubenova.kube import KubeClient, load_config  # noqa: PLC0415
    from kubenova.operator import inventory as inv  # noqa: PLC0415
    from kubenova.operator.auth import build_backend, load_auth_config  # noqa: PLC0415

    if bool(tls_cert) != bool(tls_key):
        raise click.UsageError("--tls-cert and --tls-key go together")
    config = load_config(kubeconfig)
    backend = build_backend(load_auth_config(auth_config), inv.make_engine(url))
    store = default_store_from_env()
    image_store = (
        ImageStore(
            store.endpoint,
            store.access_key,
            store.secret_key,
            secure=store.secure,
            region=store.region,
            bucket=image_bucket,
        )
        if store is not None
        else None
    )
    context = None
    if tls_cert and tls_key:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(tls_cert, tls_key)

    async def serve() -> None:
        dash = Dashboard(
            client=ImpersonatingClient(config, user_agent="kubenova-dashboard"),
            own=KubeClient(config, user_agent="kubenova-dashboard"),
            backend=backend,
            sessions=SessionStore(idle_timeout=idle_timeout),
            secure_cookies=context is not None,
            image_store=image_store,
        )
        runner = web.AppRunner(build_app(dash), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, host, port, ssl_context=context).start()
        scheme = "https" if context else "http"
        click.echo(f"dashboard at {scheme}://{host}:{port}/", err=True)
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())
