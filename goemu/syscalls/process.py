"""New processes: vfork-style clone, execve, wait4, waitid (see goemu.process for the model)."""
from __future__ import annotations

import os
import stat
import struct

from .. import signals as S
from ..cpu import RAX, RIP, RSP
from ..errno import (EACCES, ECHILD, EINVAL, EIO, ENOEXEC, ENOSYS, EPERM, ESRCH, LinuxError,
                     from_oserror)
from ..fdtable import PASS_FDS_ENV
from ..process import Child, Process, child_siginfo, fork_exec, wait_status_exit
from ..thread import Restart, Wait
from . import BLOCK, NORESULT, PARTIAL, syscall

CLONE_VM, CLONE_VFORK = 0x100, 0x4000
WNOHANG, WUNTRACED, WEXITED, WNOWAIT = 1, 2, 4, 0x1000000
P_ALL, P_PID, P_PGID = 0, 1, 2


def vfork(k, t, flags: int, stack: int) -> int:
    """clone(CLONE_VM|CLONE_VFORK|SIGCHLD): a child context sharing memory, with copies of the
    fd table and dispositions; the parent sleeps until the child execs or exits."""
    if flags & (CLONE_VM | CLONE_VFORK) != CLONE_VM | CLONE_VFORK:
        raise LinuxError(ENOSYS)
    uc = k.uc
    parent_proc = t.proc or k.main_proc
    child = k.new_thread()
    fds = parent_proc.fds.borrow()
    sigs = S.Signals()
    sigs.actions = [S.SigAction(a.handler, a.flags, a.restorer, a.mask) for a in parent_proc.signals.actions]
    child.proc = Process(child.tid, fds, sigs, parent_proc.cwd, vfork_parent=t,
                         pgid=parent_proc.pgid, creds=parent_proc.creds)
    ctx = uc.context_save()
    ctx.reg_write(RIP, uc.reg_read(RIP) + 2)
    ctx.reg_write(RAX, 0)
    if stack:
        ctx.reg_write(RSP, stack)
    child.ctx = ctx
    child.sigmask = t.sigmask
    child.name = "vfork"
    k.children[child.tid] = Child(child.tid, child.proc)
    k.sched.add(child)
    k.sched.block(t, Wait("vfork", None, Restart.EINTR, 56, child.tid, uninterruptible=True))
    return BLOCK


def end_child(k, t, wait_status: int) -> None:
    """The vfork child `t` ends (exit, or a fatal signal) before or instead of execve."""
    record = k.children.get(t.proc.pid)
    if record is not None:
        record.status = wait_status
        record.proc = None
    _release_parent(k, t)
    t.proc.fds.close_all()
    k.sched.exit(t)
    k.stop("exit")


def _release_parent(k, t) -> None:
    parent = t.proc.vfork_parent
    if parent is not None:
        t.proc.vfork_parent = None
        k.sched.wake(parent, t.proc.pid)


@syscall("execve", "str", "ptr", "ptr", level=PARTIAL,
         note="from a vfork child (Go's os/exec): the program starts as a host process; from "
              "the emulated process itself: goemu's process becomes the program (under goemu "
              "again with --follow-exec)")
