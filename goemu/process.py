"""Guest processes and the host processes their children become.

The guest is one process with many threads. Go's os/exec adds a second, short-lived one: a
``clone(CLONE_VM|CLONE_VFORK|SIGCHLD)`` child that shares the memory (it even runs on the
parent's stack), has its *own* copy of the fd table and of the signal dispositions, shuffles
fds, and calls ``execve``. goemu runs that child as another guest context until ``execve``,
then starts the program as a real host process with exactly the child's fds, environment,
cwd, signal mask and ignored signals. The guest parent, suspended meanwhile (vfork), resumes
with the child's pid; ``wait4``/``waitid``/``kill`` on that pid reach the host process.
"""
from __future__ import annotations

import errno as host_errno
import os
import signal
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errno import LinuxError

if TYPE_CHECKING:
    from .fdtable import FdTable
    from .signals import Signals
    from .thread import Thread


@dataclass(eq=False)
class Process:
    pid: int
    fds: "FdTable"
    signals: "Signals"
    cwd: bytes | None = None                 # None: goemu's own cwd (the main process)
    vfork_parent: "Thread | None" = None     # the suspended parent of a vfork child


@dataclass(eq=False)
class Child:
    """A child of the guest: first a vfork context, then (after execve) a host process."""
    pid: int                                  # the pid the guest sees
    proc: Process | None = None               # while it is still a guest context
    host_pid: int = 0                         # after execve
    pidfd: int = -1
    status: int | None = None                 # wait status, once it has ended
    rusage: tuple = ()
    reaped: bool = False
    notified: bool = False                    # SIGCHLD sent

    def poll(self) -> bool:
        """Has it ended? (Reaps the host process and keeps its status.)"""
        if self.status is not None:
            return True
        if not self.host_pid:
            return False
        try:
            pid, status, rusage = os.wait4(self.host_pid, os.WNOHANG)
        except ChildProcessError:
            self.status = 0
            return True
        if pid == 0:
            return False
        self.status = status
        self.rusage = tuple(rusage)[:16]
        if self.pidfd >= 0:
            os.close(self.pidfd)
            self.pidfd = -1
        return True


def fork_exec(path: bytes, argv: list[bytes], envp: list[bytes], cwd: bytes | None,
              fd_map: dict[int, int], sigmask: int, ignored: list[int]) -> int:
    """Start `path` as a host process whose fd i is host fd fd_map[i]; return its pid or raise
    LinuxError with the errno execve failed with."""
    r, w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:   # the host child: only async-signal-safe work, then exec
        try:
            os.close(r)
            if cwd is not None:
                os.chdir(cwd)
            # two phases so that no target number clobbers a source still needed
            base = max([*fd_map.values(), *fd_map.keys(), w, 2]) + 1
            staged = {}
            for i, (target, src) in enumerate(sorted(fd_map.items())):
                os.dup2(src, base + i, inheritable=False)
                staged[target] = base + i
            for fd in range(0, base):
                if fd != w and fd not in staged:
                    try:
                        os.close(fd)
                    except OSError:
                        pass
            for target, tmp in staged.items():
                os.dup2(tmp, target, inheritable=True)
                os.close(tmp)
            for sig in range(1, signal.NSIG):
                try:
                    signal.signal(sig, signal.SIG_IGN if sig in ignored else signal.SIG_DFL)
                except (OSError, ValueError):
                    pass
            signal.pthread_sigmask(signal.SIG_SETMASK, [s for s in range(1, 65) if sigmask >> (s - 1) & 1
                                                        and s not in (9, 19)])
            os.execve(path, argv, dict(_split_env(envp)))
        except OSError as e:
            os.write(w, struct.pack("<i", e.errno or host_errno.ENOEXEC))
        finally:
            os._exit(127)
    os.close(w)
    data = b""
    while True:
        chunk = os.read(r, 4)
        if not chunk:
            break
        data += chunk
    os.close(r)
    if data:
        os.waitpid(pid, 0)
        raise LinuxError(struct.unpack("<i", data[:4])[0])
    return pid


def _split_env(envp: list[bytes]):
    for item in envp:
        key, sep, value = item.partition(b"=")
        if sep:
            yield key, value


def wait_status_exit(code: int) -> int:
    return (code & 0xFF) << 8


def child_siginfo(pid: int, status: int) -> bytes:
    """The SIGCHLD siginfo_t for a child that ended with wait status `status` (as waitid
    fills it and as SIGCHLD carries it): si_code CLD_EXITED/KILLED/DUMPED, si_pid, si_uid,
    si_status."""
    if os.WIFSIGNALED(status):
        code, value = (3 if os.WCOREDUMP(status) else 2), os.WTERMSIG(status)
    else:
        code, value = 1, os.WEXITSTATUS(status)
    return struct.pack("<iii4xiIi", 17, 0, code, pid, os.getuid(), value).ljust(128, b"\0")
