"""Signals with Linux semantics: dispositions, per-thread masks and pending sets, the x86-64
rt_sigframe (ucontext + siginfo) built on the alternate stack, rt_sigreturn, default actions.

Frame layout and register rules: go114-abi.md §3 (from arch/x86/kernel/signal.c).
"""
from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from unicorn import x86_const as X

from .cpu import EFLAGS, FX_REGS, FXSAVE_SIZE, RAX, RIP, RSP, SIGCONTEXT_REGS, SSE_REGS, RegBatch, \
    fxrstor_sse, fxsave_fast
from .errno import LinuxError
from .record import record
from .thread import Thread

if TYPE_CHECKING:
    from .kernel import Kernel

NSIG = 64
SIG_DFL, SIG_IGN = 0, 1
SA_NOCLDSTOP, SA_NOCLDWAIT, SA_SIGINFO = 1, 2, 4
SA_ONSTACK, SA_RESTART, SA_NODEFER, SA_RESETHAND, SA_RESTORER = \
    0x08000000, 0x10000000, 0x40000000, 0x80000000, 0x04000000
SS_ONSTACK, SS_DISABLE = 1, 2
SI_USER, SI_KERNEL, SI_TKILL = 0, 0x80, -6
SEGV_MAPERR, SEGV_ACCERR = 1, 2
FPE_INTDIV, ILL_ILLOPN, TRAP_BRKPT = 1, 2, 1

NAMES = {
    1: "SIGHUP", 2: "SIGINT", 3: "SIGQUIT", 4: "SIGILL", 5: "SIGTRAP", 6: "SIGABRT", 7: "SIGBUS",
    8: "SIGFPE", 9: "SIGKILL", 10: "SIGUSR1", 11: "SIGSEGV", 12: "SIGUSR2", 13: "SIGPIPE",
    14: "SIGALRM", 15: "SIGTERM", 16: "SIGSTKFLT", 17: "SIGCHLD", 18: "SIGCONT", 19: "SIGSTOP",
    20: "SIGTSTP", 21: "SIGTTIN", 22: "SIGTTOU", 23: "SIGURG", 24: "SIGXCPU", 25: "SIGXFSZ",
    26: "SIGVTALRM", 27: "SIGPROF", 28: "SIGWINCH", 29: "SIGIO", 30: "SIGPWR", 31: "SIGSYS",
}
# What bash prints when a child dies of the signal (strsignal text).
DESCRIPTIONS = {
    1: "Hangup", 2: "Interrupt", 3: "Quit", 4: "Illegal instruction", 5: "Trace/breakpoint trap",
    6: "Aborted", 7: "Bus error", 8: "Floating point exception", 9: "Killed",
    10: "User defined signal 1", 11: "Segmentation fault", 12: "User defined signal 2",
    13: "Broken pipe", 14: "Alarm clock", 15: "Terminated", 16: "Stack fault", 24: "CPU time limit exceeded",
    25: "File size limit exceeded", 26: "Virtual timer expired", 27: "Profiling timer expired",
    29: "I/O possible", 30: "Power failure", 31: "Bad system call",
}
IGNORED_BY_DEFAULT = {17, 18, 23, 28}           # CHLD, CONT, URG, WINCH
STOP_BY_DEFAULT = {19, 20, 21, 22}              # STOP, TSTP, TTIN, TTOU
CORE_BY_DEFAULT = {3, 4, 5, 6, 7, 8, 11, 24, 25, 31}
SIGKILL, SIGSTOP = 9, 19


def name(sig: int) -> str:
    if sig in NAMES:
        return NAMES[sig]
    return f"SIGRT_{sig - 32}" if 32 <= sig <= NSIG else str(sig)


def bit(sig: int) -> int:
    return 1 << (sig - 1)


UNBLOCKABLE = bit(SIGKILL) | bit(SIGSTOP)

