"""goemu debug's running commands: break/tbreak (with conditions), watch/rwatch/awatch,
delete, enable, disable, condition, run/continue, stepi, nexti, finish, and how a stop is
reported.

The mechanisms are goemu.engine's, shared with the gdb stub: breakpoints are code hooks (a
condition is evaluated inside the hook, so a false one costs no stop), watchpoints are memory
hooks present only while a watchpoint exists (the stub's Z2/Z3/Z4). This module keeps the
user's numbering, conditions, enabled state, hit counts and old values, and the wording of the
reports (gdb's). The engine has a breakpoint or watchpoint hook only while an enabled one is
there: a disabled breakpoint costs nothing."""
from __future__ import annotations

import re
import signal
from dataclasses import dataclass

from .cpu import RIP, RSP
from .debugexpr import ExprError
from .debugviews import DebugError

WATCH_LABEL = {"watch": "Hardware watchpoint", "rwatch": "Hardware read watchpoint",
               "awatch": "Hardware access (read/write) watchpoint"}
TYPE = {"break": "breakpoint", "watch": "hw watchpoint", "rwatch": "read watchpoint",
        "awatch": "acc watchpoint"}


@dataclass
class Bp:
    num: int
    kind: str               # break, watch, rwatch, awatch
    addr: int
    spec: str
    cond: str = ""
    width: int = 0          # watchpoints: 1, 2, 4 or 8 bytes
    signed: bool = False
    old: int | None = None  # watchpoints: the value last seen
    hits: int = 0
    enabled: bool = True
    temp: bool = False      # tbreak: deleted when hit


