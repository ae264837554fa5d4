"""Errors of the local control plane; each message says what to do about it."""

from __future__ import annotations

from kubenova.errors import KubenovaError


class ControlPlaneError(KubenovaError):
    """The local control plane could not be built, started, reached or stopped."""

    reason = "ControlPlaneFailed"


class KubectlError(ControlPlaneError):
    """A kubectl command against the local control plane exited non-zero."""

    reason = "KubectlFailed"

    def __init__(self, args: list[str], returncode: int, stdout: str, stderr: str) -> None:
        self.argv = args
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        output = stderr.strip() or stdout.strip()
        super().__init__(f"`{' '.join(args)}` exited {returncode}: {output}")
