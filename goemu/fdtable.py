"""The guest's file-descriptor table.

Each guest fd names a host fd (the guest is one process, so dup/dup2 are host dups and share
the open file description, offset and status flags exactly as Linux shares them). FD_CLOEXEC is
per descriptor and lives here. Virtual files (/proc/self/auxv, ...) are host memfds holding the
text the guest should see, so every fd operation works on them unchanged.

A vfork child's table *borrows* the parent's host fds instead of dup'ing them: Linux drops a
process's fcntl record locks on any close of any fd of the locked file, and goemu's own
process holds the guest's locks, so a child must never dup-then-close a host fd of the parent's
files inside goemu (the host process it becomes dups them in its own process). A borrowed host
fd the parent closes meanwhile stays open until the last borrower lets go, so its number is
not reused under the child.
"""
from __future__ import annotations

import os

from .errno import EBADF, EINVAL, EMFILE, LinuxError, from_oserror
from .record import record

FD_CLOEXEC = 1
MAX_FDS = 1024
PASS_FDS_ENV = "GOEMU_PASS_FDS"


@record
class Fd:
    host: int            # host file descriptor
    cloexec: bool = False
    path: str = ""       # what the guest opened, for strace and /proc/self/fd
    kind: str = "file"   # file, dir, pipe, socket, epoll, memfd, tty ...
    obj: object = None   # extra state for emulated kinds (epoll instance, ...)
    host_kind: str | None = None   # fstat kind of the host fd, cached by goemu.hostio
    borrowed: bool = False         # the host fd belongs to another table (a vfork child's copy)


_loans: dict[int, int] = {}        # host fd -> number of borrowed entries naming it
_deferred: set[int] = set()        # host fds closed by their owner while still borrowed


def _release(entry: Fd) -> None:
    host = entry.host
    if entry.borrowed:
        left = _loans.get(host, 1) - 1
        if left > 0:
            _loans[host] = left
            return
        _loans.pop(host, None)
        if host not in _deferred:
            return
        _deferred.discard(host)
    elif _loans.get(host):
        _deferred.add(host)
        return
    try:
        os.close(host)
    except OSError as e:
        if e.errno != 9:
            raise from_oserror(e) from None


class FdTable:
    # RLIMIT_NOFILE's soft value as the guest sees it (goemu/hostlimits.py sets it before the
    # guest starts; setrlimit changes a table's own): fd numbers stop below it (EMFILE)
    default_limit = MAX_FDS

    def __init__(self) -> None:
        self.fds: dict[int, Fd] = {}
        self.limit = FdTable.default_limit
        self._low = 0          # no free number below this (lowest_free starts here)

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
        table.adopt_passed()
        return table

    def adopt_passed(self) -> None:
        """Fds >= 3 a goemu parent passed on (``--follow-exec`` children: the guest's
        cmd.ExtraFiles), named by GOEMU_PASS_FDS=3,4,...; they keep their numbers."""
        spec = os.environ.pop(PASS_FDS_ENV, "")
        for item in spec.split(","):
            if not item.isdigit():
                continue
            n = int(item)
            if n < 3 or n >= self.limit or n in self.fds:
                continue
            try:
                os.set_inheritable(n, False)
            except OSError:
                continue   # not open after all
            self.fds[n] = Fd(n, False, f"fd:{n}")

    def borrow(self) -> "FdTable":
        """A copy for a vfork child naming the same host fds (see the module docstring)."""
        table = FdTable()
        table.limit = self.limit
        for n, e in self.fds.items():
            table.fds[n] = Fd(e.host, e.cloexec, e.path, e.kind, e.obj, e.host_kind, borrowed=True)
            _loans[e.host] = _loans.get(e.host, 0) + 1
        return table

    def get(self, fd: int) -> Fd:
        f = self.fds.get(fd)
        if f is None:
            raise LinuxError(EBADF)
        return f

    def host(self, fd: int) -> int:
        return self.get(fd).host

    def lowest_free(self, start: int = 0) -> int:
        n = max(start, self._low)
        while n in self.fds:
            n += 1
        if start <= self._low:
            self._low = n
        if n >= self.limit:
            raise LinuxError(EMFILE)
        return n

    def install(self, entry: Fd, at: int | None = None, start: int = 0) -> int:
        """Place entry at the lowest free number >= start (or exactly at `at`, closing what was there)."""
        if at is None:
            at = self.lowest_free(start)
        elif at < 0 or at >= self.limit:
            raise LinuxError(EBADF)
        else:
            self.close(at, missing_ok=True)
        self.fds[at] = entry
        return at

    def close(self, fd: int, missing_ok: bool = False) -> None:
        entry = self.fds.pop(fd, None)
        if entry is not None and fd < self._low:
            self._low = fd
        if entry is None:
            if missing_ok:
                return
            raise LinuxError(EBADF)
        # entry.obj (an epoll instance, a directory stream) may be shared with dup'ed fds and
        # with a vfork child's copy of the table: it goes away with its last reference.
        _release(entry)

    def dup(self, fd: int, at: int | None = None, start: int = 0, cloexec: bool = False) -> int:
        src = self.get(fd)
        if at is not None and at == fd:
            raise LinuxError(EINVAL)
        if src.borrowed:   # same open file description either way; never a new host fd
            _loans[src.host] = _loans.get(src.host, 0) + 1
            entry = Fd(src.host, cloexec, src.path, src.kind, src.obj, src.host_kind, borrowed=True)
            try:
                return self.install(entry, at=at, start=start)
            except LinuxError:
                _release(entry)
                raise
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
