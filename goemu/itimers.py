"""Guest CPU time and the interval timers (setitimer/alarm) that count it or wall time.

goemu runs one guest thread at a time, so a thread's CPU time is the time its slices took
(host seconds, or instructions as virtual nanoseconds under --deterministic). ITIMER_PROF and
ITIMER_VIRTUAL count the process's CPU time and send SIGPROF / SIGVTALRM to the thread that
was running when they expire, with si_code SI_KERNEL as Linux does (Go's validSIGPROF counts
only those as setitimer ticks); ITIMER_REAL counts monotonic time and sends SIGALRM to the
process. This is what makes runtime/pprof's CPU profiles collect samples.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from . import signals

if TYPE_CHECKING:
    from .kernel import Kernel
    from .thread import Thread

ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF = 0, 1, 2
SIGNAL_OF = {ITIMER_REAL: 14, ITIMER_VIRTUAL: 26, ITIMER_PROF: 27}   # SIGALRM, SIGVTALRM, SIGPROF


class ITimers:
    def __init__(self) -> None:
        self.cpu_ns = 0                 # the process's CPU time so far
        # which -> [remaining ns (REAL: absolute monotonic deadline), interval ns]; 0: disarmed
        self.timers = {w: [0, 0] for w in SIGNAL_OF}

    def get(self, k: "Kernel", which: int) -> tuple[int, int]:
        """(value, interval) as getitimer reports them: value is the time left."""
        value, interval = self.timers[which]
        if which == ITIMER_REAL and value:
            value = max(value - k.clock.monotonic(), 1)
        return value, interval

    def set(self, k: "Kernel", which: int, value: int, interval: int) -> tuple[int, int]:
        old = self.get(k, which)
        if which == ITIMER_REAL and value:
            value += k.clock.monotonic()
        self.timers[which] = [value, interval]
        return old

    def charge(self, k: "Kernel", t: "Thread", ns: int) -> None:
        """t ran for `ns` of CPU time: count it, fire the CPU-time timers that expired."""
        if ns <= 0:
            return
        self.cpu_ns += ns
        t.cpu_ns += ns
        t.vruntime += ns
        for which in (ITIMER_VIRTUAL, ITIMER_PROF):
            timer = self.timers[which]
            if not timer[0]:
                continue
            timer[0] -= ns
            if timer[0] <= 0:
                sig = SIGNAL_OF[which]
                signals.send_thread(k, t, sig, signals.siginfo(sig, signals.SI_KERNEL))
                # one signal however many intervals passed (standard signals do not queue)
                timer[0] = timer[1] - (-timer[0] % timer[1]) if timer[1] else 0

    def real_deadline(self) -> int | None:
        return self.timers[ITIMER_REAL][0] or None

    def expire_real(self, k: "Kernel") -> None:
        timer = self.timers[ITIMER_REAL]
        if timer[0] and timer[0] <= k.clock.monotonic():
            signals.send_process(k, 14, signals.siginfo(14, signals.SI_KERNEL), k.main_proc)
            timer[0] = timer[0] + timer[1] if timer[1] else 0
            if timer[1] and timer[0] <= k.clock.monotonic():   # far behind: restart from now
                timer[0] = k.clock.monotonic() + timer[1]
