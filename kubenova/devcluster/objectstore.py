"""A MinIO S3 server on loopback, for pytest (attached) or `kubenova dev` (detached).

One state directory holds `data/` (the buckets), `logs/minio.log`, `run/minio.pid`,
`objectstore.json` (ports and the generated root credentials, owner-only) and `s3.env`
(`export KUBENOVA_S3_...` lines for `kubenova image upload`). Like ControlPlane.up(),
`up()` is level-triggered: a MinIO already running with the wanted command line and live is
kept, anything else is (re)started. The binary is built by `hack/controlplane.sh minio`.
"""

from __future__ import annotations

import contextlib
import fcntl
import http.client
import json
import os
import secrets
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from kubenova.devcluster.binaries import cache_bin_dir, find_checkout
from kubenova.devcluster.controlplane import _free_port, _port_free
from kubenova.devcluster.errors import ControlPlaneError
from kubenova.devcluster.probes import wait_ready
from kubenova.devcluster.processes import (
    ProcessSpec,
    _tied_to_us,
    command_line,
    processes_mentioning,
    runs_with,
    stop_pid,
)

if TYPE_CHECKING:
    from minio import Minio

MINIO = "minio"
READY_TIMEOUT = 60.0
Progress = Callable[[str], None]


class ObjectStoreError(ControlPlaneError):
    """MinIO could not be built, started or stopped; the message says what to do."""

    reason = "ObjectStoreFailed"


@dataclass(frozen=True)
class ObjectStoreAccess:
    """How to reach a running MinIO as its root user."""

    endpoint: str  # host:port, as the minio SDK wants it
    access_key: str
    secret_key: str
    data_dir: Path
    log: Path

    @property
    def url(self) -> str:
        return f"http://{self.endpoint}"

    @cached_property
    def client(self) -> Minio:
        """A `minio.Minio` client for the root user (plain HTTP on loopback)."""
        from minio import Minio  # noqa: PLC0415 - `kubenova dev` never needs the SDK

        return Minio(self.endpoint, self.access_key, self.secret_key, secure=False)

    def env(self) -> dict[str, str]:
        """The KUBENOVA_S3_* variables `kubenova image upload` reads."""
        return {
            "KUBENOVA_S3_ENDPOINT": self.url,
            "KUBENOVA_S3_ACCESS_KEY": self.access_key,
            "KUBENOVA_S3_SECRET_KEY": self.secret_key,
        }


@dataclass
class _State:
    """Persisted so that `up` after `down` keeps the endpoint and the credentials."""

    port: int
    access_key: str
    secret_key: str


def find_minio() -> Path | None:
    """The cached minio binary (hack/controlplane.sh's symlink), or None; never builds."""
    candidate = cache_bin_dir() / MINIO
    return candidate if candidate.exists() and os.access(candidate, os.X_OK) else None


def ensure_minio(progress: Progress = lambda _: None) -> Path:
    """The cached minio binary, built first with `hack/controlplane.sh minio` if missing."""
    if (found := find_minio()) is not None:
        return found
    checkout = find_checkout()
    if checkout is None:
        raise ObjectStoreError(
            f"minio is missing from {cache_bin_dir()}. Build it from a kubenova source checkout "
            "with `hack/controlplane.sh minio` (needs Go >= 1.24 and the Go module proxy), "
            "or put a minio executable there yourself."
        )
    script = checkout / "hack" / "controlplane.sh"
    progress(f"building minio with {script} (first time only; about 3 minutes)")
    result = subprocess.run([str(script), MINIO], check=False)
    if result.returncode != 0 or (found := find_minio()) is None:
        raise ObjectStoreError(
            f"`{script} minio` failed (exit code {result.returncode}); its output above says why"
        )
    return found


def minio_live(port: int, address: str = "127.0.0.1") -> bool:
    """True when MinIO's GET /minio/health/live answers 200."""
    connection = http.client.HTTPConnection(address, port, timeout=2.0)
    try:
        connection.request("GET", "/minio/health/live")
        response = connection.getresponse()
        response.read()
        return response.status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


