"""A tiny userspace ATA-over-Ethernet initiator for tests (this kernel has no `aoe` module).

It speaks just enough of the AoE protocol (r11) over an AF_PACKET socket to check an
export: ATA IDENTIFY DEVICE, READ SECTORS EXT and WRITE SECTORS EXT, ethertype 0x88A2.
The socket can be opened inside a network namespace, so the "client host" of a test is a
namespace of its own; frames carry any source MAC we choose, which is how a test plays a
host outside vblade's MAC ACL.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import socket
import struct
import threading
import time
from dataclasses import dataclass

ETH_P_AOE = 0x88A2
BROADCAST = b"\xff" * 6
SECTOR = 512
# Two sectors fit in a 1500-byte frame with the headers.
SECTORS_PER_FRAME = 2
CLONE_NEWNET = 0x40000000

_ETH = struct.Struct("!6s6sH")
# ver/flags, error, major (shelf), minor (slot), command, tag
_AOE = struct.Struct("!BBHBBI")
# aflags, err/feature, sector count, cmd/status, lba0..lba5, reserved
_ATA = struct.Struct("!BBBB6s2s")

AOE_VERSION = 1
FLAG_RESPONSE = 0x08
FLAG_ERROR = 0x04
CMD_ATA = 0
AFLAG_EXTENDED = 0x40
AFLAG_WRITE = 0x01
ATA_IDENTIFY = 0xEC
ATA_READ_EXT = 0x24
ATA_WRITE_EXT = 0x34
ATA_STATUS_ERROR = 0x01


class NoAnswer(TimeoutError):
    """The target did not answer (absent, or its ACL ignores us)."""


class AoeError(RuntimeError):
    """The target answered with an AoE or ATA error."""


def mac_bytes(mac: str) -> bytes:
    return bytes(int(part, 16) for part in mac.split(":"))


def mac_text(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def interface_mac(interface: str, netns: str | None = None) -> str:
    """The MAC of `interface` in `netns` (asked through a packet socket made there)."""
    with contextlib.closing(_open_socket(interface, netns)) as probe:
        return mac_text(probe.getsockname()[4][:6])


@contextlib.contextmanager
def _in_netns(netns: str):  # type: ignore[no-untyped-def]
    """Run the block with this thread in network namespace `netns` (then come back)."""
    libc = ctypes.CDLL(None, use_errno=True)
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{netns}", os.O_RDONLY)
    try:
        if libc.setns(target, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns into {netns}")
        try:
            yield
        finally:
            libc.setns(own, CLONE_NEWNET)
    finally:
        os.close(own)
        os.close(target)


def _open_socket(interface: str, netns: str | None) -> socket.socket:
    if netns is None:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_AOE))
        sock.bind((interface, ETH_P_AOE))
        return sock
    # A socket stays in the namespace it was made in; a helper thread enters it to make one.
    made: list[socket.socket | BaseException] = []

    def make() -> None:
        try:
            with _in_netns(netns):
                made.append(_open_socket(interface, None))
        except BaseException as exc:  # handed to the caller's thread
            made.append(exc)

    thread = threading.Thread(target=make)
    thread.start()
    thread.join()
    result = made[0]
    if isinstance(result, BaseException):
        raise result
    return result


@dataclass(frozen=True)
class Identity:
    """What ATA IDENTIFY DEVICE says about the exported disk."""

    sectors: int
    model: str
    serial: str

    @property
    def size_bytes(self) -> int:
        return self.sectors * SECTOR


class AoeClient:
    """Talks to one shelf/slot through `interface`, sending frames from `source_mac`."""

    def __init__(
        self,
        interface: str,
        shelf: int,
        slot: int,
        *,
        netns: str | None = None,
        source_mac: str | None = None,
        timeout: float = 1.0,
    ) -> None:
        self.shelf = shelf
        self.slot = slot
        self.timeout = timeout
        self._sock = _open_socket(interface, netns)
        own = mac_text(self._sock.getsockname()[4][:6])
        self.source = mac_bytes(source_mac or own)
        self._target = BROADCAST  # learnt from the first answer

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> AoeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def identify(self) -> Identity:
        data = self._ata(ATA_IDENTIFY, lba=0, count=1, aflags=0)
        words = struct.unpack("<256H", data[:SECTOR])
        lba48 = words[100] | words[101] << 16 | words[102] << 32 | words[103] << 48
        lba28 = words[60] | words[61] << 16
        return Identity(
            sectors=lba48 or lba28,
            model=_ata_string(data[54:94]),
            serial=_ata_string(data[20:40]),
        )

    def read(self, offset: int, length: int) -> bytes:
        """Read `length` bytes at `offset` (both multiples of 512)."""
        _check_aligned(offset, length)
        out = bytearray()
        lba = offset // SECTOR
        remaining = length // SECTOR
        while remaining:
            count = min(SECTORS_PER_FRAME, remaining)
            out += self._ata(ATA_READ_EXT, lba=lba, count=count, aflags=AFLAG_EXTENDED)[
                : count * SECTOR
            ]
            lba += count
            remaining -= count
        return bytes(out)

    def write(self, offset: int, data: bytes) -> None:
        """Write `data` at `offset` (both multiples of 512)."""
        _check_aligned(offset, len(data))
        lba = offset // SECTOR
        for start in range(0, len(data), SECTORS_PER_FRAME * SECTOR):
            chunk = data[start : start + SECTORS_PER_FRAME * SECTOR]
            count = len(chunk) // SECTOR
            self._ata(
                ATA_WRITE_EXT,
                lba=lba,
                count=count,
                aflags=AFLAG_EXTENDED | AFLAG_WRITE,
                payload=chunk,
            )
            lba += count

    def _ata(
        self, command: int, *, lba: int, count: int, aflags: int, payload: bytes = b""
    ) -> bytes:
        tag = secrets.randbits(31)
        frame = (
            _ETH.pack(self._target, self.source, ETH_P_AOE)
            + _AOE.pack(AOE_VERSION << 4, 0, self.shelf, self.slot, CMD_ATA, tag)
            + _ATA.pack(aflags, 0, count, command, lba.to_bytes(6, "little"), b"\0\0")
            + payload
        )
        self._sock.send(frame.ljust(60, b"\0"))
        deadline = time.monotonic() + self.timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise NoAnswer(
                    f"no AoE answer from e{self.shelf}.{self.slot} to "
                    f"command {command:#x} within {self.timeout}s"
                )
            self._sock.settimeout(remaining)
            try:
                answer = self._sock.recv(9000)
            except TimeoutError:
                continue
            parsed = self._match(answer, tag)
            if parsed is not None:
                return parsed

    def _match(self, frame: bytes, tag: int) -> bytes | None:
        """The ATA data of `frame` if it answers our `tag`, else None."""
        header = _ETH.size + _AOE.size
        if len(frame) < header + _ATA.size:
            return None
        dst, src, _type = _ETH.unpack_from(frame)
        ver_flags, error, major, minor, command, answer_tag = _AOE.unpack_from(frame, _ETH.size)
        if dst != self.source or answer_tag != tag or not ver_flags & FLAG_RESPONSE:
            return None
        if (major, minor, command) != (self.shelf, self.slot, CMD_ATA):
            return None
        if ver_flags & FLAG_ERROR:
            raise AoeError(f"AoE error {error} from e{major}.{minor}")
        _aflags, _err, _count, status, _lba, _res = _ATA.unpack_from(frame, header)
        if status & ATA_STATUS_ERROR:
            raise AoeError(f"ATA error status {status:#x} from e{major}.{minor}")
        self._target = src
        return frame[header + _ATA.size :]


def _ata_string(raw: bytes) -> str:
    # ATA strings are byte-swapped per 16-bit word.
    swapped = bytes(b for pair in zip(raw[1::2], raw[0::2], strict=True) for b in pair)
    return swapped.decode("ascii", errors="replace").strip()


def _check_aligned(offset: int, length: int) -> None:
    if offset % SECTOR or length % SECTOR:
        raise ValueError(f"offset {offset} and length {length} must be multiples of {SECTOR}")
