"""The guest's file-descriptor table.

Each guest fd names a host fd (the guest is one process, so dup/dup2 are host dups and share
the open file description, offset and status flags exactly as Linux shares them). FD_CLOEXEC is
per descriptor and lives here. Virtual files (/proc/self/auxv, ...) are host memfds holding the
text the guest should see, so every fd operation works on them unchanged.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from .errno import EBADF, EINVAL, EMFILE, LinuxError, from_oserror

FD_CLOEXEC = 1
MAX_FDS = 1024


@dataclass
class Fd:
    host: int            # host file descriptor
    cloexec: bool = False
    path: str = ""       # what the guest opened, for strace and /proc/self/fd
    kind: str = "file"   # file, dir, pipe, socket, epoll, memfd, tty ...
    obj: object = None   # extra state for emulated kinds (epoll instance, ...)
    host_kind: str | None = None   # fstat kind of the host fd, cached by goemu.hostio


class FdTable:
    def __init__(self) -> None:
        self.fds: dict[int, Fd] = {}

    @classmethod
    def from_host_stdio(cls) -> "FdTable":
        table = cls()
        for n in (0, 1, 2):
            try:
                host = os.dup(n)
            except OSError:
                continue   # that stdio stream is closed: the guest sees EBADF, as natively
            os.set_inheritable(host, False)
            table.fds[n] = Fd(host, False, ("/dev/stdin", "/dev/stdout", "/dev/stderr")[n], "stdio")
        return table

    def get(self, fd: int) -> Fd:
        f = self.fds.get(fd)
        if f is None:
            raise LinuxError(EBADF)
        return f

    def host(self, fd: int) -> int:
        return self.get(fd).host

    def lowest_free(self, start: int = 0) -> int:
        n = start
        while n in self.fds:
            n += 1
        if n >= MAX_FDS:
            raise LinuxError(EMFILE)
        return n

    def install(self, entry: Fd, at: int | None = None, start: int = 0) -> int:
        """Place entry at the lowest free number >= start (or exactly at `at`, closing what was there)."""
        if at is None:
            at = self.lowest_free(start)
        elif at < 0 or at >= MAX_FDS:
            raise LinuxError(EBADF)
        else:
            self.close(at, missing_ok=True)
        self.fds[at] = entry
        return at

    def close(self, fd: int, missing_ok: bool = False) -> None:
        entry = self.fds.pop(fd, None)
        if entry is None:
            if missing_ok:
                return
            raise LinuxError(EBADF)
        # entry.obj (an epoll instance, a directory stream) may be shared with dup'ed fds and
        # with a vfork child's copy of the table: it goes away with its last reference.
        try:
            os.close(entry.host)
        except OSError as e:
            if e.errno != 9:
                raise from_oserror(e) from None

    def dup(self, fd: int, at: int | None = None, start: int = 0, cloexec: bool = False) -> int:
        src = self.get(fd)
        if at is not None and at == fd:
            raise LinuxError(EINVAL)
        try:
            host = os.dup(src.host)
        except OSError as e:
            raise from_oserror(e) from None
        return self.install(Fd(host, cloexec, src.path, src.kind, src.obj), at=at, start=start)

    def close_all(self) -> None:
        for fd in list(self.fds):
            self.close(fd, missing_ok=True)


def memfd_with(data: bytes, name: str = "goemu") -> int:
    """A host fd whose content is `data`, positioned at 0 (for virtual /proc files)."""
    fd = os.memfd_create(name, os.MFD_CLOEXEC)
    os.write(fd, data)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd
