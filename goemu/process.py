"""Guest processes and the host processes their children become.

The guest is one process with many threads. Go's os/exec adds a second, short-lived one: a
``clone(CLONE_VM|CLONE_VFORK|SIGCHLD)`` child that shares the memory (it even runs on the
parent's stack), has its *own* copy of the fd table and of the signal dispositions, shuffles
fds, and calls ``execve``. goemu runs that child as another guest context until ``execve``,
then starts the program as a real host process with exactly the child's fds, environment,
cwd, signal mask and ignored signals. The guest parent, suspended meanwhile (vfork), resumes
with the child's pid; ``wait4``/``waitid``/``kill`` on that pid reach the host process.

What the child does to itself before execve that outlives the exec -- setsid, setpgid, its
credentials (setgroups/setgid/setuid), PTRACE_TRACEME -- is recorded on its ``Process`` and
done by the host process just before it execs. The child's fds are the parent's host fds,
borrowed (goemu.fdtable): only the host process dups them into place, in its own process, so
no fd of a file the guest holds fcntl locks on is ever closed in goemu's process.
"""
from __future__ import annotations

import ctypes
import errno as host_errno
import os
import resource
import signal
import stat
import struct
from typing import TYPE_CHECKING, Callable

from .errno import LinuxError
from .record import record

if TYPE_CHECKING:
    from .fdtable import FdTable
    from .signals import Signals
    from .thread import Thread


@record
class Creds:
    """A vfork child's credentials (the main process's are the host's own)."""
    ruid: int
    euid: int
    suid: int
    rgid: int
    egid: int
    sgid: int
    groups: tuple[int, ...]
    groups_set: bool = False                 # setgroups was called: apply at exec

    @classmethod
    def of_host(cls) -> "Creds":
        return cls(*os.getresuid(), *os.getresgid(), tuple(os.getgroups()))


@record(eq=False)
class Process:
    pid: int
    fds: "FdTable"
    signals: "Signals"
    cwd: bytes | None = None                 # None: goemu's own cwd (the main process)
    vfork_parent: "Thread | None" = None     # the suspended parent of a vfork child
    # what a vfork child did to itself, for its host process to redo before it execs
    setsid: bool = False
    pgid: int | None = None                  # host pgid (0: its own pid) after setpgid
    creds: Creds | None = None               # None: unchanged (the host's)
    traceme: bool = False                    # PTRACE_TRACEME
    pdeathsig: int = 0                       # PR_SET_PDEATHSIG of the vfork child


@record(eq=False)
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
    traced: bool = False                      # PTRACE_TRACEME: its stops are reported to wait
    stop: int | None = None                   # wait status of a ptrace stop not yet waited for
    pgid: int | None = None                   # host process group, last seen (for wait(-pgid))
    host_reaped: bool = False                 # the host zombie is gone (the guest waited)

    def poll(self) -> bool:
        """Has it ended? It stays a zombie on the host until the guest waits for it (`reap`),
        as natively: its pid and process group stay taken meanwhile. A pending ptrace stop is
        only looked at (`stop`), never consumed here: a SIGKILL before the guest waits makes
        it vanish, as natively."""
        if self.status is not None:
            return True
        if not self.host_pid:
            return False
        try:
            info = os.waitid(os.P_PID, self.host_pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            self.status = 0
            self.host_reaped = True
            return True
        if info is None:
            self.stop = None
            return False
        if info.si_code in (os.CLD_TRAPPED, os.CLD_STOPPED):   # only a tracee reports these
            self.stop = (info.si_status & 0xFF) << 8 | 0x7F
            return False
        self.stop = None
        self._note_pgid()
        code, value = info.si_code, info.si_status
        self.status = (value & 0xFF) << 8 if code == os.CLD_EXITED else \
            (value & 0x7F) | (0x80 if code == os.CLD_DUMPED else 0)
        return True

    def reap(self) -> None:
        """The guest has waited for it: reap the host zombie (exact status, rusage)."""
        if not self.host_pid or self.host_reaped:
            return
        self.host_reaped = True
        try:
            pid, status, rusage = os.wait4(self.host_pid, 0)
        except OSError:
            return
        if pid == self.host_pid and not os.WIFSTOPPED(status):
            self._ended(status, rusage)

    def _note_pgid(self) -> None:
        try:   # a zombie still has its group; once reaped, wait(-pgid) needs it from here
            self.pgid = os.getpgid(self.host_pid)
        except OSError:
            pass

    def _ended(self, status: int, rusage) -> None:
        self.status = status
        self.rusage = tuple(rusage)[:16]
        if self.pidfd >= 0:
            os.close(self.pidfd)
            self.pidfd = -1

    def take_stop(self) -> int | None:
        """Consume the pending ptrace stop: its exact wait status (with the PTRACE_EVENT bits),
        or None if the child ended meanwhile (then `status` is set)."""
        self.stop = None
        self._note_pgid()
        try:
            pid, status, _ = os.wait4(self.host_pid, os.WNOHANG)
        except ChildProcessError:
            self.status = 0
            return None
        if pid == 0:
            return None
        if os.WIFSTOPPED(status):
            return status
        self.host_reaped = True
        self._ended(status, _)
        return None

    def event_fd(self) -> tuple[int, "Callable[[], None]"]:
        """A host fd that turns readable when the child has something for wait (a pidfd only
        does for its end, not for a ptrace stop), and the function that closes it. A helper
        thread sleeps in waitid(WNOWAIT) for a traced child."""
        import threading
        r, w = os.pipe2(os.O_CLOEXEC)
        pid = self.host_pid

        def watch() -> None:
            try:
                os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
            except OSError:
                pass
            os.close(w)   # EOF: readable

        threading.Thread(target=watch, name=f"goemu-wait-{pid}", daemon=True).start()
        return r, lambda: os.close(r)


_LIBC = ctypes.CDLL(None, use_errno=True)


def _exec_state(fd_map: dict[int, int], sigmask: int, ignored: list[int], keep: int = -1,
                rlimits: dict | None = None) -> None:
    """Just before an execve on the host: fd i becomes host fd fd_map[i] and every other fd
    but `keep` is closed (two phases, so that no target number clobbers a source still
    needed); dispositions are reset, the guest's ignored signals stay ignored, the signal
    mask is the guest thread's, and the resource limits goemu lifted for itself (RLIMIT_AS,
    RLIMIT_NOFILE: goemu/hostlimits.py) are the guest's again, as the program inherits them."""
    if rlimits:
        for res, (soft, hard) in rlimits.items():
            inf = resource.RLIM_INFINITY
            try:
                resource.setrlimit(res, (inf if soft >= 1 << 63 else soft, inf if hard >= 1 << 63 else hard))
            except (OSError, ValueError):
                pass
    base = max([*fd_map.values(), *fd_map.keys(), keep, 2]) + 1
    staged = {}
    for i, (target, src) in enumerate(sorted(fd_map.items())):
        os.dup2(src, base + i, inheritable=False)
        staged[target] = base + i
    for fd in range(0, base):
        if fd != keep and fd not in staged:
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
            raw_disposition(sig, sig in ignored)
    signal.pthread_sigmask(signal.SIG_SETMASK, [s for s in range(1, 65) if sigmask >> (s - 1) & 1
                                                and s not in (9, 19)])


def raw_disposition(sig: int, ignore: bool) -> None:
    """rt_sigaction straight to the kernel, for the signals glibc refuses to touch (32, 33): a
    host process must start with exactly the guest's SIG_IGN set."""
    if sig in (signal.SIGKILL, signal.SIGSTOP):
        return
    act = (ctypes.c_ulong * 4)(1 if ignore else 0, 0, 0, 0)   # handler, flags, restorer, mask
    _LIBC.syscall(13, sig, ctypes.byref(act), None, 8)


def exec_self(path: bytes, argv: list[bytes], envp: list[bytes], fd_map: dict[int, int], sigmask: int,
              ignored: list[int], rlimits: dict | None = None) -> None:
    """execve from the emulated process itself: goemu's own process becomes `path` (same pid,
    as Linux's execve), with fd i the guest's host fd fd_map[i], the guest's blocked and
    ignored signals, and nothing else of goemu left. Returns only if execve failed before any
    of that was done (the errno is raised as LinuxError); past that point a failure ends the
    process as Linux does (SIGSEGV's status, as its "point of no return")."""
    import sys
    try:
        st = os.stat(path)
    except OSError as e:
        raise LinuxError(e.errno) from None
    if stat.S_ISDIR(st.st_mode) or not stat.S_ISREG(st.st_mode) or not os.access(path, os.X_OK):
        raise LinuxError(host_errno.EACCES)
    with open(path, "rb") as f:
        head = f.read(4)
    if head != b"\x7fELF" and head[:2] != b"#!":
        raise LinuxError(host_errno.ENOEXEC)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    try:
        _exec_state(fd_map, sigmask, ignored, rlimits=rlimits)
        os.execve(path, argv, dict(_split_env(envp)))
    finally:
        os._exit(128 + 11)


def fork_exec(path: bytes, argv: list[bytes], envp: list[bytes], cwd: bytes | None,
              fd_map: dict[int, int], sigmask: int, ignored: list[int],
              proc: Process | None = None, creds: bool = True, rlimits: dict | None = None) -> int:
    """Start `path` as a host process whose fd i is host fd fd_map[i]; return its pid or raise
    LinuxError with the errno execve failed with. `proc` (the vfork child) brings its session,
    process group, credentials and PTRACE_TRACEME."""
    r, w = os.pipe2(os.O_CLOEXEC)
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:   # the host child: only async-signal-safe work, then exec
        try:
            os.close(r)
            if proc is not None:
                _become(proc, parent, creds)
            if cwd is not None:
                os.chdir(cwd)
            _exec_state(fd_map, sigmask, ignored, keep=w, rlimits=rlimits)
            if proc is not None and proc.traceme:
                if _LIBC.ptrace(0, 0, None, None) != 0:   # PTRACE_TRACEME: goemu is the tracer
                    raise OSError(ctypes.get_errno(), "ptrace")
            os.execve(path, argv, dict(_split_env(envp)))
        except OSError as e:
            os.write(w, struct.pack("<i", e.errno or host_errno.ENOEXEC))
        except Exception:   # e.g. an id Python will not convert: report, never a traceback
            os.write(w, struct.pack("<i", host_errno.EINVAL))
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


def _become(proc: Process, parent: int = 0, creds: bool = True) -> None:
    """In the forked host child: what the vfork child did to itself, in Go's order (the
    parent-death signal last: changing credentials clears it)."""
    if proc.setsid:
        os.setsid()
    if proc.pgid is not None:
        os.setpgid(0, proc.pgid)
    c = proc.creds
    if c is not None and creds:
        apply_creds(c)
    if proc.pdeathsig:
        set_pdeathsig(proc.pdeathsig, parent)


def apply_creds(c: "Creds") -> None:
    if c.groups_set:
        os.setgroups(list(c.groups))
    os.setresgid(c.rgid, c.egid, c.sgid)
    os.setresuid(c.ruid, c.euid, c.suid)


def set_pdeathsig(sig: int, parent: int) -> None:
    """PR_SET_PDEATHSIG, and if the parent has already gone, the signal now (as Go's
    forkAndExecInChild does)."""
    _LIBC.prctl(1, ctypes.c_ulong(sig), 0, 0, 0)   # PR_SET_PDEATHSIG
    if parent and os.getppid() != parent:
        os.kill(os.getpid(), sig)


def _split_env(envp: list[bytes]):
    for item in envp:
        key, sep, value = item.partition(b"=")
        if sep:
            yield key, value


def wait_status_exit(code: int) -> int:
    return (code & 0xFF) << 8


def child_siginfo(pid: int, status: int) -> bytes:
    """The SIGCHLD siginfo_t for a child that ended with wait status `status` (as waitid
    fills it and as SIGCHLD carries it): si_code CLD_EXITED/KILLED/DUMPED (CLD_TRAPPED for a
    ptrace stop), si_pid, si_uid, si_status."""
    if os.WIFSIGNALED(status):
        code, value = (3 if os.WCOREDUMP(status) else 2), os.WTERMSIG(status)
    elif os.WIFSTOPPED(status):   # a ptrace stop: CLD_TRAPPED
        code, value = 4, os.WSTOPSIG(status)
    else:
        code, value = 1, os.WEXITSTATUS(status)
    return struct.pack("<iii4xiIi", 17, 0, code, pid, os.getuid(), value).ljust(128, b"\0")
