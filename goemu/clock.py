"""Guest time: the host's clocks, or a virtual clock for --deterministic runs.

The guest reads time from the vDSO's vvar page (``vvar()``), which the kernel refreshes before
each slice of execution. On the host clock the page also carries the host TSC and its rate, so
the vDSO extrapolates and every clock read is current (without it, time would stand still for
a whole slice: a 2 ms ticker measured 5 ticks as less than 10 ms under load). With the virtual
clock, time advances only with executed work (a fixed cost per full slice and per syscall) and
jumps over idle time when every guest thread waits, so the same input gives the same
interleaving, output and syscall log; its page has no rate, so time stands still in a slice.
"""
from __future__ import annotations

import select
import time

from .vdso import vvar_bytes

# The virtual clock starts here (2020-04-01T00:00:00Z, the era of Go 1.14) so output that
# prints dates is reproducible too.
VIRTUAL_EPOCH_NS = 1_585_699_200 * 10**9
NS_PER_INSN = 1            # virtual cost of one guest instruction
NS_PER_SYSCALL = 500       # virtual cost of one syscall


def _tsc_is_clocksource() -> bool:
    """Is the host TSC what the host kernel keeps time with (so it is invariant and the same on
    every CPU)? Then the guest may extrapolate from it."""
    try:
        with open("/sys/devices/system/clocksource/clocksource0/current_clocksource") as f:
            return f.read().strip() == "tsc"
    except OSError:
        return False


CALIBRATION_NS = 2_000_000     # extrapolate only once the TSC rate is known from >= 2 ms


class HostClock:
    deterministic = False

    def __init__(self) -> None:
        self._mono0 = time.monotonic_ns()
        self.boot_offset = self._mono0 - 10**9 * 3600  # pretend the machine booted an hour ago
        self._rdtsc = None
        if _tsc_is_clocksource():
            from .native import rdtsc
            self._rdtsc = rdtsc
            self._cal = (rdtsc(), time.monotonic_ns())
        self._page = (0, 0, 0, 0)     # what the guest was last given: real, mono, tsc, mult
        self._seq = 0                 # the page's sequence number (the vDSO's seqcount)

    def vvar(self) -> bytes:
        """The vvar page's data for the next slice."""
        real, mono_host = time.time_ns(), time.monotonic_ns()
        mono = mono_host - self.boot_offset
        if self._rdtsc is None:
            self._seq += 1
            return vvar_bytes(real, mono, seq=self._seq)
        tsc = self._rdtsc()
        tsc0, ns0 = self._cal
        mult = ((mono_host - ns0) << 32) // (tsc - tsc0) if mono_host - ns0 >= CALIBRATION_NS and tsc > tsc0 else 0
        # never behind what the guest may have read from the last page (monotonic means monotonic)
        preal, pmono, ptsc, pmult = self._page
        if pmult and tsc > ptsc:
            seen = pmono + (((tsc - ptsc) * pmult) >> 32)
            if seen > mono:
                real += seen - mono
                mono = seen
        self._page = (real, mono, tsc, mult)
        self._seq += 1
        return vvar_bytes(real, mono, tsc, mult, self._seq)

    def monotonic(self) -> int:
        return time.monotonic_ns() - self.boot_offset

    def realtime(self) -> int:
        return time.time_ns()

    def slice_done(self, insns: int) -> None:
        pass

    def syscall_done(self) -> None:
        pass

    def idle_until(self, deadline: int | None, rfds: list[int], wfds: list[int],
                   max_wait_s: float = 0.5) -> None:
        """Nothing to run: wait on the host until the earliest guest deadline (monotonic ns)
        or until one of the host fds that blocked threads poll becomes ready."""
        delay = max_wait_s if deadline is None else min((deadline - self.monotonic()) / 1e9, max_wait_s)
        if delay <= 0:
            return
        if rfds or wfds:
            _wait_fds(rfds, wfds, delay)
        else:
            time.sleep(delay)


class VirtualClock:
    deterministic = True

    def __init__(self) -> None:
        self.now = 3600 * 10**9

    def monotonic(self) -> int:
        return self.now

    def vvar(self) -> bytes:
        # no rate: time moves between slices only; the page changes only when the time does
        return vvar_bytes(self.realtime(), self.now, seq=self.now)

    def realtime(self) -> int:
        return VIRTUAL_EPOCH_NS + self.now

    def slice_done(self, insns: int) -> None:
        self.now += insns * NS_PER_INSN

    def syscall_done(self) -> None:
        self.now += NS_PER_SYSCALL

    def idle_until(self, deadline: int | None, rfds: list[int], wfds: list[int],
                   max_wait_s: float = 0.5) -> None:
        """Jump over idle time; only host events (outside input) can make a wait end early."""
        if (rfds or wfds) and _wait_fds(rfds, wfds, 0 if deadline is not None else max_wait_s):
            return
        if deadline is not None and deadline > self.now:
            self.now = deadline
        elif deadline is None and not (rfds or wfds):
            time.sleep(max_wait_s)


def _wait_fds(rfds: list[int], wfds: list[int], timeout: float) -> bool:
    try:
        r, w, _ = select.select(rfds, wfds, [], timeout)
    except (OSError, ValueError):
        return True     # a closed fd: let the pollers find out
    return bool(r or w)
