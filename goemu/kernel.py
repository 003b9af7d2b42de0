"""The emulated process and its run loop: goemu playing the Linux kernel for one Go program.

Hooks on the normal path: the ``syscall`` instruction and CPU interrupts (int3, divide error) in
Python; the TLB fill hook (page permissions, goemu/memory.py) and the time-slice block hook
(goemu/slicer.py) in native code. No Python runs per instruction, per block or per memory
access; a refused TLB fill (a fault) ends ``emu_start`` with UC_ERR_EXCEPTION.
"""
from __future__ import annotations

import os
import sys
import time

from unicorn import (UC_ERR_EXCEPTION, UC_ERR_FETCH_PROT, UC_ERR_FETCH_UNMAPPED,
                     UC_ERR_INSN_INVALID, UC_ERR_READ_PROT, UC_ERR_READ_UNMAPPED,
                     UC_ERR_WRITE_PROT, UC_ERR_WRITE_UNMAPPED, UC_HOOK_INSN, UC_HOOK_INTR,
                     UcError)
from unicorn import x86_const as X

from . import signals
from .clock import HostClock, VirtualClock
from .cpu import RIP, Gpr, hook_rdtsc, make_uc, reset_registers
from .fdtable import FdTable
from .itimers import ITimers
from .process import Child, Process, child_siginfo
from .hostio import HostSignals
from .hostlimits import guest_as_limit
from .loader import auxv_bytes, build_stack, load, read_image
from .memory import UC_MEM_FETCH, UC_MEM_WRITE, Memory
from .record import record
from .sched import Scheduler
from .slicer import TimeSlicer, CountSlicer
from .strace import Strace
from .thread import DEAD, Thread
from .vdso import VVAR_ADDR

DEFAULT_SLICE = 200_000   # guest instructions per slice, --deterministic (count) slicing
DEFAULT_TIMESLICE_MS = 2.0  # host milliseconds per slice, normal (watchdog) slicing


class GuestExit(Exception):
    pass


@record
class Options:
    strace: bool = False
    verbose: bool = False
    deterministic: bool = False
    slice: int = DEFAULT_SLICE
    timeslice_ms: float = DEFAULT_TIMESLICE_MS
    follow_exec: bool = False          # run exec'd static x86-64 binaries under goemu too
    exit_by_signal: bool = False       # die of the guest's fatal signal instead of exit(128+N)
    exact: bool = False                # instruction-count slices (tracing, debugging) without
                                       # the virtual clock
    cpus: int = 0                      # 0: the host's count
    rlimits: dict | None = None        # the guest's limits where goemu lifted its own (hostlimits.py)
    trace_out: object = None           # where --strace and notes go (default stderr)
    sandbox: object = None             # goemu.sandbox.Sandbox under --root
    exe_name: str | None = None        # the guest's name of its executable (AT_EXECFN, maps)


