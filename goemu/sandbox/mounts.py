"""The sandbox's mounts: the root and the ``--bind HOST:GUEST[:ro]`` directories."""
from __future__ import annotations

import os
import stat as st
from dataclasses import dataclass

O_PATH = 0o10000000


class SandboxError(Exception):
    """Bad sandbox options (a one-line message for the command line)."""


@dataclass(eq=False)
class Mount:
    guest: bytes        # the mount point, a canonical guest path (b"/" for the root)
    host: bytes         # the host directory (its real path)
    ro: bool
    fd: int             # an O_PATH fd of the host directory, held for the whole run

    @classmethod
    def open(cls, guest: bytes, host: bytes, ro: bool, what: str) -> "Mount":
        try:
            real = os.path.realpath(host)
            fd = os.open(real, O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as e:
            raise SandboxError(f"{what}: {os.fsdecode(host)}: {e.strerror}") from None
        if not st.S_ISDIR(os.fstat(fd).st_mode):
            os.close(fd)
            raise SandboxError(f"{what}: {os.fsdecode(host)}: not a directory")
        return cls(guest, real, ro, fd)


def parse_bind(spec: str) -> tuple[bytes, bytes, bool]:
    """HOST:GUEST[:ro|:rw] -> (host, canonical guest path, read-only)."""
    parts = spec.split(":")
    ro = False
    if len(parts) == 3 and parts[2] in ("ro", "rw"):
        ro = parts[2] == "ro"
        parts = parts[:2]
    if len(parts) != 2 or not parts[0] or not parts[1]:
        raise SandboxError(f"--bind expects HOST:GUEST[:ro], got {spec!r}")
    host, guest = parts
    if not guest.startswith("/"):
        raise SandboxError(f"--bind {spec}: the guest path must be absolute")
    norm = os.path.normpath(guest)
    norm = "/" + norm.lstrip("/")
    if norm == "/":
        raise SandboxError(f"--bind {spec}: cannot bind over the root (use --root)")
    if norm == "/proc" or norm.startswith("/proc/"):
        raise SandboxError(f"--bind {spec}: /proc is the guest's own")
    return os.fsencode(host), os.fsencode(norm), ro