class ObjectStore:
    """One MinIO server whose whole state lives under `root`."""

    def __init__(
        self,
        root: Path,
        *,
        detached: bool = False,
        binary: Path | None = None,
        address: str = "127.0.0.1",
    ) -> None:
        self.root = root.resolve()
        # Where it listens: loopback, or e.g. the host end of a node namespace's veth, so
        # agents inside that namespace reach it by route.
        self.address = address
        self.detached = detached
        self._binary = binary
        self._child: subprocess.Popen[bytes] | None = None

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def env_file(self) -> Path:
        """`export KUBENOVA_S3_...` lines: `. <this file>` before `kubenova image upload`."""
        return self.root / "s3.env"

    @property
    def _state_file(self) -> Path:
        return self.root / "objectstore.json"

    def _spec(self, binary: Path, state: _State) -> ProcessSpec:
        argv = (
            str(binary),
            "server",
            str(self.data_dir),
            "--address",
            f"{self.address}:{state.port}",
            "--quiet",
        )
        return ProcessSpec(MINIO, argv, self.root / "logs" / "minio.log", self._pid_file)

    @property
    def _pid_file(self) -> Path:
        return self.root / "run" / "minio.pid"

    # -- state ------------------------------------------------------------------------------
    def _load_state(self) -> _State | None:
        try:
            return _State(**json.loads(self._state_file.read_text()))
        except (FileNotFoundError, ValueError, TypeError):
            return None

    def _write_private(self, path: Path, text: str) -> None:
        # Root credentials inside: owner-only, also while being written.
        tmp = path.with_name(path.name + ".tmp")
        tmp.touch(mode=0o600)
        tmp.chmod(0o600)
        tmp.write_text(text)
        tmp.replace(path)

    def _state(self, running: bool) -> _State:
        state = self._load_state()
        if state is None:
            state = _State(
                port=_free_port(),
                access_key=f"kubenova-{secrets.token_hex(4)}",
                secret_key=secrets.token_urlsafe(24),
            )
        elif not running and not _port_free(state.port):
            # A stopped server's port may have been taken meanwhile; move it then.
            state.port = _free_port()
        self._write_private(self._state_file, json.dumps(asdict(state), indent=2) + "\n")
        return state

    # -- lifecycle --------------------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        # Two `kubenova dev up` at once must not start two servers on one data dir.
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / ".objectstore.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def running_pid(self) -> int | None:
        """The pid in our pid file if it is a minio serving this state directory."""
        try:
            pid = int(self._pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return pid if runs_with(pid, str(self.data_dir), self._executables) else None

    @property
    def _executables(self) -> tuple[str, ...]:
        # The cache symlink is called minio; an explicit binary may be minio-<version>.
        return (MINIO, self._binary.name) if self._binary is not None else (MINIO,)

    def up(self, progress: Progress = lambda _: None) -> ObjectStoreAccess:
        """Make MinIO run and be live; reuse a healthy one already serving this directory."""
        with self._locked():
            binary = self._binary or ensure_minio(progress)
            pid = self.running_pid()
            state = self._state(running=pid is not None)
            spec = self._spec(binary, state)
            if pid is not None and not (
                command_line(pid) == spec.argv and minio_live(state.port, self.address)
            ):
                progress(f"restarting minio (pid {pid})")
                stop_pid(pid)
                pid = None
            if pid is None:
                progress("starting minio")
                self.data_dir.mkdir(parents=True, exist_ok=True)
                process = self._launch(spec, state)
                if not self.detached:
                    self._child = process
                try:
                    wait_ready(
                        spec,
                        process.pid,
                        lambda: minio_live(state.port, self.address),
                        READY_TIMEOUT,
                    )
                except ControlPlaneError as error:
                    stop_pid(process.pid)
                    raise ObjectStoreError(str(error)) from error
            access = self._access(state)
            self._write_private(
                self.env_file,
                "".join(f"export {name}={value}\n" for name, value in access.env().items()),
            )
            return access

    def _launch(self, spec: ProcessSpec, state: _State) -> subprocess.Popen[bytes]:
        # processes.launch() has no env parameter, and the root password must not go on a
        # command line (/proc/*/cmdline is world-readable): same launch, plus the environment.
        spec.log.parent.mkdir(parents=True, exist_ok=True)
        spec.pid_file.parent.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "MINIO_ROOT_USER": state.access_key,
            "MINIO_ROOT_PASSWORD": state.secret_key,
            # No phone-home and no update checks from a throwaway server.
            "MINIO_UPDATE": "off",
            "MINIO_CALLHOME_ENABLE": "off",
            # No web console: nothing listens beyond the S3 port.
            "MINIO_BROWSER": "off",
        }
        argv = list(spec.argv) if self.detached else _tied_to_us(spec.argv)
        with spec.log.open("ab") as log:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=self.detached,
                env=env,
            )
        spec.pid_file.write_text(f"{process.pid}\n")
        return process

    def down(self, timeout: float = 10.0) -> list[str]:
        """Stop MinIO (SIGTERM, then SIGKILL); return what was stopped. Data is kept."""
        with self._locked():
            stopped = []
            pid = self.running_pid()
            if pid is not None:
                stop_pid(pid, timeout=timeout)
                stopped.append(MINIO)
            self._pid_file.unlink(missing_ok=True)
            if self._child is not None:
                self._child.wait()
                self._child = None
            # A straggler whose pid file was lost, found by our data directory.
            for straggler in processes_mentioning(str(self.data_dir), self._executables):
                stop_pid(straggler, timeout=timeout)
                stopped.append(f"{MINIO} (pid {straggler})")
            return stopped

    def access(self) -> ObjectStoreAccess:
        """Client access as last configured (the server need not be running)."""
        state = self._load_state()
        if state is None:
            raise ObjectStoreError(f"no object store was ever started in {self.root}")
        return self._access(state)

    def _access(self, state: _State) -> ObjectStoreAccess:
        return ObjectStoreAccess(
            endpoint=f"{self.address}:{state.port}",
            access_key=state.access_key,
            secret_key=state.secret_key,
            data_dir=self.data_dir,
            log=self.root / "logs" / "minio.log",
        )

    def __enter__(self) -> ObjectStoreAccess:
        return self.up()

    def __exit__(self, *exc_info: object) -> None:
        self.down()


def dev_objectstore(state_dir: Path) -> ObjectStore:
    """The `kubenova dev` object store: detached, in `<dev state dir>/objectstore`."""
    return ObjectStore(state_dir / "objectstore", detached=True)


def start_dev_objectstore(
    state_dir: Path, progress: Progress = lambda _: None
) -> ObjectStoreAccess:
    """For `kubenova dev up`: start (or keep) the dev MinIO and write its s3.env file."""
    return dev_objectstore(state_dir).up(progress)


def stop_dev_objectstore(state_dir: Path) -> list[str]:
    """For `kubenova dev down`: stop the dev MinIO; buckets and credentials are kept."""
    return dev_objectstore(state_dir).down()
