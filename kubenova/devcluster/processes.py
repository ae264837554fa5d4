"""Start, find and stop the control-plane processes, attached to us or detached with pid files."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ProcessSpec:
    """What to run for one component, where it logs and where its pid is recorded."""

    name: str
    argv: tuple[str, ...]
    log: Path
    pid_file: Path


def _tied_to_us(argv: tuple[str, ...]) -> list[str]:
    # setpriv sets PR_SET_PDEATHSIG and then execs argv (same pid, same command line):
    # if the test session dies without a teardown (SIGKILL, crash), the kernel kills the
    # component too. It avoids a preexec_fn, which is unsafe in a threaded parent.
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "KILL", *argv] if setpriv else list(argv)


def launch(spec: ProcessSpec, *, detached: bool) -> subprocess.Popen[bytes]:
    """Start `spec`; detached processes get their own session and outlive us."""
    spec.log.parent.mkdir(parents=True, exist_ok=True)
    spec.pid_file.parent.mkdir(parents=True, exist_ok=True)
    argv = list(spec.argv) if detached else _tied_to_us(spec.argv)
    with spec.log.open("ab") as log:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=detached,
        )
    spec.pid_file.write_text(f"{process.pid}\n")
    return process


def is_alive(pid: int) -> bool:
    """True while `pid` runs; a zombie nobody reaped yet counts as dead."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    # The state letter follows the parenthesised command name, which may contain spaces.
    state = stat.rsplit(")", 1)[1].split()[0]
    return state not in ("Z", "X")


def command_line(pid: int) -> tuple[str, ...]:
    """The argv of a running process, or () when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return ()
    return tuple(part.decode(errors="replace") for part in raw.split(b"\0") if part)


def live_pid(spec: ProcessSpec) -> int | None:
    """The pid in the spec's pid file if that process is alive (whatever it runs)."""
    try:
        pid = int(spec.pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if is_alive(pid) else None


def recorded_pid(spec: ProcessSpec) -> int | None:
    """The pid in the spec's pid file if that process still runs exactly `spec.argv`.

    Comparing the command line guards against a recycled pid and notices a changed
    configuration (say a new port), which then needs a restart.
    """
    pid = live_pid(spec)
    if pid is not None and command_line(pid) == spec.argv:
        return pid
    return None


def runs_with(pid: int, text: str, executables: tuple[str, ...]) -> bool:
    """True if `pid` is alive, runs one of `executables` and has `text` in its arguments."""
    argv = command_line(pid)
    return bool(
        argv
        and Path(argv[0]).name in executables
        and any(text in part for part in argv[1:])
        and is_alive(pid)
    )


def processes_mentioning(text: str, executables: tuple[str, ...]) -> list[int]:
    """Pids of live processes running one of `executables` with `text` in their arguments.

    Limiting the search to our own executables keeps, say, a `tail -f` of a log alone.
    """
    return [
        int(entry.name)
        for entry in Path("/proc").iterdir()
        if entry.name.isdigit() and runs_with(int(entry.name), text, executables)
    ]


def _reap(pid: int) -> None:
    # Only our own children can be reaped; others are reaped by their (new) parent.
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _wait_gone(pid: int, deadline: float) -> bool:
    while time.monotonic() < deadline:
        _reap(pid)
        if not is_alive(pid):
            return True
        time.sleep(0.02)
    return not is_alive(pid)


def stop_pid(pid: int, *, timeout: float = 10.0) -> None:
    """SIGTERM `pid`, wait up to `timeout`, then SIGKILL; return once it is gone."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        _reap(pid)
        return
    if _wait_gone(pid, time.monotonic() + timeout):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    if not _wait_gone(pid, time.monotonic() + 5.0):
        raise RuntimeError(f"process {pid} survived SIGKILL")


def stop_recorded(spec: ProcessSpec, *, timeout: float = 10.0) -> bool:
    """Stop the process `spec`'s pid file names (if it still runs it) and forget the file;
    whether one was running."""
    pid = live_pid(spec)
    spec.pid_file.unlink(missing_ok=True)
    if pid is None:
        return False
    stop_pid(pid, timeout=timeout)
    return True


def log_tail(path: Path, lines: int = 25) -> str:
    """The last lines of a log, to put into an error message."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])