def execve(k, t, path_p, argv_p, envp_p):
    proc = t.proc
    if proc is None or proc.vfork_parent is None:
        return _execve_self(k, t, path_p, argv_p, envp_p)
    path = k.mem.read_cstr(path_p)
    argv = [k.mem.read_cstr(p, 1 << 17) for p in k.mem.read_ptr_array(argv_p)] if argv_p else []
    envp = [k.mem.read_cstr(p, 1 << 17) for p in k.mem.read_ptr_array(envp_p)] if envp_p else []
    fd_map = {n: e.host for n, e in proc.fds.fds.items() if not e.cloexec}
    ignored = [sig for sig in range(1, 65) if proc.signals.actions[sig].handler == S.SIG_IGN]
    exe_fd = -1
    cwd = proc.cwd
    if k.sandbox is not None:
        argv = argv or [path]
        path, argv, envp, exe_fd = _sandboxed(k, proc.cwd, path, argv, envp, fd_map)
        cwd = None
        under_goemu = True
    else:
        if proc.cwd is not None and not path.startswith(b"/"):
            path = os.path.join(proc.cwd, path)
        argv = argv or [path]
        # a tracer (SysProcAttr.Ptrace) must see the real program, not goemu running it
        under_goemu = k.opts.follow_exec and not proc.traceme and _runs_under_goemu(path)
        if under_goemu:
            path, argv, envp = _goemu_command(k, path, argv, envp, sorted(fd_map))
    if under_goemu:
        # Credentials: the child goemu starts as goemu is (the interpreter may be where the
        # new user cannot read) and takes them on itself once loaded, before the guest runs;
        # then the parent-death signal, which a credential change would clear.
        if proc.creds is not None or proc.pdeathsig:
            at = argv.index(b"run") + 1
            argv = argv[:at] + [b"-U", BECOME_ENV.encode()] + argv[at:]
            envp = [e for e in envp if not e.startswith(BECOME_ENV.encode() + b"=")]
            envp.append(BECOME_ENV.encode() + b"=" + encode_become(proc, os.getpid()))
    try:
        host_pid = fork_exec(path, argv, envp, cwd, fd_map, t.sigmask, ignored, proc,
                             creds=not under_goemu, rlimits=getattr(k, "rlimits", None))
    except OSError as e:   # goemu's own pipe or fork failed (EMFILE, EAGAIN): execve's errno
        raise from_oserror(e) from None
    finally:
        if exe_fd >= 0:
            os.close(exe_fd)
    record = k.children[proc.pid]
    record.host_pid = host_pid
    record.traced = proc.traceme
    record.pgid = os.getpgrp() if proc.pgid is None else proc.pgid or host_pid
    record.proc = None
    try:
        record.pidfd = os.pidfd_open(host_pid)
    except OSError:
        record.pidfd = -1
    k.note(f"execve {path.decode(errors='replace')}: host process {host_pid} is guest pid {proc.pid}")
    # exec succeeded: the child's guest context is gone; its fds now live in the host process
    _release_parent(k, t)
    proc.fds.close_all()
    k.sched.exit(t)
    k.stop("exit")
    return NORESULT


def _execve_self(k, t, path_p, argv_p, envp_p):
    """syscall.Exec: the emulated program replaces itself. goemu's own process (whose pid the
    guest has) execs the new program; with --follow-exec a static x86-64 one runs under goemu
    again, with this run's options."""
    from ..process import exec_self
    proc = k.main_proc
    path = k.mem.read_cstr(path_p)
    argv = [k.mem.read_cstr(p, 1 << 17) for p in k.mem.read_ptr_array(argv_p)] if argv_p else []
    envp = [k.mem.read_cstr(p, 1 << 17) for p in k.mem.read_ptr_array(envp_p)] if envp_p else []
    fd_map = {n: e.host for n, e in proc.fds.fds.items() if not e.cloexec}
    ignored = [sig for sig in range(1, 65) if proc.signals.actions[sig].handler == S.SIG_IGN]
    argv = argv or [path]
    target = path
    exe_fd = -1
    if k.sandbox is not None:
        target, argv, envp, exe_fd = _sandboxed(k, None, path, argv, envp, fd_map)
    elif k.opts.follow_exec and _runs_under_goemu(path):
        target, argv, envp = _goemu_command(k, path, argv, envp, sorted(fd_map))
    k.note(f"execve {path.decode(errors='replace')}: goemu's process becomes it")
    try:
        exec_self(target, argv, envp, fd_map, t.sigmask, ignored,   # returns only with an errno
                  rlimits=getattr(k, "rlimits", None))
    finally:
        if exe_fd >= 0:
            os.close(exe_fd)
    return 0


