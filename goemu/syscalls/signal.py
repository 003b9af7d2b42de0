"""Signal syscalls: rt_sigaction, rt_sigprocmask, sigaltstack, rt_sigreturn, kill, tkill,
tgkill, rt_sigpending, rt_sigsuspend, pause."""
from __future__ import annotations

import os

from .. import signals as S
from ..errno import EINVAL, ENOMEM, EPERM, ESRCH, LinuxError
from ..thread import Restart, Wait
from . import BLOCK, NORESULT, syscall

MINSIGSTKSZ = 2048


def _check_sig(sig: int) -> int:
    sig &= 0xFFFFFFFF
    if not 1 <= sig <= S.NSIG:
        raise LinuxError(EINVAL)
    return sig


@syscall("rt_sigaction", "sig", "ptr", "ptr", "size")
def rt_sigaction(k, t, sig, act, oact, size):
    if size != 8:
        raise LinuxError(EINVAL)
    sig = _check_sig(sig)
    new = S.SigAction.unpack(k.mem.read(act, 32)) if act else None
    if new is not None and sig in (S.SIGKILL, S.SIGSTOP):
        raise LinuxError(EINVAL)
    if oact:
        k.mem.write(oact, k.signals.actions[sig].pack())
    if new is not None:
        new.mask &= ~S.UNBLOCKABLE
        k.signals.actions[sig] = new
        if k.signals.ignored(sig):   # setting SIG_IGN discards pending instances
            for th in k.threads.values():
                th.pending.pop(sig, None)
    return 0


@syscall("rt_sigprocmask", "sighow", "ptr", "ptr", "size")
def rt_sigprocmask(k, t, how, set_, oset, size):
    if size != 8:
        raise LinuxError(EINVAL)
    new = k.mem.read_u64(set_) if set_ else None
    if oset:
        k.mem.write_u64(oset, t.sigmask)
    if new is not None:
        if how == 0:
            t.sigmask |= new
        elif how == 1:
            t.sigmask &= ~new
        elif how == 2:
            t.sigmask = new
        else:
            raise LinuxError(EINVAL)
        t.sigmask &= ~S.UNBLOCKABLE
        if t.pending and S.deliverable(t):
            k.stop("signal")     # newly unblocked signals are delivered before the call returns
    return 0


@syscall("sigaltstack", "ptr", "ptr")
def sigaltstack(k, t, ss, oss):
    rsp = k.uc.reg_read(S.RSP)
    on = S.on_altstack(t, rsp)
    if oss:
        sp, flags, size = t.altstack
        k.mem.write(oss, S.pack_stack_t(sp, S.SS_ONSTACK if on else flags, size))
    if ss:
        sp, flags, size = S.unpack_stack_t(k.mem.read(ss, 24))
        if on:
            raise LinuxError(EPERM)
        if flags & ~(S.SS_DISABLE | 0x80000000):
            raise LinuxError(EINVAL)
        if flags & S.SS_DISABLE:
            t.altstack = (0, S.SS_DISABLE, 0)
        else:
            if size < MINSIGSTKSZ:
                raise LinuxError(ENOMEM)
            t.altstack = (sp, 0, size)
    return 0


@syscall("rt_sigreturn")
def rt_sigreturn(k, t):
    k.stop("sigreturn", then=lambda: S.sigreturn(k, t))
    return NORESULT


def _sender_info(k, sig: int, code: int) -> bytes:
    return S.siginfo(sig, code, pid=k.pid, uid=os.getuid())


@syscall("kill", "int", "sig")
def kill(k, t, pid, sig):
    pid = pid - (1 << 64) if pid >> 63 else pid
    sig &= 0xFFFFFFFF
    if sig > S.NSIG:
        raise LinuxError(EINVAL)
    child = k.children.get(abs(pid))
    if child is not None and not child.reaped:
        if child.host_pid:
            try:
                os.kill(child.host_pid if pid > 0 else -child.host_pid, sig)
            except ProcessLookupError:
                pass   # exited, not yet reaped: a zombie takes signals silently
            except OSError as e:
                raise LinuxError(e.errno) from None
        elif child.proc is not None and sig:
            S.send_process(k, sig, _sender_info(k, sig, S.SI_USER), child.proc)
        return 0
    if pid not in (k.pid, 0, -1, -k.pid):
        raise LinuxError(ESRCH)
    if sig:
        S.send_process(k, sig, _sender_info(k, sig, S.SI_USER))
        k.stop("signal")
    return 0


def _tkill(k, t, tid: int, sig: int):
    sig &= 0xFFFFFFFF
    if sig > S.NSIG:
        raise LinuxError(EINVAL)
    target = k.threads.get(tid & 0xFFFFFFFF)
    if target is None or target.state == "dead":
        raise LinuxError(ESRCH)
    if sig:
        S.send_thread(k, target, sig, _sender_info(k, sig, S.SI_TKILL))
        if target is t:
            k.stop("signal")
    return 0


@syscall("tgkill", "int", "int", "sig")
def tgkill(k, t, tgid, tid, sig):
    if tgid & 0xFFFFFFFF != k.pid:
        raise LinuxError(ESRCH)
    return _tkill(k, t, tid, sig)


@syscall("tkill", "int", "sig")
def tkill(k, t, tid, sig):
    return _tkill(k, t, tid, sig)


@syscall("rt_sigpending", "ptr", "size")
def rt_sigpending(k, t, set_, size):
    mask = 0
    for sig in t.pending:
        mask |= S.bit(sig)
    k.mem.write_u64(set_, mask & t.sigmask)
    return 0


@syscall("rt_sigsuspend", "ptr", "size")
def rt_sigsuspend(k, t, set_, size):
    if size != 8:
        raise LinuxError(EINVAL)
    # Linux restores the previous mask when the handler returns; goemu keeps the suspend mask
    # (a known gap: Go does not use rt_sigsuspend).
    t.sigmask = k.mem.read_u64(set_) & ~S.UNBLOCKABLE
    k.sched.block(t, Wait("sigsuspend", None, Restart.EINTR, 130, None, 0, None))
    if t.pending and S.deliverable(t):
        k.sched.wake(t, -4)
        return NORESULT
    return BLOCK


@syscall("pause")
def pause(k, t):
    k.sched.block(t, Wait("pause", None, Restart.EINTR, 34))
    return BLOCK
