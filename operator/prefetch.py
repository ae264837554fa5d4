"""The first lists a placement waits for, read while the operator still imports.

Python takes ~0.5 s to import the operator (kopf, SQLAlchemy, the API models); the lists it
places nothing without (1,000 Hosts and their Leases, 2,000 Instances) take the apiserver
another ~0.25 s. Started from threads as soon as the command line is read, with the
standard library's HTTP client, they arrive while the imports run. A watch then starts from
its prefetched list, and from that list's resourceVersion, instead of listing again
(`ListWatch.prefetched`): the informer's contract is unchanged, whatever changed since comes
as watch events. Each list is taken once, by the watch of exactly its path; one that failed,
or that no watch took within FRESH_FOR seconds (a standby's Instances), is dropped and the
watch lists for itself.
"""

from __future__ import annotations

import http.client
import logging
import ssl
import threading
from concurrent.futures import Future
from typing import TYPE_CHECKING
from urllib.parse import urlencode, urlsplit

import orjson

from kubenova.api.group import GROUP, VERSION
from kubenova.kube.config import ConnectionConfig, load_config
from kubenova.kube.meta import Body, slim
from kubenova.kube.paths import LEASES, LIST_PAGE, ResourceKind

if TYPE_CHECKING:  # the watch kit needs the async client (aiohttp, ~0.1 s): not the lists
    from kubenova.kube.watch import ListWatch, Transform

log = logging.getLogger(__name__)

# What the placement waits for: the runtime's Host, host-Lease and Instance watches list
# exactly these (a unit test holds them to the watches' own paths).
HOSTS = ResourceKind(GROUP, VERSION, "hosts", False, "Host")
INSTANCES = ResourceKind(GROUP, VERSION, "instances", True, "Instance")
# And the catalog kinds other domains file, whose list the placement waits to see filed.
NETWORKS = ResourceKind(GROUP, VERSION, "networks", True, "Network")
VOLUMES = ResourceKind(GROUP, VERSION, "volumes", True, "Volume")
# Seconds a prefetched list is kept for its watch: a standby leads much later, and a list
# that old would be stale (and its resourceVersion perhaps compacted away).
FRESH_FOR = 10.0
TIMEOUT = 10.0

Pages = list[Body]


class Prefetch:
    """Lists being read by threads, each taken at most once by the watch of its path."""

    def __init__(self) -> None:
        self._lists: dict[str, Future[Pages]] = {}
        self._lock = threading.Lock()

    @classmethod
    def start(cls, kubeconfig: str | None, namespace: str) -> Prefetch:
        """Start reading the Hosts, the host Leases (in `namespace`) and the Instances.
        Never raises: without a usable kubeconfig nothing is prefetched (the operator then
        says what is wrong with it, as it did before)."""
        prefetch = cls()
        try:
            connection = load_config(kubeconfig)
        except Exception as exc:
            log.debug("nothing prefetched: %s", exc)
            return prefetch
        for path, transform in _lists(namespace):
            prefetch.read(connection, path, transform)
        return prefetch

    def read(self, connection: ConnectionConfig, path: str, transform: Transform) -> None:
        """Read every page of `path` in a thread of its own, each item `transform`ed."""
        listing: Future[Pages] = Future()
        with self._lock:
            self._lists[path] = listing

        def run() -> None:
            try:
                listing.set_result(_pages(connection, path, transform))
            except Exception as exc:
                listing.set_exception(exc)

        threading.Thread(target=run, name=f"prefetch {path}", daemon=True).start()

    def take(self, path: str) -> Future[Pages] | None:
        """The list of `path`, if one is being read; None after it was taken once."""
        with self._lock:
            return self._lists.pop(path, None)

    def hand_to(self, watch: ListWatch) -> None:
        """Give `watch` the list of exactly its path, if one was read (a selector never
        matches: only whole lists are prefetched)."""
        if not (watch.label_selector or watch.field_selector):
            watch.prefetched = self.take(watch.kind.path(watch.namespace))

    def drop(self) -> None:
        """Forget whatever no watch took."""
        with self._lock:
            self._lists.clear()


def paths(namespace: str) -> list[str]:
    """What is prefetched: all Hosts, the host Leases in `namespace`, all Instances, all
    Networks and Volumes."""
    return [path for path, _ in _lists(namespace)]


def _lists(namespace: str) -> list[tuple[str, Transform]]:
    # Slimmed as each page comes (managedFields are most of a body), as the watches that
    # take them do: 10,000 Instances are never all held whole. Leases are small and kept
    # as their watch keeps them.
    return [
        (HOSTS.path(), slim),
        (LEASES.path(namespace), _keep),
        (INSTANCES.path(), slim),
        (NETWORKS.path(), slim),
        (VOLUMES.path(), slim),
    ]


def _keep(body: Body) -> Body:
    return body


def _pages(connection: ConnectionConfig, path: str, transform: Transform) -> Pages:
    """Every page of one list, as the kit's `list_pages` asks for them (a limit: served
    from etcd while the apiserver's watch cache of the kind still initialises)."""
    url = urlsplit(connection.server)
    context = connection.ssl_context()
    if url.scheme == "https":
        if not isinstance(context, ssl.SSLContext):  # insecure-skip-tls-verify
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            url.hostname or "", url.port, context=context, timeout=TIMEOUT
        )
    else:
        conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=TIMEOUT)
    headers = {"Accept": "application/json", "User-Agent": "kubenova-operator"}
    if token := connection.current_token():
        headers["Authorization"] = f"Bearer {token}"
    pages: Pages = []
    continue_: str | None = None
    try:
        while True:
            query = {"limit": str(LIST_PAGE)} | ({"continue": continue_} if continue_ else {})
            conn.request("GET", f"{url.path.rstrip('/')}{path}?{urlencode(query)}", headers=headers)
            response = conn.getresponse()
            payload = response.read()
            if response.status != 200:
                raise OSError(f"GET {path}: {response.status} {payload[:200]!r}")
            page = orjson.loads(payload)
            page["items"] = [transform(item) for item in page.get("items") or []]
            pages.append(page)
            continue_ = (page.get("metadata") or {}).get("continue")
            if not continue_:
                return pages
    finally:
        conn.close()
