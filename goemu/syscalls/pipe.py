"""pipe, pipe2 and eventfd2: host pipes and host eventfds behind guest fds."""
from __future__ import annotations

import os
import struct

from ..errno import EINVAL, LinuxError, from_oserror
from ..fdtable import Fd
from . import syscall

O_NONBLOCK, O_CLOEXEC, O_DIRECT = 0o4000, 0o2000000, 0o40000
EFD_SEMAPHORE = 1


def _pipe(k, fds_ptr: int, flags: int) -> int:
    if flags & ~(O_NONBLOCK | O_CLOEXEC | O_DIRECT):
        raise LinuxError(EINVAL)
    try:
        r, w = os.pipe2(os.O_CLOEXEC | (os.O_NONBLOCK if flags & O_NONBLOCK else 0))
    except OSError as e:
        raise from_oserror(e) from None
    cloexec = bool(flags & O_CLOEXEC)
    gr = k.fds.install(Fd(r, cloexec, "pipe:[r]", "pipe"))
    gw = k.fds.install(Fd(w, cloexec, "pipe:[w]", "pipe"))
    try:
        k.mem.write(fds_ptr, struct.pack("<ii", gr, gw))
    except LinuxError:
        k.fds.close(gr)
        k.fds.close(gw)
        raise
    return 0


@syscall("pipe2", "ptr", "openflags")
def pipe2(k, t, fds_ptr, flags):
    return _pipe(k, fds_ptr, flags)


@syscall("pipe", "ptr")
def pipe(k, t, fds_ptr):
    return _pipe(k, fds_ptr, 0)


@syscall("eventfd2", "uint", "openflags", ret="fd")
def eventfd2(k, t, initval, flags):
    if flags & ~(O_NONBLOCK | O_CLOEXEC | EFD_SEMAPHORE):
        raise LinuxError(EINVAL)
    host = os.eventfd(initval & 0xFFFFFFFF, os.EFD_CLOEXEC | (flags & (O_NONBLOCK | EFD_SEMAPHORE)))
    return k.fds.install(Fd(host, bool(flags & O_CLOEXEC), "anon_inode:[eventfd]", "eventfd"))


@syscall("eventfd", "uint", ret="fd")
def eventfd(k, t, initval):
    return eventfd2(k, t, initval, 0)