def _sandboxed(k, cwd: bytes | None, path: bytes, argv: list[bytes], envp: list[bytes],
               fd_map: dict[int, int]):
    """execve under a sandbox: EACCES with --no-exec; else the program, found inside the root,
    runs under goemu with the same confinement (never a host program). It is opened here and
    handed over as an fd (no path is looked up again); fd_map gains it. Returns (program, argv,
    envp, the opened fd)."""
    from ..loader import BadExecutable, read_image
    from . import confined
    from .fsbase import AT_FDCWD
    sb = k.sandbox
    if sb.exec == "none":
        raise LinuxError(EACCES)
    guest = path if path.startswith(b"/") else (cwd or sb.cwd).rstrip(b"/") + b"/" + path
    tg = confined.resolve(k, AT_FDCWD, guest, follow=True)
    if tg.node is not None or tg.device:
        raise LinuxError(EACCES)
    try:
        fd = os.open(tg.path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise from_oserror(e) from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode) or not os.access(tg.path, os.X_OK):
            raise LinuxError(EACCES)
        read_image(f"/proc/self/fd/{fd}")
    except BadExecutable:
        os.close(fd)
        raise LinuxError(ENOEXEC) from None
    except BaseException:
        os.close(fd)
        raise
    shown = tg.guest or guest
    prog, cmd, envp = _goemu_command(k, shown, argv, envp, sorted(fd_map))
    slot = max([2, *fd_map]) + 1
    fd_map[slot] = fd
    at = cmd.index(b"run") + 1
    extra = [b"--root", sb.root.host, b"--net", sb.net.encode(), b"--keep-env",
             b"--guest-cwd", cwd or sb.cwd, b"--exe-fd", b"%d" % slot]
    for m in sb.binds:
        extra += [b"--bind", m.host + b":" + m.guest + (b":ro" if m.ro else b"")]
    return prog, cmd[:at] + extra + cmd[at:], envp, fd


BECOME_ENV = "GOEMU_BECOME"


def encode_become(proc, parent: int) -> bytes:
    """uid/gid sets, groups, parent-death signal and parent pid for a --follow-exec child."""
    c = proc.creds
    ids = [c.ruid, c.euid, c.suid, c.rgid, c.egid, c.sgid] if c is not None else []
    groups = list(c.groups) if c is not None and c.groups_set else None
    return (",".join(map(str, ids)) + ";" + ("-" if groups is None else ",".join(map(str, groups)))
            + f";{proc.pdeathsig};{parent}").encode()


def become_from_env() -> None:
    """In a --follow-exec child goemu, once everything it needs is loaded: take on the
    credentials and parent-death signal its guest parent's vfork child set (GOEMU_BECOME)."""
    from ..process import set_pdeathsig
    spec = os.environ.pop(BECOME_ENV, "")
    if not spec:
        return
    ids, groups, sig, parent = spec.split(";")
    if ids:
        ruid, euid, suid, rgid, egid, sgid = map(int, ids.split(","))
        if groups != "-":
            os.setgroups([int(g) for g in groups.split(",") if g])
        os.setresgid(rgid, egid, sgid)
        os.setresuid(ruid, euid, suid)
    if int(sig):
        set_pdeathsig(int(sig), int(parent))


def _runs_under_goemu(path: bytes) -> bool:
    from ..loader import BadExecutable, read_image
    try:
        read_image(os.fsdecode(path))
    except BadExecutable:
        return False
    return os.access(path, os.X_OK)


