"""epoll for the netpoller, on the host's epoll.

A guest epoll instance is a host epoll fd; guest fds are host fds, so readiness, edge
triggering (EPOLLET), EPOLLRDHUP/HUP/ERR and "EPERM for regular files" are the host kernel's
own. goemu keeps only the guest's 8-byte ``data`` per registered fd (Go stores a pointer there).
A wait that finds nothing blocks only the calling guest thread; the scheduler re-polls it and,
when every thread waits, sleeps on the host until an fd is ready or the earliest deadline.
"""
from __future__ import annotations

import os
import select
import struct

from ..errno import EINVAL, LinuxError, from_oserror
from ..fdtable import Fd
from ..thread import Restart, Wait
from . import BLOCK, syscall

EPOLL_CLOEXEC = 0o2000000
EPOLL_CTL_ADD, EPOLL_CTL_DEL, EPOLL_CTL_MOD = 1, 2, 3
_EVENT = struct.Struct("<IQ")    # packed: 12 bytes on x86-64


class EpollInstance:
    def __init__(self) -> None:
        self.ep = select.epoll()
        self.data: dict[int, int] = {}    # host fd -> guest data

    def ready(self, maxevents: int) -> list[tuple[int, int]]:
        try:
            return self.ep.poll(0, maxevents)
        except InterruptedError:
            return []


def _instance(k, epfd: int) -> EpollInstance:
    entry = k.fds.get(epfd)
    if not isinstance(entry.obj, EpollInstance):
        raise LinuxError(EINVAL)
    return entry.obj


def _create(k, cloexec: bool) -> int:
    inst = EpollInstance()
    host = os.dup(inst.ep.fileno())
    return k.fds.install(Fd(host, cloexec, "anon_inode:[eventpoll]", "epoll", inst))


@syscall("epoll_create1", "hex", ret="fd")
def epoll_create1(k, t, flags):
    if flags & ~EPOLL_CLOEXEC:
        raise LinuxError(EINVAL)
    return _create(k, bool(flags & EPOLL_CLOEXEC))


@syscall("epoll_create", "int", ret="fd")
def epoll_create(k, t, size):
    if size & 0xFFFFFFFF == 0 or size >> 31 & 1:
        raise LinuxError(EINVAL)
    return _create(k, False)


@syscall("epoll_ctl", "fd", "int", "fd", "ptr")
def epoll_ctl(k, t, epfd, op, fd, event):
    inst = _instance(k, epfd)
    target = k.fds.get(fd)
    if fd == epfd:
        raise LinuxError(EINVAL)
    host = target.host
    # The host kernel decides every error (EPERM for regular files even on DEL, EEXIST, ENOENT),
    # in Linux's order; goemu only remembers the guest's data word.
    try:
        if op == EPOLL_CTL_DEL:
            inst.ep.unregister(host)
            inst.data.pop(host, None)
            return 0
        if op not in (EPOLL_CTL_ADD, EPOLL_CTL_MOD):
            raise LinuxError(EINVAL)
        events, data = _EVENT.unpack(k.mem.read(event, 12))
        if op == EPOLL_CTL_ADD:
            inst.ep.register(host, events)
        else:
            inst.ep.modify(host, events)
    except OSError as e:
        raise from_oserror(e) from None
    inst.data[host] = data
    return 0


def _deliver(k, inst: EpollInstance, events_ptr: int, maxevents: int) -> int | None:
    ready = inst.ready(maxevents)
    if not ready:
        return None
    out = b"".join(_EVENT.pack(mask, inst.data.get(host, 0)) for host, mask in ready)
    k.mem.write(events_ptr, out)
    return len(ready)


def _wait(k, t, epfd, events, maxevents, timeout, nr):
    timeout = timeout - (1 << 32) if timeout & 0x80000000 else timeout & 0xFFFFFFFF
    if not 0 < maxevents & 0xFFFFFFFF <= 1 << 20:
        raise LinuxError(EINVAL)
    inst = _instance(k, epfd)
    n = _deliver(k, inst, events, maxevents)
    if n is not None:
        return n
    if timeout == 0:
        return 0
    deadline = None if timeout < 0 else k.clock.monotonic() + timeout * 10**6
    k.sched.block(t, Wait("epoll_wait", deadline, Restart.EINTR, nr, epfd, 0,
                          poll=lambda: _deliver(k, inst, events, maxevents), host_fd=inst.ep.fileno()))
    return BLOCK


@syscall("epoll_pwait", "fd", "ptr", "int", "int", "ptr", "size")
def epoll_pwait(k, t, epfd, events, maxevents, timeout, sigmask, sigsetsize):
    return _wait(k, t, epfd, events, maxevents, timeout, 281)


@syscall("epoll_wait", "fd", "ptr", "int", "int")
def epoll_wait(k, t, epfd, events, maxevents, timeout):
    return _wait(k, t, epfd, events, maxevents, timeout, 232)



