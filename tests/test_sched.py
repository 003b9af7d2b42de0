"""The scheduler's policy on a fake kernel: who runs next after a wake-up.

Whole-program consequences are tested elsewhere (stwloop in test_programs: the livelock
wake-up preemption ends; the os package's TestReadNonblockingFd in the conformance suite: an
epoll_wait's events consumed at once). Here, the rules themselves."""
from __future__ import annotations

from goemu.cpu import RAX
from goemu.sched import Scheduler
from goemu.thread import BLOCKED, RUNNABLE, Restart, Thread, Wait

SLICE = 2_000_000


class FakeKernel:
    def __init__(self):
        self.stop_reason = None
        self.stops = []
        self.strace = None
        self.regs = {}
        self.now = 0
        self.clock = self

    def monotonic(self):
        return self.now

    def set_reg(self, t, reg, value):
        self.regs[(t.tid, reg)] = value

    def stop(self, reason, then=None):
        self.stop_reason = reason
        self.stops.append(reason)


def _setup(n):
    k = FakeKernel()
    s = Scheduler(k)
    s.slice_units(SLICE)
    threads = [Thread(tid) for tid in range(1, n + 1)]
    return k, s, threads


def _block(s, t, **kw):
    s.block(t, Wait("futex", None, Restart.EINTR, 202, 0, 0, **kw))
    assert t.state == BLOCKED


def test_a_wakee_far_behind_preempts_its_waker():
    k, s, (waker, other, wakee) = _setup(3)
    waker.vruntime, other.vruntime, wakee.vruntime = 50 * SLICE, 49 * SLICE, 0
    s.add(other)
    _block(s, wakee)
    s.wake(wakee, 0, waker=waker)
    assert k.stops == ["preempt"]                       # the waker's slice ends now
    assert list(s.runq) == [wakee, other]               # and the wakee runs next
    # the sleeper's credit is bounded: 1.5 slices behind its waker, not its whole sleep
    assert wakee.vruntime == waker.vruntime - SLICE * 3 // 2


def test_threads_that_wake_each_other_in_turn_do_not_preempt():
    k, s, (a, b) = _setup(2)
    a.vruntime, b.vruntime = 10 * SLICE, 10 * SLICE - SLICE // 4   # a quarter slice apart
    _block(s, b)
    s.wake(b, 0, waker=a)
    assert k.stops == [] and list(s.runq) == [b]         # b waits for a's slice to end


def test_a_wake_without_a_running_waker_queues_at_the_back():
    k, s, (a, b) = _setup(2)
    s.add(a)
    _block(s, b)
    s.wake(b, 0)                                         # a timer, a signal: no waker
    assert k.stops == [] and list(s.runq) == [a, b]


def test_a_thread_whose_poll_did_the_work_runs_next():
    """An epoll_wait woken by its poll has harvested its events: it must run before any other
    thread can close and reuse the fds those events name."""
    k, s, (a, b, poller) = _setup(3)
    s.add(a)
    s.add(b)
    _block(s, poller, poll=lambda: 2)
    s.expire_timers()
    assert poller.state == RUNNABLE and k.regs[(poller.tid, RAX)] == 2
    assert s.pick() is poller
    assert list(s.runq) == [a, b]