def _goemu_command(k, path: bytes, argv: list[bytes], envp: list[bytes], fds: list[int]):
    """--follow-exec: the child is a static x86-64 binary, so run it under goemu as well, with
    this run's options; the guest's environment stays the child's (goemu's own import path is
    added for goemu and removed again for the guest, and so is the list of fds >= 3 the child
    inherits, which its goemu adopts: goemu.fdtable.FdTable.adopt_passed)."""
    import sys
    root = os.fsencode(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    cmd = [os.fsencode(sys.executable), b"-m", b"goemu", b"run", b"--follow-exec", b"--exit-by-signal",
           b"--argv0", argv[0]]
    if k.opts.strace:
        cmd.append(b"--strace")
    if k.opts.verbose:
        cmd.append(b"-v")
    if k.opts.deterministic:
        cmd.append(b"--deterministic")
    if k.opts.cpus:
        cmd += [b"--cpus", str(k.opts.cpus).encode()]
    if not any(e.startswith(b"LC_CTYPE=") for e in envp):
        cmd += [b"-U", b"LC_CTYPE"]        # Python's own locale coercion (PEP 538) is not the guest's
    if not any(e.startswith(b"PYTHONPATH=") for e in envp):
        cmd += [b"-U", b"PYTHONPATH"]
        envp = envp + [b"PYTHONPATH=" + root]
    passed = [n for n in fds if n >= 3]
    key = PASS_FDS_ENV.encode() + b"="
    envp = [e for e in envp if not e.startswith(key)]
    if passed:
        cmd += [b"-U", PASS_FDS_ENV.encode()]
        envp = envp + [key + b",".join(str(n).encode() for n in passed)]
    cmd += [b"--", path, *argv[1:]]
    return os.fsencode(sys.executable), cmd, envp


def _find(k, pid: int) -> list[Child]:
    """wait's pid argument: -1 any child, 0 those in the caller's process group, < -1 those
    in group -pid, else that child."""
    live = [c for c in k.children.values() if not c.reaped]
    if pid == -1:
        return live
    if pid <= 0:
        from .proc import _host_id
        group = os.getpgrp() if pid == 0 else _host_id(k, -pid)
        return [c for c in live if child_pgid(c) == group]
    return [c for c in live if c.pid == pid]


def child_pgid(c: Child) -> int:
    """The host process group of a child (kept once known: a reaped child has none left)."""
    if c.host_pid and c.status is None:
        try:
            c.pgid = os.getpgid(c.host_pid)
        except OSError:
            pass
    if c.pgid is not None:
        return c.pgid
    proc = c.proc
    if proc is not None and proc.pgid is not None:
        return proc.pgid or -1   # 0: its own new group, no host pid yet
    return os.getpgrp()


def _rusage_bytes(child: Child) -> bytes:
    if not child.rusage:
        return b"\0" * 144
    ru = list(child.rusage)
    def tv(x: float) -> tuple[int, int]:
        return int(x), int((x - int(x)) * 1e6)
    return struct.pack("<qqqq14q", *tv(ru[0]), *tv(ru[1]), *[int(v) for v in ru[2:16]])


def _wait(k, t, pid: int, options: int, nr: int, deliver) -> int:
    """deliver(child, status, stopped) reports one child; stopped: a ptrace stop, which the
    child's tracer (the guest: goemu is the host tracer) sees without WUNTRACED."""
    candidates = _find(k, pid)
    if not candidates:
        raise LinuxError(ECHILD)

    def check() -> int | None:
        for c in candidates:
            if c.poll():
                return deliver(c, c.status, False)
            if c.stop is not None:
                if options & WNOWAIT:
                    return deliver(c, c.stop, True)
                stop = c.take_stop()
                if stop is not None:
                    return deliver(c, stop, True)
                if c.status is not None:
                    return deliver(c, c.status, False)
        return None

    result = check()
    if result is not None:
        return result
    if options & WNOHANG:
        return 0
    fds = [c.pidfd for c in candidates if c.pidfd >= 0]
    host_fd, cancel = fds[0] if len(fds) == 1 else None, None
    if len(candidates) == 1 and candidates[0].traced and candidates[0].host_pid:
        try:
            host_fd, cancel = candidates[0].event_fd()   # its ptrace stops too
        except (OSError, RuntimeError):
            pass   # no helper: woken when anything else wakes goemu, or at its exit
    k.sched.block(t, Wait("wait", None, Restart.IF_SA_RESTART, nr, pid, poll=check,
                          host_fd=host_fd, cancel=cancel))
    return BLOCK


@syscall("wait4", "int", "ptr", "hex", "ptr")
def wait4(k, t, pid, status_p, options, rusage_p):
    pid &= 0xFFFFFFFF
    pid = pid - (1 << 32) if pid & 0x80000000 else pid

    def deliver(c: Child, status: int, stopped: bool) -> int:
        if not stopped:
            c.reap()
            status = c.status
        if status_p:
            k.mem.write_u32(status_p, status)
        if rusage_p:
            k.mem.write(rusage_p, _rusage_bytes(c))
        if not stopped:
            c.reaped = True
        return c.pid
    return _wait(k, t, pid, options, 61, deliver)


@syscall("waitid", "int", "int", "ptr", "hex", "ptr")
def waitid(k, t, idtype, id_, infop, options, rusage_p):
    if idtype == P_PID:
        pid = id_ & 0xFFFFFFFF
    elif idtype == P_ALL:
        pid = -1
    elif idtype == P_PGID:
        pgid = id_ & 0xFFFFFFFF
        if pgid >> 31:
            raise LinuxError(EINVAL)
        pid = -pgid   # 0: the caller's group, as wait4(0)
    else:
        raise LinuxError(EINVAL)
    if not options & WEXITED:
        raise LinuxError(EINVAL)

    def deliver(c: Child, status: int, stopped: bool) -> int:
        if not stopped and not options & WNOWAIT:
            c.reap()
            status = c.status
        if infop:
            k.mem.write(infop, child_siginfo(c.pid, status))
        if rusage_p:
            k.mem.write(rusage_p, _rusage_bytes(c))
        if not stopped and not options & WNOWAIT:
            c.reaped = True
        return 0
    return _wait(k, t, pid, options, 247, deliver)


# ---- ptrace: only of host children that asked for it (SysProcAttr.Ptrace) ------------------------
PTRACE_TRACEME = 0
PTRACE_PEEKTEXT, PTRACE_PEEKDATA, PTRACE_PEEKUSER = 1, 2, 3
PTRACE_POKETEXT, PTRACE_POKEDATA, PTRACE_POKEUSER = 4, 5, 6
PTRACE_CONT, PTRACE_KILL, PTRACE_SINGLESTEP = 7, 8, 9
PTRACE_GETREGS, PTRACE_SETREGS, PTRACE_GETFPREGS, PTRACE_SETFPREGS = 12, 13, 14, 15
PTRACE_ATTACH, PTRACE_DETACH, PTRACE_SYSCALL, PTRACE_SEIZE = 16, 17, 24, 0x4206
PTRACE_SETOPTIONS, PTRACE_GETEVENTMSG = 0x4200, 0x4201
USER_REGS_SIZE, USER_FPREGS_SIZE = 27 * 8, 512
_PLAIN = (PTRACE_POKETEXT, PTRACE_POKEDATA, PTRACE_POKEUSER, PTRACE_CONT, PTRACE_KILL,
          PTRACE_SINGLESTEP, PTRACE_DETACH, PTRACE_SYSCALL, PTRACE_SETOPTIONS)
_DATA_IN = {PTRACE_SETREGS: USER_REGS_SIZE, PTRACE_SETFPREGS: USER_FPREGS_SIZE}
_DATA_OUT = {PTRACE_PEEKTEXT: 8, PTRACE_PEEKDATA: 8, PTRACE_PEEKUSER: 8, PTRACE_GETEVENTMSG: 8,
             PTRACE_GETREGS: USER_REGS_SIZE, PTRACE_GETFPREGS: USER_FPREGS_SIZE}


@syscall("ptrace", "int", "int", "hex", "hex", level=PARTIAL,
         note="PTRACE_TRACEME in a vfork child (SysProcAttr.Ptrace: its host process is traced "
              "by goemu for the guest); peek/poke, regs, cont/syscall/singlestep/kill/detach, "
              "setoptions, geteventmsg on such children; attaching is EPERM")
def ptrace(k, t, request, pid, addr, data):
    import ctypes
    request &= 0xFFFFFFFF
    if request == PTRACE_TRACEME:
        proc = t.proc
        if proc is None or proc.vfork_parent is None:
            raise LinuxError(EPERM)   # goemu's own parent cannot become the guest's tracer
        if proc.traceme or k.sandbox is not None:
            raise LinuxError(EPERM)   # (a sandbox's children run under goemu: not traceable)
        proc.traceme = True
        return 0
    if request in (PTRACE_ATTACH, PTRACE_SEIZE):
        raise LinuxError(EPERM)
    pid &= 0xFFFFFFFF
    pid = pid - (1 << 32) if pid & 0x80000000 else pid
    child = k.children.get(pid)
    if child is None or child.reaped or not child.traced or not child.host_pid or child.status is not None:
        raise LinuxError(ESRCH)
    from ..hostio import _libc
    if request in _PLAIN:
        args = (addr, data)
        out = None
    elif request in _DATA_IN:
        out = ctypes.create_string_buffer(k.mem.read(data, _DATA_IN[request]), _DATA_IN[request])
        args = (addr, ctypes.addressof(out))
        out = None
    elif request in _DATA_OUT:
        out = ctypes.create_string_buffer(_DATA_OUT[request])
        args = (addr, ctypes.addressof(out))
    else:
        raise LinuxError(EIO)
    r = _libc.syscall(ctypes.c_long(101), ctypes.c_long(request), ctypes.c_long(child.host_pid),
                      ctypes.c_ulong(args[0]), ctypes.c_ulong(args[1]))
    if r < 0:
        raise LinuxError(ctypes.get_errno())
    if out is not None:
        k.mem.write(data, out.raw)
    if request in (PTRACE_CONT, PTRACE_SYSCALL, PTRACE_SINGLESTEP, PTRACE_DETACH, PTRACE_KILL):
        child.stop = None
    if request == PTRACE_DETACH:
        child.traced = False
    return 0


__all__ = ["wait_status_exit", "vfork", "end_child"]
