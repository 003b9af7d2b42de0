"""The debugging engine shared by `goemu debug` and the gdb stub (goemu/gdb/): breakpoints,
watchpoints, stepping one thread while the others stay still, resuming all threads, holding
signals for a debugger, and what made the guest stop.

Breakpoints are UC_HOOK_CODE hooks bounded to one address; a breakpoint's condition (goemu
debug's `break LOC if COND`) is a callable the hook asks, so a false one costs no stop and
resume. Watchpoints are UC_HOOK_MEM_* hooks
bounded to the watched range, present only while a watchpoint exists (a plain run has neither:
tests/test_hooks.py). Adding or removing a hook drops the translated blocks it concerns
(``ctl_remove_cache``), since blocks are translated with the hooks of their time.

A memory hook that stops emulation leaves the CPU at the *start* of the accessing instruction
with the store already done (Unicorn restores the PC after its exit check), so running on would
store twice (``lock inc [x]`` would add 2). A write watchpoint therefore remembers the old bytes,
puts them back and runs the instruction once more with the watch hooks muted: the instruction
then has run exactly once, and the stop is reported after it, as gdb expects of a watchpoint;
``Stop.pc`` is the accessing instruction.
"""
from __future__ import annotations

from dataclasses import dataclass

from unicorn import UC_HOOK_CODE, UC_HOOK_MEM_READ, UC_HOOK_MEM_WRITE, UC_MEM_WRITE

from . import signals
from .cpu import RIP

WATCH_HOOKS = {"watch": UC_HOOK_MEM_WRITE, "rwatch": UC_HOOK_MEM_READ,
               "awatch": UC_HOOK_MEM_READ | UC_HOOK_MEM_WRITE}


@dataclass
class Stop:
    """Why the guest stopped. kind: breakpoint, temp, watch, signal, step, interrupt, exited."""
    kind: str
    tid: int | None = None
    addr: int = 0          # the breakpoint's or the watched address
    sig: int = 0           # Linux signal number (kind == "signal")
    watch: str = ""        # watch, rwatch or awatch
    status: int = 0        # exit status (kind == "exited")
    killed_by: int = 0     # the fatal signal (kind == "exited")
    pc: int = 0            # the accessing instruction (kind == "watch")


