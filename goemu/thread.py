"""Guest threads as data: each is a saved CPU context plus the kernel state Linux keeps per task."""
from __future__ import annotations

from enum import Enum
from typing import Any, Callable

from .record import field, record

RUNNABLE, BLOCKED, DEAD = "runnable", "blocked", "dead"


class Restart(Enum):
    """What an interrupted blocking syscall does when a signal handler runs (Linux semantics)."""
    EINTR = 0          # return -EINTR (nanosleep, epoll_wait, timed futex waits)
    IF_SA_RESTART = 1  # restart if the handler has SA_RESTART, else -EINTR (read, untimed futex)


@record
class Wait:
    """Why a blocked thread waits: a futex word, a sleep, a host fd, ... Signals interrupt it
    unless `uninterruptible` (a vfork parent waits for its child no matter what)."""
    what: str                         # for views/strace: "futex", "nanosleep", ...
    deadline: int | None = None       # monotonic ns, or None: forever
    restart: Restart = Restart.EINTR
    nr: int = 0                       # the syscall number, for restarts
    key: Any = None                   # e.g. futex address
    on_timeout: int = 0               # value RAX gets when the deadline passes (e.g. -ETIMEDOUT)
    cancel: Callable[[], None] | None = None  # removes the thread from wait queues
    poll: Callable[[], int | None] | None = None  # re-checked by the scheduler; a value wakes
    host_fd: int | None = None        # a host fd whose readiness may make `poll` succeed
    host_write: bool = False          # ... readiness for writing rather than reading
    uninterruptible: bool = False


@record(eq=False)
class FsState:
    """A thread's own working directory after unshare(CLONE_FS) (threads cloned from it with
    CLONE_FS share it). The process's is goemu's own cwd."""
    cwd: bytes


@record(eq=False)
class Thread:
    tid: int
    ctx: Any = None                   # UcContext while not loaded in the CPU
    state: str = RUNNABLE
    sigmask: int = 0
    pending: dict[int, bytes] = field(default_factory=dict)   # signo -> siginfo (128 bytes)
    altstack: tuple[int, int, int] = (0, 2, 0)                 # (ss_sp, ss_flags, ss_size); 2 = SS_DISABLE
    wait: Wait | None = None
    clear_child_tid: int = 0
    sig_saved: dict[int, Any] = field(default_factory=dict)   # frame address -> FP/SSE context
    syscalls: int = 0
    slice_used: float = 0             # of the current time slice (seconds or instructions)
    cpu_ns: int = 0                   # CPU time this thread has used (goemu/itimers.py)
    vruntime: int = 0                 # cpu_ns, with a woken sleeper's credit (goemu/sched.py)
    keepcaps: int = 0                 # PR_SET_KEEPCAPS (per thread, copied by clone)
    fs: Any = None                    # a FsState after unshare(CLONE_FS); None: the process's
    name: str = ""
    proc: Any = None                  # the goemu.process.Process it belongs to

    @property
    def runnable(self) -> bool:
        return self.state == RUNNABLE
