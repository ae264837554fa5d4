"""libvirt's event loop, run once per process in a daemon thread, and libvirt error plumbing."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import libvirt

from kubenova.agents.compute.driver import ComputeFailure, HypervisorUnavailable, InstanceNotFound

_lock = threading.Lock()
_loop_threads: list[threading.Thread] = []

# Errors that say "the daemon is not there (now)", worth a retry, not a verdict on the instance.
_UNAVAILABLE_CODES = frozenset(
    {
        libvirt.VIR_ERR_NO_CONNECT,
        libvirt.VIR_ERR_INVALID_CONN,
        libvirt.VIR_ERR_SYSTEM_ERROR,
        libvirt.VIR_ERR_RPC,
        libvirt.VIR_ERR_OPERATION_TIMEOUT,
        libvirt.VIR_ERR_AGENT_UNRESPONSIVE,
    }
)


def ensure_event_loop() -> None:
    """Register libvirt's default event loop and run it in a daemon thread (first call only).

    Must happen before a connection is opened, or that connection never delivers events
    nor keepalives.
    """
    with _lock:
        if _loop_threads:
            return
        # libvirt prints every error to stderr by default; we raise them instead.
        libvirt.registerErrorHandler(_ignore_error, None)
        libvirt.virEventRegisterDefaultImpl()
        thread = threading.Thread(target=_run_loop, name="libvirt-events", daemon=True)
        thread.start()
        _loop_threads.append(thread)


def _run_loop() -> None:
    while True:
        libvirt.virEventRunDefaultImpl()


def _ignore_error(_context: object, _error: object) -> None:
    return None


def error_code(error: libvirt.libvirtError) -> int:
    """The VIR_ERR_* code of a libvirt error."""
    code: int = error.get_error_code()
    return code


def is_not_running(error: libvirt.libvirtError) -> bool:
    """The 'domain is not running' answer of an ACPI shutdown racing the guest: already done."""
    invalid: int = libvirt.VIR_ERR_OPERATION_INVALID
    return error_code(error) == invalid


@contextlib.contextmanager
def translated_errors(what: str) -> Iterator[None]:
    """Re-raise libvirt errors as the driver contract's errors, naming `what` failed."""
    try:
        yield
    except libvirt.libvirtError as error:
        code = error_code(error)
        message = f"{what}: {error.get_error_message()}"
        if code == libvirt.VIR_ERR_NO_DOMAIN:
            raise InstanceNotFound(message) from error
        if code in _UNAVAILABLE_CODES:
            raise HypervisorUnavailable(message) from error
        raise ComputeFailure(message) from error
