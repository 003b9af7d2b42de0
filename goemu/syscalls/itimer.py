"""Interval timers: setitimer, getitimer, alarm (the state and its accounting: goemu/itimers.py)."""
from __future__ import annotations

import struct

from ..errno import EINVAL, LinuxError
from ..itimers import ITIMER_REAL, SIGNAL_OF
from . import syscall

_ITIMERVAL = struct.Struct("<qqqq")     # it_interval {sec, usec}, it_value {sec, usec}


def _ns(sec: int, usec: int) -> int:
    if sec < 0 or not 0 <= usec < 1_000_000:
        raise LinuxError(EINVAL)
    return sec * 10**9 + usec * 1000


def _pack(value: int, interval: int) -> bytes:
    # Linux rounds a running timer's remaining time up to the next microsecond
    v_us, i_us = -(-value // 1000), -(-interval // 1000)
    return _ITIMERVAL.pack(i_us // 10**6, i_us % 10**6, v_us // 10**6, v_us % 10**6)


@syscall("getitimer", "int", "ptr")
def getitimer(k, t, which, curr):
    if which not in SIGNAL_OF:
        raise LinuxError(EINVAL)
    k.mem.write(curr, _pack(*k.itimers.get(k, which)))
    return 0


@syscall("setitimer", "int", "ptr", "ptr")
def setitimer(k, t, which, new, old):
    if which not in SIGNAL_OF:
        raise LinuxError(EINVAL)
    value = interval = 0
    if new:
        isec, iusec, vsec, vusec = _ITIMERVAL.unpack(k.mem.read(new, _ITIMERVAL.size))
        interval, value = _ns(isec, iusec), _ns(vsec, vusec)
    prev = k.itimers.set(k, which, value, interval)
    if old:
        k.mem.write(old, _pack(*prev))
    return 0


@syscall("alarm", "uint")
def alarm(k, t, seconds):
    seconds &= 0xFFFFFFFF
    value, _interval = k.itimers.set(k, ITIMER_REAL, seconds * 10**9, 0)
    # the old alarm's seconds, rounded to nearest, and at least 1 if one was pending
    return 0 if not value else max(1, (value + 500_000_000) // 10**9)