_SIGACTION = struct.Struct("<QQQQ")   # handler, flags, restorer, mask (kernel layout, 32 bytes)
_STACK_T = struct.Struct("<QiiQ")     # ss_sp, ss_flags, pad, ss_size (24 bytes)
FRAME_SIZE = 440                      # pretcode + ucontext + siginfo
UC_OFF, MCTX_OFF, SIGMASK_OFF, INFO_OFF = 8, 48, 304, 312
FPSTATE_OFF = MCTX_OFF + 184          # uc_mcontext.fpstate: the FXSAVE image above the frame


@record
class SigAction:
    handler: int = SIG_DFL
    flags: int = 0
    restorer: int = 0
    mask: int = 0

    def pack(self) -> bytes:
        return _SIGACTION.pack(self.handler, self.flags, self.restorer, self.mask)

    @classmethod
    def unpack(cls, data: bytes) -> "SigAction":
        return cls(*_SIGACTION.unpack(data))


def siginfo(signo: int, code: int, addr: int = 0, pid: int = 0, uid: int = 0) -> bytes:
    """A 128-byte siginfo_t: si_addr for faults, or si_pid/si_uid for kill/tkill."""
    if pid or uid:
        union = struct.pack("<iI", pid, uid)
    else:
        union = struct.pack("<Q", addr)
    return (struct.pack("<iii4x", signo, 0, code) + union).ljust(128, b"\0")


def pack_stack_t(sp: int, flags: int, size: int) -> bytes:
    return _STACK_T.pack(sp, flags, 0, size)


def unpack_stack_t(data: bytes) -> tuple[int, int, int]:
    sp, flags, _pad, size = _STACK_T.unpack(data)
    return sp, flags, size


def on_altstack(t: Thread, sp: int) -> bool:
    ss_sp, ss_flags, ss_size = t.altstack
    return not ss_flags & SS_DISABLE and ss_sp < sp <= ss_sp + ss_size


_host_ignored: set[int] | None = None


def host_ignored() -> set[int]:
    """Signals goemu's parent left ignored (nohup: SIGHUP; `prog &` in sh: SIGINT, SIGQUIT; some
    process managers: the real-time signal 32). Linux keeps SIG_IGN across execve, so the guest
    starts with them ignored. Read once, before goemu installs its own handlers, from the kernel's
    own word (/proc/self/status SigIgn): Python's signal module cannot see 32 and 33, which glibc
    reserves. SIGPIPE and SIGXFSZ cannot be told: the Python interpreter sets them to SIG_IGN
    itself before goemu's first line runs, so they start as SIG_DFL."""
    global _host_ignored
    if _host_ignored is None:
        skip = (SIGKILL, SIGSTOP, 13, 25)
        _host_ignored = set()
        try:
            with open("/proc/self/status", "rb") as f:
                line = next(ln for ln in f if ln.startswith(b"SigIgn:"))
            mask = int(line.split()[1], 16)
            _host_ignored = {sig for sig in range(1, NSIG + 1)
                             if mask >> (sig - 1) & 1 and sig not in skip}
        except (OSError, StopIteration, ValueError, IndexError):
            import signal as host
            for sig in range(1, NSIG + 1):
                if sig in skip:
                    continue
                try:
                    if host.getsignal(sig) == host.SIG_IGN:
                        _host_ignored.add(sig)
                except (ValueError, OSError):
                    pass
    return _host_ignored


class Signals:
    """Process-wide dispositions (CLONE_SIGHAND shares them between all threads)."""

    def __init__(self) -> None:
        self.actions = [SigAction() for _ in range(NSIG + 1)]
        for sig in host_ignored():
            self.actions[sig].handler = SIG_IGN

    def ignored(self, sig: int) -> bool:
        act = self.actions[sig]
        return act.handler == SIG_IGN or (act.handler == SIG_DFL and sig in IGNORED_BY_DEFAULT)


def table_of(k: "Kernel", t: Thread) -> Signals:
    return (t.proc or k.main_proc).signals


