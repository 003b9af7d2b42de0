"""The guest-thread scheduler: which thread runs next on the one CPU, who waits for what.

Guest threads take turns on one Unicorn instance. A thread runs until it blocks in a syscall
(futex wait, nanosleep, ...), yields, or uses up its slice of N instructions (``emu_start``'s
``count``), the only stop that is both exact and safe for the Go runtime (go114-abi.md §8.6).
Blocked threads wait for a wake-up, a deadline, or a signal; switching happens only after
``emu_start`` has returned, never inside a Unicorn callback.
"""
from __future__ import annotations

import heapq
import itertools
from collections import deque
from typing import TYPE_CHECKING

from .cpu import RAX, RIP
from .errno import EINTR
from .signals import SA_RESTART
from .thread import BLOCKED, DEAD, RUNNABLE, Restart, Thread, Wait

if TYPE_CHECKING:
    from .kernel import Kernel


class Scheduler:
    """Round robin of time slices, plus Linux's wake-up preemption (CFS, check_preempt_wakeup).

    goemu has one CPU where the guest expects several. Natively a futex wake-up of an idle
    thread lets the wakee run at once on another CPU while the waker goes on. Here the wakee
    would wait for the waker's slice to end, and a waker that loops (a stop-the-world in a
    ReadMemStats loop restarting every Ps' M and stopping them again) keeps every wakee from
    ever making progress: a livelock no native run shows. So, as CFS does, each thread has a
    virtual runtime (its CPU time; a woken sleeper is credited up to 1.5 slices behind its waker)
    and a wakee that has run more than half a slice less than its waker preempts it: the wakee
    runs next, the waker goes to the back of the queue. Threads that wake each other in turn
    have like runtimes and switch only at slice ends, so ping-pong costs no extra switches.
    """

    def __init__(self, k: "Kernel") -> None:
        self.k = k
        self.runq: deque[Thread] = deque()
        self.timers: list[tuple[int, int, Thread, Wait]] = []
        self.pollers: set[Thread] = set()
        self._seq = itertools.count()
        self.slice_units(2_000_000)

    def slice_units(self, quantum: int) -> None:
        self.wakeup_gran = quantum // 2
        self.sleeper_credit = quantum * 3 // 2

    # ---- state changes -----------------------------------------------------
    def add(self, t: Thread) -> None:
        t.state = RUNNABLE
        self.runq.append(t)

    def block(self, t: Thread, wait: Wait) -> None:
        t.state = BLOCKED
        t.wait = wait
        if wait.deadline is not None:
            heapq.heappush(self.timers, (wait.deadline, next(self._seq), t, wait))
        if wait.poll is not None:
            self.pollers.add(t)

    def wake(self, t: Thread, result: int | None, waker: Thread | None = None,
             first: bool = False) -> None:
        """End t's wait; RAX gets `result` (None: leave registers alone). A running `waker`
        (futex wake) is preempted by a wakee far enough behind it in CPU time; `first`: t
        runs next."""
        if t.state != BLOCKED:
            return
        w = t.wait
        if w is not None and w.cancel is not None:
            w.cancel()
        self.pollers.discard(t)
        t.wait = None
        if result is not None:
            self.k.set_reg(t, RAX, result & 0xFFFFFFFFFFFFFFFF)
            if self.k.strace is not None and w is not None:
                self.k.strace.resumed(t, w.nr, result)
        t.state = RUNNABLE
        if waker is None or waker.state != RUNNABLE or waker is t:
            if first:
                self.runq.appendleft(t)
            else:
                self.runq.append(t)
            return
        t.vruntime = max(t.vruntime, waker.vruntime - self.sleeper_credit)
        if waker.vruntime - t.vruntime > self.wakeup_gran and self.k.stop_reason is None:
            self.runq.appendleft(t)
            self.k.stop("preempt")
        else:
            self.runq.append(t)

    def interrupt(self, t: Thread, sig: int) -> None:
        """A deliverable signal arrived for a blocked thread: end the wait as Linux would."""
        w = t.wait
        if w is None or w.uninterruptible:
            return
        table = (t.proc or self.k.main_proc).signals
        act = table.actions[sig]
        if table.ignored(sig):
            return
        if w.restart is Restart.IF_SA_RESTART and act.flags & SA_RESTART and act.handler > 1:
            # Restart: resume at the syscall instruction with the original number in RAX.
            self.wake(t, None)
            self.k.set_reg(t, RAX, w.nr)
            self.k.set_reg(t, RIP, self.k.get_reg(t, RIP) - 2)
        else:
            self.wake(t, -EINTR)

    def exit(self, t: Thread) -> None:
        if t.wait is not None:
            self.wake(t, None)
        t.state = DEAD
        try:
            self.runq.remove(t)
        except ValueError:
            pass

    # ---- choosing ----------------------------------------------------------
    def expire_timers(self) -> None:
        now = self.k.clock.monotonic()
        while self.timers and self.timers[0][0] <= now:
            _, _, t, w = heapq.heappop(self.timers)
            if t.state == BLOCKED and t.wait is w:
                self.wake(t, w.on_timeout)
        for t in list(self.pollers):
            w = t.wait
            if w is None or w.poll is None:
                self.pollers.discard(t)
                continue
            value = w.poll()
            if value is not None:
                # The poll did the syscall's work (epoll_wait harvested its events, a read took
                # the data): the thread runs next, as a woken thread returns at once on Linux.
                # Behind other threads, an epoll_wait's events could go stale before Go's
                # netpoll reads them (a pollDesc closed and reused meanwhile: Go 1.19 then
                # marks the new fd "not pollable"; os TestReadNonblockingFd failed 1 in 3).
                self.wake(t, value, first=True)

    def next_deadline(self) -> int | None:
        while self.timers:
            _, _, t, w = self.timers[0]
            if t.state == BLOCKED and t.wait is w:
                return self.timers[0][0]
            heapq.heappop(self.timers)
        return None

    def poll_fds(self) -> tuple[list[int], list[int]]:
        """Host fds that blocked threads wait on: (for reading, for writing)."""
        rfds, wfds = [], []
        for t in self.pollers:
            w = t.wait
            if w is not None and w.host_fd is not None:
                (wfds if w.host_write else rfds).append(w.host_fd)
        return rfds, wfds

    def pick(self) -> Thread | None:
        self.expire_timers()
        while self.runq:
            t = self.runq.popleft()
            if t.state == RUNNABLE:
                return t
        return None