class Engine:
    def __init__(self, k):
        self.k = k
        self.bps: dict[int, int] = {}                       # address -> hook handle
        # address -> callable(tid) -> bool: a breakpoint there stops only when it says True
        # (evaluated in the hook, so a false condition costs no stop and resume)
        self.conditions: dict[int, object] = {}
        self.watches: dict[tuple[str, int, int], int] = {}  # (kind, addr, len) -> hook handle
        self.temp: tuple[int, int, int] | None = None       # (address, tid, hook): run-to points
        self.temp_cond = None         # callable() -> bool: the run-to point counts only then
        self.stop: Stop | None = None
        self.muted = False            # code hooks off (while stepping off a breakpoint)
        self.watch_muted = False
        self._restore: tuple[int, bytes] | None = None      # old bytes under a watched store
        # signals: None = not intercepted (goemu debug); else a debugger sees each signal
        # before delivery, except those in pass_signals (gdb's QPassSignals)
        self.intercept_signals = False
        self.pass_signals: set[int] = set()
        self._passing: dict[int, int] = {}                  # tid -> signal the debugger let through
        self.interrupt_check = None   # callable() -> bool, polled between slices (gdb's Ctrl-C)
        self.poll_fds: list[int] = []
        self.on_step = None           # callable(tid) after each single step (reverse log)
        self.attach(k)

    # ---- the kernel this engine drives ------------------------------------------------
    def attach(self, k) -> None:
        """Drive kernel k (also a fresh one after a replay): install the hook points and every
        breakpoint and watchpoint on its CPU."""
        self.k = k
        k.debug_poll = self._poll
        k.debug_fds = self.poll_fds
        k.signal_stop = self._signal_stop
        bps, self.bps = list(self.bps), {}
        for addr in bps:
            self.add_breakpoint(addr)
        watches, self.watches = list(self.watches), {}
        for kind, addr, length in watches:
            self.add_watch(kind, addr, length)
        if self.temp is not None:
            addr, tid, _ = self.temp
            self.temp = None
            self.set_temp(addr, tid)

    # ---- breakpoints -----------------------------------------------------------------
    def _on_code(self, uc, address, size, kind) -> None:
        if self.muted or self.stop is not None:
            return
        tid = self.k.current.tid
        if kind == "temp":
            if self.temp is None or self.temp[0] != address or \
                    self.temp[1] is not None and self.temp[1] != tid:
                return
            if self.temp_cond is not None and not self.temp_cond():
                return
        elif kind == "thread":     # the first instruction a blocked thread runs after waking
            if self.temp is None or self.temp[1] != tid:
                return
        elif address not in self.bps:
            return
        elif address in self.conditions and not self.conditions[address](tid):
            return
        self.stop = Stop({"thread": "step", "bp": "breakpoint"}.get(kind, kind), tid, address)
        self.k.stop("break")

    def _code_hook(self, begin: int, end: int, kind: str) -> int:
        h = self.k.uc.hook_add(UC_HOOK_CODE, self._on_code, kind, begin, end)
        self._drop_blocks(begin, end)
        return h

    def _drop_blocks(self, begin: int, end: int) -> None:
        if end < begin:      # the whole address space
            self.k.uc.ctl_flush_tb()
        else:
            self.k.uc.ctl_remove_cache(begin, end + 1)

    def _del_hook(self, h: int, begin: int, end: int) -> None:
        self.k.uc.hook_del(h)
        self._drop_blocks(begin, end)

    def add_breakpoint(self, addr: int) -> None:
        if addr not in self.bps:
            self.bps[addr] = self._code_hook(addr, addr, "bp")

    def remove_breakpoint(self, addr: int) -> bool:
        h = self.bps.pop(addr, None)
        if h is None:
            return False
        self._del_hook(h, addr, addr)
        return True

    def set_temp(self, addr: int, tid: int | None, cond=None) -> None:
        """A run-to point for one thread only (nexti over a call), or for any thread with tid
        None (finish follows a goroutine, which may come back on another thread), stopping
        only when cond() holds if given (finish: the frame is gone, not a recursive call's)."""
        self.clear_temp()
        self.temp = (addr, tid, self._code_hook(addr, addr, "temp"))
        self.temp_cond = cond

    def clear_temp(self) -> None:
        if self.temp is not None:
            addr, tid, h = self.temp
            if addr < 0:
                self._del_hook(h, 1, 0)
            else:
                self._del_hook(h, addr, addr)
        self.temp = None
        self.temp_cond = None

    # ---- watchpoints -----------------------------------------------------------------
    def _on_mem(self, uc, access, address, size, value, key) -> None:
        if self.watch_muted:
            return
        kind, waddr, wlen = key
        if address + size <= waddr or address >= waddr + wlen:
            return
        if access == UC_MEM_WRITE and self._restore is None:
            self._restore = (address, bytes(uc.mem_read(address, size)))
        if self.stop is None or self.stop.kind != "watch":
            self.stop = Stop("watch", self.k.current.tid, waddr, watch=kind)
        self.k.stop("break")

    def add_watch(self, kind: str, addr: int, length: int) -> None:
        key = (kind, addr, length)
        if key in self.watches:
            return
        # an access that starts up to 7 bytes before the range may still overlap it
        begin, end = max(addr - 7, 0), addr + max(length, 1) - 1
        h = self.k.uc.hook_add(WATCH_HOOKS[kind], self._on_mem, key, begin, end)
        self.k.uc.ctl_flush_tb()
        self.watches[key] = h

    def remove_watch(self, kind: str, addr: int, length: int) -> bool:
        h = self.watches.pop((kind, addr, length), None)
        if h is None:
            return False
        self.k.uc.hook_del(h)
        self.k.uc.ctl_flush_tb()
        return True

    def _finish_watch(self) -> None:
        """After a watch hook stopped the CPU before the end of the accessing instruction: undo
        its store and run it once, watch hooks muted, so the stop is reported after it."""
        stop = self.stop
        if stop is None or stop.kind != "watch":
            self._restore = None
            return
        t = self.k.threads.get(stop.tid)
        restore, self._restore = self._restore, None
        if t is None or t.state != "runnable":
            return
        stop.pc = self.k.get_reg(t, RIP)
        if restore is not None:
            self.k.mem.poke(*restore)
        self.watch_muted = self.muted = True
        intercept, self.intercept_signals = self.intercept_signals, False
        try:
            self._run_one(t)
        finally:
            self.watch_muted = self.muted = False
            self.intercept_signals = intercept

    # ---- signals -----------------------------------------------------------------------
    def _signal_stop(self, t) -> bool:
        """The kernel asks before delivering t's pending signals: True holds them for the
        debugger (the thread stops; the signal stays pending until resumed)."""
        if not self.intercept_signals:
            return False
        sig = signals.deliverable(t)
        if not sig:
            return False
        if self._passing.get(t.tid) == sig:
            del self._passing[t.tid]
            return False
        if sig in self.pass_signals:
            return False
        if self.stop is None:
            self.stop = Stop("signal", t.tid, sig=sig)
        return True

    def resume_signal(self, t, sig: int) -> None:
        """How the debugger resumes a thread that stopped with a signal: sig 0 discards the
        pending signal(s) it was shown, another number delivers that signal."""
        shown = self.stop.sig if self.stop is not None and self.stop.kind == "signal" \
            and self.stop.tid == t.tid else 0
        if sig == 0:
            if shown:
                t.pending.pop(shown, None)
            return
        if shown and shown != sig:
            t.pending.pop(shown, None)
        if sig not in t.pending:
            t.pending[sig] = signals.siginfo(sig, signals.SI_USER)
        self._passing[t.tid] = sig

    # ---- between slices ------------------------------------------------------------------
    def _poll(self) -> bool:
        if self.interrupt_check is not None and self.interrupt_check():
            if self.stop is None:
                t = self.k.current if self.k.current is not None and self.k.current.state != "dead" \
                    else next(iter(self.k.live_threads()), None)
                self.stop = Stop("interrupt", t.tid if t is not None else None, sig=2)
            return True
        return False

    # ---- running ---------------------------------------------------------------------------
    def _exited(self) -> Stop | None:
        k = self.k
        if k.exit_status is not None or not k.live_threads():
            return Stop("exited", None, status=k.exit_status or 0, killed_by=k.killed_by)
        return None

    def _run_one(self, t) -> None:
        """Exactly one instruction of runnable t; t stays first in line for the scheduler."""
        self.k.run_slice(t, count=1)
        if t.state == "runnable":
            try:
                self.k.sched.runq.remove(t)
            except ValueError:
                pass
            self.k.sched.runq.appendleft(t)

    def step(self, t) -> Stop:
        """One instruction of thread t, the others still. A blocked thread first waits (the
        others run) until it is woken: its syscall is the instruction stepped."""
        self.stop = None
        if t.state == "runnable":
            self.muted = True
            try:
                self._run_one(t)
            finally:
                self.muted = False
            if self.stop is not None and self.stop.kind == "watch":
                self._finish_watch()
            if self.stop is None and t.state == "runnable" and self.intercept_signals \
                    and signals.deliverable(t) and self._signal_stop(t):
                pass    # the instruction faulted: report the signal now, before the handler
        else:
            self.clear_temp()
            self.temp = (-1, t.tid, self._code_hook(1, 0, "thread"))
            try:
                self._resume_all()
            finally:
                self.clear_temp()
        if self.on_step is not None:
            self.on_step(t.tid)
        done = self._exited()
        if done is not None:
            self.stop = done
        elif self.stop is None:
            self.stop = Stop("step", t.tid)
        return self.stop

    def _resume_all(self) -> None:
        k = self.k
        while k.exit_status is None:
            if k.run_until_break() is None:
                break
            if self.stop is not None:
                break
        if self.stop is not None and self.stop.kind == "watch":
            self._finish_watch()

    def resume(self) -> Stop:
        """Run every thread until a breakpoint, watchpoint, signal, interrupt or the end."""
        self.stop = None
        self._resume_all()
        done = self._exited()
        if done is not None and (self.stop is None or self.stop.kind != "signal"):
            self.stop = done
        if self.stop is None:
            self.stop = Stop("interrupt", None, sig=2)
        if self.stop.kind == "temp":
            self.clear_temp()
        return self.stop

    def pc(self, t) -> int:
        return self.k.get_reg(t, RIP)