# ---- sending -----------------------------------------------------------------
def send_thread(k: "Kernel", t: Thread, sig: int, info: bytes) -> None:
    """Make `sig` pending on `t` (tgkill/tkill, faults); interrupt its wait if deliverable."""
    if sig == 0 or t.state == "dead":
        return
    blocked = t.sigmask & bit(sig) and not UNBLOCKABLE & bit(sig)
    if table_of(k, t).ignored(sig) and not blocked:
        return    # Linux discards a signal that is ignored and not blocked at send time
    if sig not in t.pending:        # standard signals do not queue
        t.pending[sig] = info
    if not blocked and t.state == "blocked":
        k.sched.interrupt(t, sig)


def send_process(k: "Kernel", sig: int, info: bytes, proc=None) -> None:
    """kill(pid, sig) or a host signal: pick a thread of the process that does not block it."""
    proc = proc or k.proc
    live = [t for t in k.threads.values() if t.state != "dead" and (t.proc or k.main_proc) is proc]
    if not live:
        return
    target = None
    for t in ([k.current] if k.current in live else []) + live:
        if not t.sigmask & bit(sig):
            target = t
            break
    send_thread(k, target or live[0], sig, info)


def force_fault(k: "Kernel", t: Thread, sig: int, info: bytes) -> None:
    """A synchronous fault: if the signal is blocked or ignored, Linux resets it to the default
    action and unblocks it (force_sig_info), so the thread dies instead of looping."""
    table = table_of(k, t)
    act = table.actions[sig]
    if t.sigmask & bit(sig) or act.handler == SIG_IGN:
        table.actions[sig] = SigAction()
        t.sigmask &= ~bit(sig)
    t.pending[sig] = info


def deliverable(t: Thread) -> int:
    """The lowest pending, unblocked signal (synchronous faults first), or 0."""
    best = 0
    for sig in t.pending:
        if not t.sigmask & bit(sig) or UNBLOCKABLE & bit(sig):
            if sig in (4, 5, 7, 8, 11):
                return sig
            if not best or sig < best:
                best = sig
    return best


# ---- delivery ----------------------------------------------------------------
def deliver(k: "Kernel", t: Thread) -> None:
    """Run before `t` (loaded in the CPU) resumes: set up handler frames or take default actions."""
    while True:
        sig = deliverable(t)
        if not sig:
            return
        info = t.pending.pop(sig)
        act = table_of(k, t).actions[sig]
        if act.handler == SIG_IGN and sig not in (SIGKILL, SIGSTOP):
            continue
        if act.handler == SIG_DFL or sig in (SIGKILL, SIGSTOP):
            if sig in IGNORED_BY_DEFAULT or sig in STOP_BY_DEFAULT:
                continue   # job control stops are not modelled: the guest keeps running
            if t.proc is not None and t.proc is not k.main_proc:
                from .syscalls.process import end_child
                end_child(k, t, sig | (0x80 if sig in CORE_BY_DEFAULT else 0))
                return
            k.terminate_by_signal(sig)
            return
        setup_frame(k, t, sig, act, info)
        k.trace_signal(t, sig, info)


class FrameRegs:
    """The register batches a signal frame reads and writes (one engine call each)."""

    def __init__(self, uc) -> None:
        self.gprs = RegBatch(uc, SIGCONTEXT_REGS + [EFLAGS])
        self.fx = RegBatch(uc, FX_REGS)
        self.sse = RegBatch(uc, SSE_REGS)


def _frame_regs(k: "Kernel") -> FrameRegs:
    fr = getattr(k, "_frame_regs", None)
    if fr is None:
        fr = k._frame_regs = FrameRegs(k.uc)
    return fr


