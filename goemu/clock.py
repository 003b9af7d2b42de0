"""Guest time: the host's clocks, or a virtual clock for --deterministic runs.

The guest reads time from the vDSO's vvar page, which the scheduler refreshes (``publish``)
before each slice of execution. With the virtual clock, time advances only with executed work
(a fixed cost per full slice and per syscall) and jumps over idle time when every guest thread
waits, so the same input gives the same interleaving, output and syscall log.
"""
from __future__ import annotations

import select
import time

# The virtual clock starts here (2020-04-01T00:00:00Z, the era of Go 1.14) so output that
# prints dates is reproducible too.
VIRTUAL_EPOCH_NS = 1_585_699_200 * 10**9
NS_PER_INSN = 1            # virtual cost of one guest instruction
NS_PER_SYSCALL = 500       # virtual cost of one syscall


class HostClock:
    deterministic = False

    def __init__(self) -> None:
        self._mono0 = time.monotonic_ns()
        self.boot_offset = self._mono0 - 10**9 * 3600  # pretend the machine booted an hour ago

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