class Kernel:
    def __init__(self, path: str, argv: list[str], env: list[str], opts: Options):
        self.opts = opts
        self.image = read_image(path)        # raises BadExecutable
        self.exe_path = os.path.realpath(path)
        if opts.exe_name:
            self.image.path = opts.exe_name
        self.sandbox = opts.sandbox
        self.uc = make_uc()
        self.regs = Gpr(self.uc)
        self.mem = Memory(self.uc)
        # the guest's own limits (goemu lifts its RLIMIT_AS for itself: goemu/hostlimits.py);
        # RLIMIT_AS bounds the guest's VMAs from the first segment on, as Linux's execve
        self.rlimits = dict(opts.rlimits or {})
        self.mem.as_limit = guest_as_limit(self.rlimits)
        load(self.mem, self.image)               # raises ExecFailed past the point of no return
        self.deterministic = opts.deterministic
        self.clock = VirtualClock() if opts.deterministic else HostClock()
        self.pid = 1000 if opts.deterministic else os.getpid()
        self.ncpus = opts.cpus or (os.cpu_count() or 1)
        random16 = bytes(range(16)) if opts.deterministic else os.urandom(16)
        self.argv = [a.encode("utf-8", "surrogateescape") for a in argv]
        self.envp = [e.encode("utf-8", "surrogateescape") for e in env]
        rsp = build_stack(self.mem, self.image, self.argv, self.envp, random16)
        self.auxv = auxv_bytes(self.mem, rsp)
        reset_registers(self.uc, self.image.entry, rsp)
        self.main_proc = Process(self.pid, FdTable.from_host_stdio(), signals.Signals())
        self.children: dict[int, Child] = {}
        self.sched = Scheduler(self)
        self.itimers = ITimers()
        self.ignore_host_signals_after = False   # goemu run: the process ends with the guest
        self.threads: dict[int, Thread] = {}
        self._next_tid = self.pid
        main = self.new_thread()
        main.proc = self.main_proc
        main.ctx = self.uc.context_save()
        main.name = "main"
        self.loaded: Thread | None = main
        self.current: Thread | None = main
        self.sched.add(main)
        self.out = opts.trace_out or sys.stderr
        self.strace = Strace(self, self.out) if opts.strace else None
        self.exit_status: int | None = None
        self.killed_by = 0
        self.stop_reason: str | None = None
        self.after_stop = None
        self.fault: tuple | None = None
        self.fault_cr2 = self.fault_err = self.fault_trapno = 0
        self._noted: set[int] = set()
        self.host_signals: HostSignals | None = None
        self.slices = 0
        # hook points for a debugger (goemu/engine.py): a check between slices (True pauses the
        # run as a "break"), host fds that end an idle wait, a look at a thread's pending
        # signals before delivery (True holds the thread, signals pending)
        self.debug_poll = None
        self.debug_fds: list[int] = []
        self.signal_stop = None
        self._install_hooks()
        if opts.deterministic or opts.exact:
            self.slicer = CountSlicer(self.uc, opts.slice)
        else:
            self.slicer = TimeSlicer(self.uc, opts.timeslice_ms / 1000.0)
        # a slice in the unit threads' CPU time is charged in (ns; instructions when deterministic)
        self.sched.slice_units(opts.slice if opts.deterministic else int(opts.timeslice_ms * 1e6))

    # ---- processes ---------------------------------------------------------
    @property
    def proc(self) -> Process:
        """The process of the running thread (the main process, or a vfork child before execve)."""
        t = self.current
        return t.proc if t is not None and t.proc is not None else self.main_proc

    @property
    def fds(self) -> FdTable:
        return self.proc.fds

    @property
    def signals(self) -> signals.Signals:
        return self.proc.signals

    def poll_children(self) -> None:
        """Notice children that ended: keep their status, send the guest SIGCHLD."""
        for child in self.children.values():
            if child.notified or not child.poll():
                continue
            child.notified = True
            signals.send_process(self, 17, child_siginfo(child.pid, child.status), self.main_proc)

    # ---- threads -----------------------------------------------------------
    def new_thread(self) -> Thread:
        tid = self._next_tid
        self._next_tid += 1
        t = Thread(tid)
        self.threads[tid] = t
        return t

    def live_threads(self) -> list[Thread]:
        return [t for t in self.threads.values() if t.state != DEAD]

    def load(self, t: Thread) -> None:
        """Make t's registers the CPU's (saving the previous thread's)."""
        if self.loaded is t:
            return
        prev = self.loaded
        if prev is not None and prev.state != DEAD:
            self.uc.context_update(prev.ctx)
        self.uc.context_restore(t.ctx)
        self.loaded = t

    def set_reg(self, t: Thread, reg: int, value: int) -> None:
        if t is self.loaded:
            self.regs.write(reg, value)
        else:
            t.ctx.reg_write(reg, value)

    def get_reg(self, t: Thread, reg: int) -> int:
        return self.regs.read(reg) if t is self.loaded else t.ctx.reg_read(reg)

    def stop(self, reason: str, then=None) -> None:
        """Stop emulation after the current instruction (from inside a hook)."""
        self.stop_reason = reason
        if then is not None:
            self.after_stop = then
        self.uc.emu_stop()

    # ---- process end -------------------------------------------------------
    def exit_group(self, code: int) -> None:
        if self.exit_status is None:
            self.exit_status = code & 0xFF
        self.stop("exit")

    def terminate_by_signal(self, sig: int) -> None:
        """The default action of a fatal signal: end the process; report as a shell does."""
        if self.exit_status is not None:
            return
        self.killed_by = sig
        self.exit_status = 128 + sig
        if sig not in (2, 13):   # bash stays quiet for SIGINT and SIGPIPE
            # no core file is written, so no "(core dumped)" either (bash with ulimit -c 0)
            desc = signals.DESCRIPTIONS.get(sig, signals.name(sig))
            sys.stdout.flush()
            print(f"goemu: guest terminated by {signals.name(sig)}: {desc}", file=sys.stderr)
        try:
            self.uc.emu_stop()
        except UcError:
            pass

    # ---- notes and tracing ---------------------------------------------------
    def note_unimplemented(self, nr: int, name: str) -> None:
        if nr in self._noted:
            return
        self._noted.add(nr)
        if self.opts.verbose or self.opts.strace:
            print(f"goemu: note: syscall {nr} ({name}) is not implemented; the guest got ENOSYS",
                  file=self.out)

    def note(self, text: str) -> None:
        if self.opts.verbose:
            print(f"goemu: note: {text}", file=self.out)

    def trace_signal(self, t: Thread, sig: int, info: bytes) -> None:
        if self.strace is not None:
            import struct
            code = struct.unpack_from("<i", info, 8)[0]
            if code <= 0:   # sent by kill/tkill: the union holds the sender
                pid, uid = struct.unpack_from("<iI", info, 16)
                detail = f"si_pid={pid}, si_uid={uid}"
            elif sig == 17:  # SIGCHLD: the child, its uid and its status (as strace shows it)
                pid, uid, status = struct.unpack_from("<iIi", info, 16)
                code = {1: "CLD_EXITED", 2: "CLD_KILLED", 3: "CLD_DUMPED", 4: "CLD_TRAPPED"}.get(code, code)
                shown = signals.name(status) if code in ("CLD_KILLED", "CLD_DUMPED", "CLD_TRAPPED") else status
                detail = f"si_pid={pid}, si_uid={uid}, si_status={shown}"
            else:
                detail = f"si_addr={struct.unpack_from('<Q', info, 16)[0]:#x}"
            self.strace.text(t, f"--- {signals.name(sig)} {{si_signo={signals.name(sig)}, "
                                f"si_code={code}, {detail}}} ---")

    # ---- hooks ---------------------------------------------------------------
    def _install_hooks(self) -> None:
        from .syscalls import dispatch
        uc = self.uc

        def on_syscall(uc_, _ud):
            dispatch(self, self.current)

        def on_intr(uc_, intno, _ud):
            self.fault = ("intr", intno, 0)
            self.stop("trap")

        uc.hook_add(UC_HOOK_INSN, on_syscall, None, 1, 0, X.UC_X86_INS_SYSCALL)
        uc.hook_add(UC_HOOK_INTR, on_intr)
        self._hooks = [on_syscall, on_intr]   # keep the callbacks alive
        if self.deterministic:
            reads = iter(range(1 << 62))
            self._hooks += hook_rdtsc(uc, lambda: self.clock.monotonic() * 3 + next(reads))

    def publish_time(self) -> None:
        self.mem.poke(VVAR_ADDR, self.clock.vvar())

    # ---- faults --------------------------------------------------------------
    def _cpu_exception(self, t: Thread, err: UcError) -> None:
        """Turn a CPU exception into the signal Linux would send (go114-abi.md §3.6, §8.5)."""
        self.fault = None
        rip = self.uc.reg_read(RIP)
        code = err.errno
        access = addr = None
        if code == UC_ERR_EXCEPTION:
            # a TLB fill the page table refused: the exact address and the access type
            addr, access = self.mem.fault_info()
            if self.mem.access_allowed(addr, access):
                raise err
            # a fetch refused while translating a block: RIP is the block's start, not the
            # straddling instruction's (goemu/faultpc.py steps to it)
            from .faultpc import step_to_fetch_fault
            if step_to_fetch_fault(self, addr, access):
                rip = self.uc.reg_read(RIP)
            self.mem.clear_fault()
        elif code in (UC_ERR_READ_UNMAPPED, UC_ERR_WRITE_UNMAPPED, UC_ERR_FETCH_UNMAPPED,
                      UC_ERR_READ_PROT, UC_ERR_WRITE_PROT, UC_ERR_FETCH_PROT):
            # only reached if a granted page had no backing: a goemu bug, reported as a fault
            addr, access = self.mem.fault_info()
            access = {UC_ERR_WRITE_UNMAPPED: UC_MEM_WRITE, UC_ERR_WRITE_PROT: UC_MEM_WRITE,
                      UC_ERR_FETCH_UNMAPPED: UC_MEM_FETCH, UC_ERR_FETCH_PROT: UC_MEM_FETCH}.get(code, 0)
        if addr is not None and self.mem.is_bus_error(addr):
            # an executable's page past the end of its file (loader.py): SIGBUS, BUS_ADRERR
            signals.force_fault(self, t, 7, signals.siginfo(7, 2, addr))
        elif addr is not None:
            vma = self.mem.find(addr)
            si_code = signals.SEGV_ACCERR if vma is not None else signals.SEGV_MAPERR
            err_bits = 4 | (2 if access == UC_MEM_WRITE else 0) | (16 if access == UC_MEM_FETCH else 0) \
                | (1 if vma else 0)
            self.fault_cr2, self.fault_err, self.fault_trapno = addr, err_bits, 14
            signals.force_fault(self, t, 11, signals.siginfo(11, si_code, addr))
        elif code == UC_ERR_INSN_INVALID:
            self.fault_trapno = 6
            signals.force_fault(self, t, 4, signals.siginfo(4, signals.ILL_ILLOPN, rip))
        else:
            raise err

    def _trap(self, t: Thread) -> None:
        fault, self.fault = self.fault, None
        intno = fault[1]
        rip = self.uc.reg_read(RIP)
        self.fault_trapno = intno
        if intno == 0:
            signals.force_fault(self, t, 8, signals.siginfo(8, signals.FPE_INTDIV, rip))
        elif intno == 3:
            signals.force_fault(self, t, 5, signals.siginfo(5, signals.SI_KERNEL))
        elif intno == 6:
            signals.force_fault(self, t, 4, signals.siginfo(4, signals.ILL_ILLOPN, rip))
        elif intno == 0x80:
            # the 32-bit syscall ABI from 64-bit code (Linux's ia32 table; RIP is past `int`)
            from .syscalls.compat32 import dispatch_int80
            dispatch_int80(self, t)
        else:
            signals.force_fault(self, t, 11, signals.siginfo(11, signals.SI_KERNEL))

    # ---- the run loop ----------------------------------------------------------
    def _forward_host_signals(self) -> None:
        for sig in self.host_signals.take():
            signals.send_process(self, sig, signals.siginfo(sig, signals.SI_USER), self.main_proc)

    def run(self) -> int:
        """Run the guest to its end; return goemu's exit status."""
        self.start()
        try:
            while self.run_until_break() == "break":
                pass   # no debugger attached: breakpoints (if any) do not pause the run
        finally:
            self.finish()
        return self.exit_status if self.exit_status is not None else 0

    def start(self) -> None:
        import threading
        if self.host_signals is None and threading.current_thread() is threading.main_thread():
            self.host_signals = HostSignals()

    def finish(self) -> None:
        if self.host_signals is not None:
            self.host_signals.close(ignore_after=self.ignore_host_signals_after)
            self.host_signals = None
        self.slicer.close()
        self.main_proc.fds.close_all()
        if self.exit_status is None:
            self.exit_status = 0

    def run_until_break(self) -> str | None:
        """Schedule guest threads until the process ends (None) or a hook asked for a pause
        with ``stop("break")`` (returns "break"; call again to continue)."""
        sched = self.sched
        while self.exit_status is None:
            if self.debug_poll is not None and self.debug_poll():
                return "break"
            if self.host_signals is not None and self.host_signals.pending:
                self._forward_host_signals()
            if self.children:
                self.poll_children()
            if self.itimers.timers[0][0]:
                self.itimers.expire_real(self)
            t = sched.pick()
            if t is None:
                if not self.live_threads():
                    break
                rfds, wfds = sched.poll_fds()
                if self.host_signals is not None:
                    rfds.append(self.host_signals.rfd)
                rfds.extend(self.debug_fds)
                deadline, alarm = sched.next_deadline(), self.itimers.real_deadline()
                if alarm is not None and (deadline is None or alarm < deadline):
                    deadline = alarm
                self.clock.idle_until(deadline, rfds, wfds)
                continue
            self.run_slice(t)
            if t.state == "runnable":
                # A thread keeps the CPU across stops (a syscall that stopped emulation, a signal,
                # a fault) only while its slice lasts: a thread spinning on such syscalls must
                # not starve CPU-bound ones (each stop used to bring a fresh slice).
                used_up = (self.stop_reason is None and not t.pending) or \
                    t.slice_used >= self.slicer.quantum
                if self.stop_reason in ("yield", "preempt") or (used_up and self.stop_reason != "break"):
                    t.slice_used = 0
                    sched.runq.append(t)         # round robin
                else:
                    sched.runq.appendleft(t)     # go on with the rest of the slice
            else:
                t.slice_used = 0                 # blocked (or gone): a fresh slice after the wait
            if self.stop_reason == "break" and self.exit_status is None:
                return "break"
        return None

    def _account(self, t: Thread, count: int | None) -> None:
        """Charge the slice that just ran: its wall time (or instructions) to t's time slice,
        and its CPU time to the guest's CPU clocks and timers. The CPU time is what goemu's
        emulating thread spent (thread_time), not wall time: on a loaded host the two differ,
        and the profiler (SIGPROF) must agree with getrusage, as natively. Under
        --deterministic it is the instructions (1 ns each, as the virtual clock counts them)."""
        used = self.slicer.used
        if count is None:
            t.slice_used += used
        if self.deterministic:
            ns = int(used)
        else:
            now = time.thread_time_ns()
            ns, self._cpu_mark = now - self._cpu_mark, now
        self.itimers.charge(self, t, ns)

    def run_slice(self, t: Thread, count: int | None = None) -> None:
        """Run t for one slice (or exactly `count` instructions) and handle how it stopped."""
        uc = self.uc
        self.load(t)
        self.current = t
        self.stop_reason = None
        if t.pending:
            if self.signal_stop is not None and self.signal_stop(t):
                self.stop_reason = "break"
                return
            signals.deliver(self, t)
            if self.exit_status is not None or t.state != "runnable":
                return
        self.publish_time()
        if not self.deterministic:
            self._cpu_mark = time.thread_time_ns()
        try:
            if count is None:
                self.slicer.run(self.regs.read(RIP), self.slicer.quantum - t.slice_used)
            else:
                self.slicer.run_count(self.regs.read(RIP), count)
        except UcError as e:
            self._account(t, count)
            self._cpu_exception(t, e)
        else:
            self._account(t, count)
        self.slices += 1
        if self.after_stop is not None:
            fn, self.after_stop = self.after_stop, None
            fn()
        if self.stop_reason == "trap":
            self._trap(t)
        self.clock.slice_done(getattr(self.slicer, "last", 0))
