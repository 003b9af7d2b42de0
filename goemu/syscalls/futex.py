"""futex: WAIT/WAKE (private and shared), the BITSET variants with absolute timeouts, REQUEUE.

"Compare and sleep" is atomic because one guest thread runs at a time and the comparison is
made inside the handler. Wait queues are keyed by guest address.
"""
from __future__ import annotations

from ..errno import EAGAIN, EINVAL, ENOSYS, ETIMEDOUT, LinuxError
from ..thread import Restart, Wait
from . import BLOCK, PARTIAL, syscall
from .time import read_timespec

FUTEX_WAIT, FUTEX_WAKE, FUTEX_REQUEUE, FUTEX_CMP_REQUEUE = 0, 1, 3, 4
FUTEX_WAIT_BITSET, FUTEX_WAKE_BITSET = 9, 10
FUTEX_PRIVATE_FLAG, FUTEX_CLOCK_REALTIME = 128, 256


def _queues(k) -> dict:
    q = getattr(k, "futex_queues", None)
    if q is None:
        q = k.futex_queues = {}
    return q


def wake(k, addr: int, count: int, bitset: int) -> int:
    q = _queues(k).get(addr)
    woken = 0
    while q and woken < count:
        for i, (th, bits) in enumerate(q):
            if bits & bitset:
                del q[i]
                k.sched.wake(th, 0, waker=k.current)
                woken += 1
                break
        else:
            break
    if q is not None and not q:
        _queues(k).pop(addr, None)
    return woken


def _wait(k, t, addr: int, val: int, deadline: int | None, bitset: int):
    if k.mem.read_u32(addr) != val & 0xFFFFFFFF:
        raise LinuxError(EAGAIN)
    q = _queues(k).setdefault(addr, [])
    entry = (t, bitset)
    q.append(entry)
    wait = Wait("futex", deadline, Restart.EINTR if deadline is not None else Restart.IF_SA_RESTART,
                202, addr, -ETIMEDOUT)

    def cancel() -> None:
        # the key moves with FUTEX_REQUEUE
        lst = _queues(k).get(wait.key)
        if lst is not None:
            for i, (th, _bits) in enumerate(lst):
                if th is t:
                    del lst[i]
                    break
            if not lst:
                _queues(k).pop(wait.key, None)

    wait.cancel = cancel
    k.sched.block(t, wait)
    return BLOCK


@syscall("futex", "ptr", "futexop", "int", "ptr", "ptr", "hex", level=PARTIAL,
         note="WAIT, WAKE, WAIT_BITSET, WAKE_BITSET, REQUEUE, CMP_REQUEUE; no PI or WAKE_OP")
def futex(k, t, addr, op, val, timeout, addr2, val3):
    cmd = op & ~(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME)
    if addr & 3:
        raise LinuxError(EINVAL)
    if cmd == FUTEX_WAIT:
        deadline = None
        if timeout:
            sec, nsec = read_timespec(k, timeout)
            deadline = k.clock.monotonic() + sec * 10**9 + nsec
        return _wait(k, t, addr, val, deadline, 0xFFFFFFFF)
    if cmd == FUTEX_WAIT_BITSET:
        if val3 & 0xFFFFFFFF == 0:
            raise LinuxError(EINVAL)
        deadline = None
        if timeout:
            sec, nsec = read_timespec(k, timeout)
            absolute = sec * 10**9 + nsec
            if op & FUTEX_CLOCK_REALTIME:
                absolute += k.clock.monotonic() - k.clock.realtime()
            deadline = absolute
        return _wait(k, t, addr, val, deadline, val3 & 0xFFFFFFFF)
    if cmd == FUTEX_WAKE:
        return wake(k, addr, val & 0x7FFFFFFF, 0xFFFFFFFF)
    if cmd == FUTEX_WAKE_BITSET:
        if val3 & 0xFFFFFFFF == 0:
            raise LinuxError(EINVAL)
        return wake(k, addr, val & 0x7FFFFFFF, val3 & 0xFFFFFFFF)
    if cmd in (FUTEX_REQUEUE, FUTEX_CMP_REQUEUE):
        if cmd == FUTEX_CMP_REQUEUE and k.mem.read_u32(addr) != val3 & 0xFFFFFFFF:
            raise LinuxError(EAGAIN)
        woken = wake(k, addr, val & 0x7FFFFFFF, 0xFFFFFFFF)
        limit = timeout & 0x7FFFFFFF   # val2 travels in the timeout slot
        moved = 0
        qs = _queues(k)
        src = qs.get(addr, [])
        while src and moved < limit:
            th, bits = src.pop(0)
            qs.setdefault(addr2, []).append((th, bits))
            th.wait.key = addr2
            moved += 1
        if not src:
            qs.pop(addr, None)
        return woken + (moved if cmd == FUTEX_CMP_REQUEUE else 0)
    raise LinuxError(ENOSYS)