class RunCommands:
    """Mixed into goemu.debug.Debugger."""

    # ---- breakpoints -------------------------------------------------------------------------
    def cmd_break(self, arg: str, temp: bool = False) -> None:
        spec, cond = _split_if(arg)
        if not spec:
            raise DebugError(f"{'tbreak' if temp else 'break'} needs SYMBOL, FILE:LINE or *EXPR "
                             "(then optionally `if COND`)")
        addr = self.location(spec)
        if cond:
            self._check_expr(cond)
        bp = self._new_bp("break", addr, spec, cond=cond, temp=temp)
        self._sync_break(addr)
        c = f" if {cond}" if cond else ""
        self.say(f"{_label(bp)} {bp.num} at {addr:#x}: {self.where(addr)}{c}")

    def cmd_tbreak(self, arg: str) -> None:
        self.cmd_break(arg, temp=True)

    def _new_bp(self, kind: str, addr: int, spec: str, **kw) -> Bp:
        bp = Bp(self.next_bp, kind, addr, spec, **kw)
        self.bps[bp.num] = bp
        self.next_bp += 1
        return bp

    def cmd_condition(self, arg: str) -> None:
        num, _, cond = arg.strip().partition(" ")
        bp = self.bps.get(self._int(num)) if num else None
        if bp is None:
            raise DebugError(f"no breakpoint {num or '(give its number)'}")
        cond = cond.strip()
        if cond:
            self._check_expr(cond)
        bp.cond = cond
        if bp.kind == "break":
            self._sync_break(bp.addr)
        self.say(f"Breakpoint {bp.num} now {'stops if ' + cond if cond else 'unconditional'}.")

    def _breaks_at(self, addr: int) -> list[Bp]:
        """The enabled breakpoints at addr."""
        return [b for b in self.bps.values() if b.kind == "break" and b.enabled and b.addr == addr]

    def _sync_break(self, addr: int) -> None:
        """The engine's breakpoint at addr: there while an enabled breakpoint is; its condition
        (engine.conditions[addr]) absent while an unconditional one is there."""
        here = self._breaks_at(addr)
        if here:
            self.engine.add_breakpoint(addr)
        else:
            self.engine.remove_breakpoint(addr)
        if not here or any(not b.cond for b in here):
            self.engine.conditions.pop(addr, None)
        else:
            self.engine.conditions[addr] = lambda tid, addr=addr: self._cond_holds(addr, tid)

    def _cond_holds(self, addr: int, tid: int) -> bool:
        """In the code hook: does a condition of a breakpoint at addr hold on thread tid? Those
        that do are the stop's (self._hits). An error in a condition stops too (reported), as
        gdb does."""
        t = self.k.threads.get(tid)
        hits = [b.num for b in self._breaks_at(addr) if self._cond_true(b, t)]
        if hits:
            self._hits = hits
        return bool(hits)

    def _cond_true(self, b: Bp, t=None) -> bool:
        if not b.cond:
            return True
        try:
            return bool(self.eval(b.cond, t).value)
        except Exception as e:      # never out of a Unicorn hook
            self._cond_error = f"error in the condition of breakpoint {b.num} ({b.cond}): {e}"
            return True

    def _check_expr(self, text: str) -> None:
        """Syntax and symbols of an expression (registers and memory are not read)."""
        from .debugexpr import Context, evaluate

        def sym(name):
            if self.syms.address_of(name) is None:
                raise ExprError(f"no symbol {name!r}")
            return 0, 8
        def reg(name):
            self.reg_named(name, check_only=True)
            return 0
        try:
            evaluate(text, Context(reg, sym, lambda a, n: bytes(n)))
        except ExprError as e:
            raise DebugError(str(e)) from None

    # ---- watchpoints ----------------------------------------------------------------------------
    def cmd_watch(self, arg: str, kind: str = "watch") -> None:
        arg = arg.strip()
        m = re.match(r"(-l|-location)\s+", arg)
        loc = bool(m)
        expr = arg[m.end():] if m else arg
        if not expr:
            raise DebugError(f"{kind} needs an lvalue: *EXPR, *(uint32*)EXPR, a data symbol, "
                             "or -l ADDR")
        v = self.eval(expr)
        if v.lval is not None:
            addr, width, signed = v.lval
        elif loc:
            addr, width, signed = v.value, 8, False
        else:
            raise DebugError(f"cannot watch the value {v.value:#x}: give *({expr}) or -l {expr}")
        addr &= (1 << 64) - 1
        try:
            old = int.from_bytes(self.k.mem.read(addr, width), "little", signed=signed)
        except Exception:
            raise DebugError(f"cannot read {width} bytes at {addr:#x}") from None
        bp = self._new_bp(kind, addr, expr, width=width, signed=signed, old=old)
        self.engine.add_watch(kind, addr, width)
        self.say(f"{WATCH_LABEL[kind]} {bp.num}: {expr} ({_bytes(width)} at {addr:#x}, now {old})")

    def cmd_rwatch(self, arg: str) -> None:
        self.cmd_watch(arg, "rwatch")

    def cmd_awatch(self, arg: str) -> None:
        self.cmd_watch(arg, "awatch")

    def _sync(self, bp: Bp) -> None:
        """The engine's hook for bp's place: there while an enabled one is."""
        if bp.kind == "break":
            self._sync_break(bp.addr)
            return
        key = (bp.kind, bp.addr, bp.width)
        if any((b.kind, b.addr, b.width) == key and b.enabled for b in self.bps.values()):
            self.engine.add_watch(*key)
        else:
            self.engine.remove_watch(*key)

    def _numbered(self, arg: str) -> list[Bp]:
        """The breakpoints numbered in arg (all without numbers); an unknown number: error,
        before anything is changed."""
        if not arg.strip():
            return list(self.bps.values())
        nums = [self._int(a) for a in arg.split()]
        for n in nums:
            if n not in self.bps:
                raise DebugError(f"no breakpoint {n}")
        return [self.bps[n] for n in nums]

    def cmd_delete(self, arg: str) -> None:
        for bp in self._numbered(arg):
            if self.bps.pop(bp.num, None) is not None:
                self._sync(bp)

    def cmd_enable(self, arg: str, on: bool = True) -> None:
        for bp in self._numbered(arg):
            if bp.enabled == on:
                continue
            bp.enabled = on
            if on and bp.kind != "break":
                bp.old = self._watch_value(bp)     # changes are counted from now
            self._sync(bp)

    def cmd_disable(self, arg: str) -> None:
        self.cmd_enable(arg, on=False)

    def info_breakpoints(self, watch_only: bool = False) -> None:
        rows = [b for b in self.bps.values() if not watch_only or b.kind != "break"]
        if not rows:
            self.say("No breakpoints or watchpoints.")
            return
        self.say("Num  Type            Disp Enb Address             What")
        for b in rows:
            what = self.where(b.addr) if b.kind == "break" else f"{b.spec} ({_bytes(b.width)})"
            self.say(f"{b.num:<4} {TYPE[b.kind]:<15} {'del' if b.temp else 'keep':<4} "
                     f"{'y' if b.enabled else 'n'}   {b.addr:#018x}  {what}")
            if b.cond:
                self.say(f"        stop only if {b.cond}")
            if b.hits:
                self.say(f"        hit {b.hits} time{'s' if b.hits != 1 else ''}")

    # ---- running -----------------------------------------------------------------------------------
    def interrupted(self) -> bool:
        """The engine's interrupt check, between slices: a Ctrl-C (SIGINT to goemu) stops the
        guest instead of going to it."""
        hs = self.k.host_signals
        if hs is None or signal.SIGINT not in hs.pending:
            return False
        got = hs.take()            # also empties the wake-up pipe
        hs.pending = [s for s in got if s != signal.SIGINT] + hs.pending
        return True

    def _resume(self, quiet_temp: bool = False):
        """Continue all threads until a breakpoint, a watchpoint whose value changed, Ctrl-C or
        the end; report the stop (not a temporary breakpoint's with quiet_temp) and return it."""
        t = self.thread
        while True:
            self._hits, self._cond_error = None, None
            if t is not None and t.state == "runnable" and self._at_bp(t):
                stop = self.engine.step(t)       # step off the breakpoint we are stopped at
                if stop.kind == "step":
                    stop = self.engine.resume()
            else:
                stop = self.engine.resume()
            if stop.kind == "watch" and not self._watch_changed(stop):
                t = None
                continue
            break
        if quiet_temp and stop.kind == "temp":
            self.engine.clear_temp()
            self.thread = self.k.threads.get(stop.tid, self.thread)
        else:
            self._report_stop(stop)
        return stop

    def _at_bp(self, t) -> bool:
        pc = self.k.get_reg(t, RIP)
        temp = self.engine.temp
        return pc in self.engine.bps or (temp is not None and pc == temp[0])

    def _watch_changed(self, stop) -> bool:
        """A write watchpoint reports a store that changed the value (gdb's rule); the others
        every access."""
        bp = self._watch_bp(stop)
        if bp is None or bp.kind != "watch":
            return True
        return self._watch_value(bp) != bp.old

    def _watch_bp(self, stop):
        return next((b for b in self.bps.values()
                     if b.kind == stop.watch and b.addr == stop.addr and b.enabled), None)

    def _watch_value(self, bp: Bp) -> int | None:
        try:
            return int.from_bytes(self.k.mem.read(bp.addr, bp.width), "little", signed=bp.signed)
        except Exception:
            return None

    def _report_stop(self, stop) -> None:
        k = self.k
        self.engine.clear_temp()
        if stop.kind == "exited":
            self.done = True
            how = f"killed by signal {stop.killed_by}" if stop.killed_by else f"with status {stop.status}"
            self.say(f"[process exited {how}]")
            return
        if stop.tid is not None and stop.tid in k.threads:
            self.thread = k.threads[stop.tid]
        self.goroutine = None
        label = {"temp": "Temporary breakpoint", "interrupt": "Interrupted (Ctrl-C, SIGINT)",
                 "step": "Stopped", "signal": f"Signal {stop.sig}"}.get(stop.kind)
        if stop.kind == "breakpoint":
            label = self._count_hits(stop)
        if self._cond_error:
            self.say(f"error: {self._cond_error}")
        if stop.kind == "watch":
            self._report_watch(stop)
            label = "Stopped"
        self.say(f"{label}, {self._here()}")

    def _count_hits(self, stop) -> str:
        """A breakpoint stop counts for every enabled breakpoint there whose condition holds
        (evaluated in the hook, or now when an unconditional one made the stop); a temporary
        one is deleted. The label names the first, as gdb."""
        if self._hits is not None:
            hit = [self.bps[n] for n in self._hits if n in self.bps]
        else:
            hit = [b for b in self._breaks_at(stop.addr) if self._cond_true(b, self.thread)]
        for b in hit:
            b.hits += 1
            if b.temp:
                del self.bps[b.num]
                self._sync(b)
        return f"{_label(hit[0])} {hit[0].num}" if hit else "Breakpoint ?"

    def _here(self) -> str:
        pc = self.reg(RIP)
        mid, pid, goid = self.view.gmp(self.thread)
        return (f"tid {self.thread.tid} (M{mid} P{pid if pid is not None else '-'} G{goid}) at "
                f"{pc:#x}: {self.where(pc)}")

    def _report_watch(self, stop) -> None:
        bp = self._watch_bp(stop)
        if bp is None:
            self.say(f"Watchpoint at {stop.addr:#x} ({stop.watch})")
            return
        bp.hits += 1
        new = self._watch_value(bp)
        self.say(f"\n{WATCH_LABEL[bp.kind]} {bp.num}: {bp.spec}\n")
        if bp.kind == "rwatch" or (bp.kind == "awatch" and new == bp.old):
            self.say(f"Value = {new}")
        else:
            self.say(f"Old value = {bp.old}")
            self.say(f"New value = {new}")
        if stop.pc:
            self.say(f"accessed by {stop.pc:#x}: {self.where(stop.pc)}    {self._insn_text(stop.pc)}")
        bp.old = new

    def _run_to(self, addr: int, quiet: bool = False, cond=None, any_thread: bool = False):
        self.engine.set_temp(addr, None if any_thread else self.thread.tid, cond)
        return self._resume(quiet_temp=quiet)

    def cmd_run(self, arg: str) -> None:
        if self.done:
            raise DebugError("the process has exited")
        self.started = True
        self._resume()

    cmd_continue = cmd_run

    def _need_thread(self):
        t = self.thread
        if self.done or t is None or t.state == "dead":
            raise DebugError("the process is not running")
        if t.state != "runnable":
            raise DebugError(f"thread {t.tid} is blocked ({t.wait.what if t.wait else '?'}); "
                             "`continue` or pick another with `thread TID`")
        return t

    def cmd_stepi(self, arg: str, over: bool = False) -> None:
        n = self._int(arg, 1)
        self.goroutine = None
        for _ in range(n):
            t = self._need_thread()
            pc = self.reg(RIP)
            insn = next(self.md.disasm(self.view.read(pc, 16), pc), None)
            if over and insn is not None and insn.mnemonic == "call":
                if self._run_to(pc + insn.size, quiet=True).kind != "temp":
                    return
                continue
            self._hits, self._cond_error = None, None
            stop = self.engine.step(t)
            if stop.kind not in ("step",):
                if stop.kind == "watch" and not self._watch_changed(stop):
                    continue
                self._report_stop(stop)
                return
            if self.interrupted():
                self.say("Interrupted (Ctrl-C, SIGINT)")
                break
        if self._alive():
            pc = self.reg(RIP)
            self.say(f"{pc:#x}: {self.where(pc)}    {self._insn_text(pc)}")

    def cmd_nexti(self, arg: str) -> None:
        self.cmd_stepi(arg, over=True)

    def cmd_finish(self, arg: str) -> None:
        """Run to the caller's return address on this thread, and on until the frame is really
        gone (a recursive call returning there does not count). Depth is measured from the
        top of the goroutine's stack (g.stack.hi - sp), which copystack preserves. Then the
        results, read as goemu trace --ret reads them (goemu.traceargs: the binary's ABI)."""
        self._need_thread()
        self.goroutine = None
        depth = self._stack_depth()
        # physical frames: an inlined call has no return of its own
        frames = self.syms.frames(self.view.u64, self.reg(RIP), self.reg(RSP), 2, inline=False)
        if len(frames) < 2:
            raise DebugError("no caller frame to return to")
        func = frames[0].func
        self.say(f"Run till exit from {func}")
        t = self.thread
        g = self.view.current_g(t)
        # the goroutine's frame, on whichever thread it returns (a call that parks may resume
        # on another M); without a g (no TLS yet), this thread's
        def gone() -> bool:
            cur = self.k.current
            if (self.view.current_g(cur) != g) if g else (cur is not t):
                return False
            return self._stack_depth(cur) < depth
        stop = self._run_to(frames[1].pc, quiet=True, cond=gone, any_thread=bool(g))
        if stop.kind == "temp":         # else reported: a breakpoint, watchpoint, Ctrl-C, the end
            self.say(f"Returned, {self._here()}")
            self._say_results(func)

    def _say_results(self, func: str | None) -> None:
        if self._sigs is None:
            from .traceargs import Signatures
            self._sigs = Signatures(self.syms)
        sig = self._sigs.get(func) if func else None
        if sig is None:
            self.say(f"(no DWARF signature for {func}: results unknown)")
            return
        if not sig.results:
            return
        from .traceargs import show_value
        t = self.thread
        vals = self._sigs.results_after_return(sig, lambda r: self.k.get_reg(t, r), self.reg(RSP),
                                               self.view.read,
                                               lambda typ, words: show_value(self.view, typ, words))
        self.say("Value returned: " + " ".join(f"{v['name']}={v['value']}" for v in vals))

    def _stack_depth(self, t=None) -> int:
        t = t or self.thread
        sp = self.k.get_reg(t, RSP)
        g = self.view.current_g(t) if self.view.ok else 0
        hi = self.view.field("g", g, "stack.hi") if g else None
        return hi - sp if hi and hi >= sp else -sp

    def _insn_text(self, pc: int) -> str:
        insn = next(self.md.disasm(self.view.read(pc, 16), pc), None)
        return f"{insn.mnemonic} {insn.op_str}".strip() if insn else "(bad)"


def _label(bp: Bp) -> str:
    return "Temporary breakpoint" if bp.temp else "Breakpoint"


def _bytes(n: int) -> str:
    return f"{n} byte" + ("s" if n != 1 else "")


def _split_if(arg: str) -> tuple[str, str]:
    """`LOC if COND` -> (LOC, COND)."""
    m = re.search(r"(?:^|\s)if(?:\s|\()", arg)
    if not m:
        return arg.strip(), ""
    return arg[:m.start()].strip(), arg[m.end() - (1 if arg[m.end() - 1] == "(" else 0):].strip()
