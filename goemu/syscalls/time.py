"""Clocks and sleeping: clock_gettime, gettimeofday, time, clock_getres, nanosleep,
clock_nanosleep. (Go reads time through the vDSO; these serve the fallbacks and other code.)"""
from __future__ import annotations

import struct

from ..errno import EFAULT, EINVAL, LinuxError
from ..thread import Restart, Wait
from . import BLOCK, syscall

_TIMESPEC = struct.Struct("<qq")
CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_PROCESS_CPUTIME_ID, CLOCK_THREAD_CPUTIME_ID = 0, 1, 2, 3
CLOCK_MONOTONIC_RAW, CLOCK_REALTIME_COARSE, CLOCK_MONOTONIC_COARSE, CLOCK_BOOTTIME = 4, 5, 6, 7
TIMER_ABSTIME = 1


def read_timespec(k, addr: int) -> tuple[int, int]:
    sec, nsec = _TIMESPEC.unpack(k.mem.read(addr, 16))
    if sec < 0 or not 0 <= nsec < 10**9:
        raise LinuxError(EINVAL)
    return sec, nsec


def write_timespec(k, addr: int, ns: int) -> None:
    k.mem.write(addr, _TIMESPEC.pack(ns // 10**9, ns % 10**9))


def clock_now(k, clockid: int) -> int:
    clockid &= 0xFFFFFFFF
    if clockid in (CLOCK_REALTIME, CLOCK_REALTIME_COARSE, 11):   # 11: CLOCK_TAI
        return k.clock.realtime()
    if clockid in (CLOCK_MONOTONIC, CLOCK_MONOTONIC_RAW, CLOCK_MONOTONIC_COARSE, CLOCK_BOOTTIME):
        return k.clock.monotonic()
    if clockid == CLOCK_PROCESS_CPUTIME_ID:
        return k.itimers.cpu_ns       # the guest's own CPU time (goemu/itimers.py)
    if clockid == CLOCK_THREAD_CPUTIME_ID:
        return k.current.cpu_ns if k.current is not None else 0
    raise LinuxError(EINVAL)


@syscall("clock_gettime", "clockid", "ptr")
def clock_gettime(k, t, clockid, ts):
    write_timespec(k, ts, clock_now(k, clockid))
    return 0


@syscall("clock_getres", "clockid", "ptr")
def clock_getres(k, t, clockid, ts):
    clock_now(k, clockid)
    if ts:
        write_timespec(k, ts, 1)
    return 0


@syscall("gettimeofday", "ptr", "ptr")
def gettimeofday(k, t, tv, tz):
    now = k.clock.realtime()
    if tv:
        k.mem.write(tv, struct.pack("<qq", now // 10**9, (now % 10**9) // 1000))
    if tz:
        k.mem.write(tz, b"\0" * 8)
    return 0


@syscall("time", "ptr")
def time_(k, t, tloc):
    now = k.clock.realtime() // 10**9
    if tloc:
        k.mem.write_u64(tloc, now)
    return now


def _sleep_until(k, t, deadline: int, nr: int):
    if deadline <= k.clock.monotonic():
        return 0
    k.sched.block(t, Wait("sleep", deadline, Restart.EINTR, nr, None, 0))
    return BLOCK


@syscall("nanosleep", "ptr", "ptr")
def nanosleep(k, t, req, rem):
    if not req:
        raise LinuxError(EFAULT)
    sec, nsec = read_timespec(k, req)
    return _sleep_until(k, t, k.clock.monotonic() + sec * 10**9 + nsec, 35)


@syscall("clock_nanosleep", "clockid", "int", "ptr", "ptr")
def clock_nanosleep(k, t, clockid, flags, req, rem):
    sec, nsec = read_timespec(k, req)
    now = clock_now(k, clockid)
    ns = sec * 10**9 + nsec
    delta = ns - now if flags & TIMER_ABSTIME else ns
    return _sleep_until(k, t, k.clock.monotonic() + max(delta, 0), 230)
