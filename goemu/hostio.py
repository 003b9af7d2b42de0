"""Blocking host I/O without stalling the other guest threads, and host signals.

A guest read on a blocking pipe, socket or terminal must block only the calling guest thread:
if the host fd is not ready, the thread waits (``Wait.poll`` re-tries the operation once the
fd is ready) and the scheduler runs the others; when every thread waits, goemu sleeps on the
host in ``select`` until an fd is ready, a deadline passes or a host signal arrives.

Host signals (Ctrl-C, kill from another terminal, SIGWINCH, ...) are caught by Python handlers
that only queue them and poke a wake-up pipe; the run loop forwards them to the guest as
process-directed signals between slices, as Linux would deliver them.
"""
from __future__ import annotations

import ctypes
import fcntl
import os
import select
import signal
import stat
from typing import Callable

from .errno import EAGAIN, LinuxError
from .thread import Restart, Wait

PIPE_BUF = 4096
MSG_DONTWAIT = 0x40

# the C library already loaded in this process (find_library would run ldconfig: ~20 ms)
_libc = ctypes.CDLL(None, use_errno=True)

# Host signals forwarded to the guest. SIGKILL/SIGSTOP cannot be caught; SIGPIPE stays ignored
# (EPIPE from host writes is turned into the guest's SIGPIPE by the write path); SIGCHLD is
# goemu's own business (its subprocesses), and the guest learns of its children separately.
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGWINCH,
             signal.SIGUSR1, signal.SIGUSR2, signal.SIGALRM, signal.SIGCONT, signal.SIGTSTP,
             signal.SIGTTIN, signal.SIGTTOU, signal.SIGVTALRM, signal.SIGPROF, signal.SIGXCPU,
             signal.SIGXFSZ, signal.SIGPWR, signal.SIGIO)


def fd_kind(host: int) -> str:
    """dir, file, pipe, socket, tty or dev (other character devices), from the host's fstat."""
    try:
        mode = os.fstat(host).st_mode
    except OSError:
        return "file"
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISFIFO(mode):
        return "pipe"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode) and os.isatty(host):
        return "tty"
    return "dev"


def is_nonblocking(host: int) -> bool:
    try:
        return bool(fcntl.fcntl(host, fcntl.F_GETFL) & os.O_NONBLOCK)
    except OSError:
        return False


def ready(host: int, write: bool) -> bool:
    try:
        r, w, x = select.select([] if write else [host], [host] if write else [], [host], 0)
    except (OSError, ValueError):
        return True   # a bad fd: let the operation report the error
    return bool(r or w or x)


def may_block(entry) -> bool:
    kind = getattr(entry, "host_kind", None)
    if kind is None:
        kind = entry.host_kind = fd_kind(entry.host)
    return kind in ("pipe", "socket", "tty", "dev")


def io(k, t, entry, write: bool, op: Callable[[], int], nr: int, what: str):
    """Run op() now if it cannot block the emulator; otherwise block t until the host fd is
    ready and run it then (the result becomes the syscall's)."""
    from .syscalls import BLOCK
    if not may_block(entry) or is_nonblocking(entry.host) or ready(entry.host, write):
        return op()

    def poll() -> int | None:
        if not ready(entry.host, write):
            return None
        try:
            return op()
        except LinuxError as e:
            if e.errno == EAGAIN:
                return None
            return -e.errno

    k.sched.block(t, Wait(what, None, Restart.IF_SA_RESTART, nr, poll=poll, host_fd=entry.host,
                          host_write=write))
    return BLOCK


def write_some(entry, data: bytes) -> int:
    """A write that cannot block once the fd polled writable: at most PIPE_BUF bytes to a
    blocking pipe (POSIX guarantees room), MSG_DONTWAIT for sockets. Go loops on short writes."""
    host = entry.host
    if not may_block(entry) or is_nonblocking(host):
        return os.write(host, data)
    if entry.host_kind == "pipe":
        return os.write(host, data[:PIPE_BUF])
    if entry.host_kind == "socket":
        buf = ctypes.create_string_buffer(data, len(data))
        n = _libc.send(host, buf, len(data), MSG_DONTWAIT)
        if n < 0:
            raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
        return n
    return os.write(host, data)


class HostSignals:
    """Queue host signals for the guest; wake the idle wait through a pipe."""

    def __init__(self) -> None:
        self.pending: list[int] = []
        self.rfd, self.wfd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._old = {}
        for sig in FORWARDED:
            try:
                self._old[sig] = signal.signal(sig, self._handler)
            except (OSError, ValueError):
                pass
        self._old_wakeup = signal.set_wakeup_fd(self.wfd, warn_on_full_buffer=False)

    def _handler(self, signum, _frame) -> None:
        self.pending.append(signum)

    def take(self) -> list[int]:
        try:
            while os.read(self.rfd, 512):
                pass
        except (BlockingIOError, OSError):
            pass
        out, self.pending = self.pending, []
        return out

    def close(self, ignore_after: bool = False) -> None:
        """Stop forwarding: the previous handlers come back, or, with `ignore_after` (goemu run,
        about to exit with the guest's status), every forwarded signal but SIGINT is ignored:
        it is for a process that is gone (a parent sending SIGIO every 200 ms killed goemu in
        the few ms between the guest's exit and goemu's). Never ignored for good in a process
        that goes on (a test runner would pass SIG_IGN on to every child it starts)."""
        signal.set_wakeup_fd(self._old_wakeup)
        for sig, old in self._old.items():
            try:
                signal.signal(sig, signal.SIG_IGN if ignore_after and sig != signal.SIGINT else old)
            except (OSError, ValueError, TypeError):
                pass
        os.close(self.rfd)
        os.close(self.wfd)