def setup_frame(k: "Kernel", t: Thread, sig: int, act: SigAction, info: bytes) -> None:
    uc, mem = k.uc, k.mem
    fr = _frame_regs(k)
    regs = RegBatch.unpack_u64(fr.gprs.read())
    eflags = regs.pop()
    rsp = regs[15]
    ss_sp, ss_flags, ss_size = t.altstack
    onstack_now = on_altstack(t, rsp)
    if act.flags & SA_ONSTACK and not ss_flags & SS_DISABLE and not onstack_now:
        sp = ss_sp + ss_size
    else:
        sp = rsp - 128        # skip the red zone
    # as Linux's get_sigframe: the FPU state (64-byte aligned) on top, the frame below it
    fpstate = (sp - FXSAVE_SIZE) & ~63
    frame = ((fpstate - FRAME_SIZE) & ~15) - 8
    uc_stack_flags = SS_DISABLE if ss_flags & SS_DISABLE else (SS_ONSTACK if onstack_now else 0)
    sigcontext = struct.pack("<17Q", *regs)
    sigcontext += struct.pack("<QHHHHQQQQQ", eflags, 0x33, 0, 0, 0x2B,
                              k.fault_err, k.fault_trapno, t.sigmask, k.fault_cr2, fpstate)
    sigcontext = sigcontext.ljust(256, b"\0")
    ucontext = struct.pack("<QQ", 6, 0) + pack_stack_t(ss_sp, uc_stack_flags, ss_size) + sigcontext
    ucontext += struct.pack("<Q", t.sigmask)
    data = struct.pack("<Q", act.restorer) + ucontext + info
    assert len(data) == FRAME_SIZE
    try:
        mem.write(fpstate, fxsave_fast(fr.fx))
        mem.write(frame, data)
    except LinuxError:
        # No room for a frame: Linux kills the thread group with SIGSEGV.
        k.terminate_by_signal(11)
        return
    # The handler clobbers SSE/x87 state; keep the interrupted state to restore at sigreturn.
    t.sig_saved[frame] = uc.context_save()
    w = k.regs.write
    w(X.UC_X86_REG_RDI, sig)
    w(X.UC_X86_REG_RSI, frame + INFO_OFF)
    w(X.UC_X86_REG_RDX, frame + UC_OFF)
    w(RAX, 0)
    w(RSP, frame)
    w(RIP, act.handler)
    w(EFLAGS, eflags & ~(0x400 | 0x100 | 0x10000))   # clear DF, TF, RF
    if not act.flags & SA_NODEFER:
        t.sigmask |= bit(sig)
    t.sigmask = (t.sigmask | act.mask) & ~UNBLOCKABLE
    if act.flags & SA_RESETHAND:
        table_of(k, t).actions[sig] = SigAction()


def sigreturn(k: "Kernel", t: Thread) -> None:
    """rt_sigreturn, run after emulation stopped at the syscall (so RIP is not advanced by 2)."""
    uc, mem = k.uc, k.mem
    frame = k.regs.read(RSP) - 8
    try:
        data = mem.read(frame, FRAME_SIZE)
    except LinuxError:
        k.terminate_by_signal(11)
        return
    saved = t.sig_saved.pop(frame, None)
    if saved is not None:
        uc.context_restore(saved)     # SSE/x87/MXCSR (and everything else, overwritten below)
    fr = _frame_regs(k)
    fpstate = struct.unpack_from("<Q", data, FPSTATE_OFF)[0]
    if fpstate:
        try:
            fxrstor_sse(fr.sse, mem.read(fpstate, FXSAVE_SIZE))   # what the handler left there
        except LinuxError:
            k.terminate_by_signal(11)
            return
    regs = list(struct.unpack_from("<17Q", data, MCTX_OFF))
    saved_flags = struct.unpack_from("<Q", data, MCTX_OFF + 136)[0]
    cur = k.regs.read(EFLAGS)
    fr.gprs.write(RegBatch.pack_u64(regs + [(cur & ~0x50DD5) | (saved_flags & 0x50DD5)]))
    t.sigmask = struct.unpack_from("<Q", data, SIGMASK_OFF)[0] & ~UNBLOCKABLE
    ss_sp, ss_flags, ss_size = unpack_stack_t(data[UC_OFF + 16:UC_OFF + 40])
    if not on_altstack(t, k.regs.read(RSP)):
        t.altstack = (ss_sp, ss_flags & SS_DISABLE, ss_size)
    # frames abandoned by handlers that never returned
    if len(t.sig_saved) > 64:
        for key in sorted(t.sig_saved)[:-64]:
            del t.sig_saved[key]

