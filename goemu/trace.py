"""goemu trace: one event per entry of each traced function, with the runtime's M, P and G.

Code hooks sit only on the traced functions' entry addresses (and, with --ret, on their RET
instructions), so untraced code runs as in ``goemu run``. A function the compiler inlined is
traced at the first pc of each inlined body (the pclntab's inline tree), with ``inlined_in``.

Events follow goroutines, not threads: each carries the g the thread runs (``goid``, 0 on g0)
and the user goroutine its M serves (``curg``, m.curg), and a return is matched to its call by
the goroutine (g pointer and goid) and SP, so a call that parks and resumes on another M still
gets its return. ``icount`` (guest instructions so far) is present when the slicer counts
exactly; ``ns`` is the guest's monotonic clock (virtual with --deterministic, so two traces of
one run are byte-identical). --args adds ``args`` (and ``results`` on returns), placed by the
binary's ABI (goemu.traceargs); --stack goes on past morestack/mcall/systemstack onto the
goroutine's own frames (``stack_switch``, ``stack_goid``).

Sinks: text (in the spirit of ``dlv trace``), JSON Lines, Chrome trace-event JSON (guest
threads as tracks, function spans, run-queue counters) that opens in Perfetto, and the
timeline picture (goemu.timeline).
"""
from __future__ import annotations

import fnmatch
import json
import sys
from dataclasses import dataclass, field
from typing import TextIO

from capstone import CS_ARCH_X86, CS_MODE_64, Cs
from unicorn import UC_HOOK_CODE
from unicorn import x86_const as X

from .cpu import RIP, RSP
from .gotypes import Layouts
from .runtime_view import RuntimeView
from .symbols import Symbols
from .traceargs import Signatures, show_value

GPRS = [("rax", X.UC_X86_REG_RAX), ("rbx", X.UC_X86_REG_RBX), ("rcx", X.UC_X86_REG_RCX),
        ("rdx", X.UC_X86_REG_RDX), ("rsi", X.UC_X86_REG_RSI), ("rdi", X.UC_X86_REG_RDI),
        ("rbp", X.UC_X86_REG_RBP), ("rsp", X.UC_X86_REG_RSP), ("r8", X.UC_X86_REG_R8),
        ("r9", X.UC_X86_REG_R9), ("r10", X.UC_X86_REG_R10), ("r11", X.UC_X86_REG_R11),
        ("r12", X.UC_X86_REG_R12), ("r13", X.UC_X86_REG_R13), ("r14", X.UC_X86_REG_R14),
        ("r15", X.UC_X86_REG_R15), ("rflags", X.UC_X86_REG_EFLAGS)]


@dataclass
class TraceOptions:
    patterns: list[str]
    fmt: str = "text"             # text | jsonl
    out: TextIO = sys.stderr
    ret: bool = False
    stack: int = 0
    step: int = 0
    sched: bool = False
    chrome: str | None = None
    timeline: str | None = None
    args: bool = False
    window: tuple = (None, None)  # timeline window: (from, to), each ms, "+N" or a function name


@dataclass
class _Open:
    func: str
    rsp: int
    icount: int | None
    ns: int
    seq: int
    goid: int | None


@dataclass
class Target:
    name: str
    entry: int                    # where the hook sits: the entry, or an inlined body's first pc
    end: int
    inlined_in: str | None = None  # the physical function an inlined copy lives in
    picks: bool = False           # a hidden hook on runtime.execute: which g schedule() chose


# Functions that switch from a goroutine's stack to g0's: a stack that reaches one of them
# goes on with the goroutine's frames, from where the switch saved them (m.curg.sched).
SWITCHERS = ("runtime.morestack", "runtime.systemstack", "runtime.mcall")


@dataclass
class Tracer:
    k: object
    syms: Symbols
    layouts: Layouts
    opts: TraceOptions
    seq: int = 0
    events: list = field(default_factory=list)          # for the Chrome and SVG sinks
    open_calls: dict = field(default_factory=dict)      # (g pointer, goid) -> [_Open]
    pending_step: tuple | None = None
    muted: bool = False

    def __post_init__(self) -> None:
        self.view = RuntimeView(self.k, self.syms, self.layouts)
        self.md = Cs(CS_ARCH_X86, CS_MODE_64)
        self.targets: list[Target] = []
        ends = {f.entry: f.end for f in self.syms.functions()}
        seen = set()
        for pattern in self.opts.patterns:
            for name, addr in self.syms.glob(pattern):
                if addr in seen:
                    continue
                seen.add(addr)
                self.targets.append(Target(name, addr, ends.get(addr, addr + 1)))
        # inlined copies: calls the compiler inlined have no entry of their own; the inline
        # tree says where each inlined body starts
        sites = self.syms.inline_sites()
        for pattern in self.opts.patterns:
            for name in sorted(n for n in sites if fnmatch.fnmatchcase(n, pattern)):
                for site in sites[name]:
                    if (name, site.pc) in seen:
                        continue
                    seen.add((name, site.pc))
                    self.targets.append(Target(name, site.pc, site.pc + 1, site.host))
        # schedule() never returns, and the goroutine it chooses is execute()'s argument: when
        # schedule is traced without execute, a hidden hook on execute reports the choice
        names = {t.name for t in self.targets}
        if "runtime.schedule" in names and "runtime.execute" not in names:
            addr = self.syms.address_of("runtime.execute")
            if addr is not None:
                self.targets.append(Target("runtime.execute", addr, addr + 1, None, True))
        self.targets.sort(key=lambda x: x.entry)
        self.sigs = Signatures(self.syms) if self.opts.args else None
        self._regabi = Signatures(self.syms).regabi
        self._hooks = []

    # ---- installation ---------------------------------------------------------
    def install(self) -> None:
        uc = self.k.uc
        for target in self.targets:
            self._hooks.append(uc.hook_add(UC_HOOK_CODE, self._on_entry, target, target.entry,
                                           target.entry))
            if self.opts.ret and target.inlined_in is None:
                code = self.syms.read(target.entry, target.end - target.entry) or b""
                for insn in self.md.disasm(code, target.entry):
                    if insn.mnemonic in ("ret", "retq"):
                        self._hooks.append(uc.hook_add(UC_HOOK_CODE, self._on_ret, target.name,
                                                       insn.address, insn.address))

    # ---- events -------------------------------------------------------------------
    def icount(self) -> int | None:
        """Guest instructions so far, when the slicer counts them exactly (else None)."""
        try:
            return self.k.slicer.icount()
        except Exception:
            return None

    def now_ns(self, icount: int | None) -> int:
        """The guest's monotonic clock; the virtual clock moves between slices, so inside one
        the instructions run so far are added (1 ns each, as the clock charges them)."""
        clock = self.k.clock
        ns = clock.monotonic()
        if getattr(clock, "deterministic", False) and icount is not None:
            ns += max(icount - getattr(self.k.slicer, "executed", icount), 0)
        return ns

    def _caller(self, ret: int) -> tuple[str, str, int | None]:
        hit = self.syms.lookup(ret)
        if hit is None:
            return hex(ret), "", None
        name, start = hit
        file, line = self.syms.file_line(ret - 1)
        short = file.rsplit("/", 1)[-1] if file else ""
        return f"{name}+{ret - start:#x}", short, line

    def _head(self, t, w: dict, icount) -> dict:
        ev = {"seq": self.seq}
        if icount is not None:
            ev["icount"] = icount
        ev.update({"ns": self.now_ns(icount), "tid": t.tid, "m": w["m"], "p": w["p"],
                   "goid": w["goid"], "curg": w["curg"]})
        return ev

    def _on_entry(self, uc, address, size, target: Target) -> None:
        if self.muted:
            return
        if target.picks:
            self._on_pick(uc)
            return
        k = self.k
        t = k.current
        rsp = uc.reg_read(RSP)
        w = self.view.where(t)
        name = target.name
        self.seq += 1
        icount = self.icount()
        ev = self._head(t, w, icount)
        ev.update({"func": name, "pc": address})
        if target.inlined_in is None:
            ret = self.view.u64(rsp)
            caller, file, line = self._caller(ret)
            ev.update({"caller": caller, "caller_pc": ret, "file": file, "line": line})
        else:
            ev.update(self._inline_caller(target, address, rsp))
        if self.sigs is not None:
            sig = self.sigs.get(name) if target.inlined_in is None else None
            ev["args"] = self.sigs.values(sig, "args", uc.reg_read, rsp, self.view.read, self.show) \
                if sig is not None else []
        if self.opts.stack:
            self._stack(ev, w, address, rsp)
        if self.opts.sched:
            ev["sched"] = self.view.sched()
        if self.opts.ret and target.inlined_in is None:
            calls = self.open_calls.setdefault((w["g"], w["goid"]), [])
            calls.append(_Open(name, rsp, icount, ev["ns"], self.seq, w["goid"]))
            if len(calls) > 256:        # functions that never return (runtime.schedule, mcall)
                del calls[:-256]
        self.emit(ev)
        if self.opts.step:
            self.pending_step = (t, ev)
            k.stop("break")

    def _on_pick(self, uc) -> None:
        """schedule() chose a goroutine: execute(gp, inheritTime) is being entered."""
        t = self.k.current
        rsp = uc.reg_read(RSP)
        gp = uc.reg_read(X.UC_X86_REG_RAX) if self._regabi else self.view.u64(rsp + 8)
        w = self.view.where(t)
        self.seq += 1
        ev = self._head(t, w, self.icount())
        ev.update({"func": "runtime.schedule", "event": "picked", "picked": self.view.goid_of(gp)})
        self.emit(ev)

    def _inline_caller(self, target: Target, pc: int, sp: int) -> dict:
        """Caller fields of an inlined body: the next frame out, at the call site's line (an
        offset only when that frame is the physical function, which owns the pc)."""
        fr = self.syms.frames(self.view.u64, pc, sp, 2)
        outer = fr[1] if len(fr) > 1 else None
        if outer is None:
            return {"caller": target.inlined_in, "caller_pc": pc, "file": "", "line": None,
                    "inlined_in": target.inlined_in}
        caller = outer.func
        if not outer.inlined and outer.entry is not None:
            caller += f"+{pc - outer.entry:#x}"
        return {"caller": caller, "caller_pc": pc, "file": (outer.file or "").rsplit("/", 1)[-1],
                "line": outer.line, "inlined_in": target.inlined_in}

    def _stack(self, ev: dict, w: dict, pc: int, sp: int) -> None:
        n = self.opts.stack
        frames = self.syms.frames(self.view.u64, pc, sp, n)
        ev["stack"] = [f.func for f in frames]
        cg = w["curg_ptr"]
        if frames and frames[-1].func in SWITCHERS and len(frames) < n and cg and cg != w["g"]:
            spc, ssp = self.view.field("g", cg, "sched.pc"), self.view.field("g", cg, "sched.sp")
            if spc and ssp:
                more = self.syms.frames(self.view.u64, spc, ssp, n - len(frames))
                ev["stack_switch"] = len(frames)    # where the goroutine's own frames begin
                ev["stack_goid"] = w["curg"]
                ev["stack"] += [f.func for f in more]

    def _on_ret(self, uc, address, size, name) -> None:
        if self.muted:
            return
        t = self.k.current
        w = self.view.where(t)
        stack = self.open_calls.get((w["g"], w["goid"]))
        if not stack:
            return
        rsp = uc.reg_read(RSP)
        for i in range(len(stack) - 1, -1, -1):
            if stack[i].rsp == rsp and stack[i].func == name:
                call = stack[i]
                del stack[i:]
                break
        else:
            return
        self.seq += 1
        icount = self.icount()
        ev = self._head(t, w, icount)
        ev.update({"func": name, "pc": address, "event": "return", "call_seq": call.seq})
        if icount is not None and call.icount is not None:
            ev["dur_icount"] = icount - call.icount
        ev["dur_ns"] = ev["ns"] - call.ns
        if self.sigs is not None:
            sig = self.sigs.get(name)
            ev["results"] = self.sigs.values(sig, "results", uc.reg_read, rsp, self.view.read,
                                             self.show) if sig is not None else []
        self.emit(ev)

    # ---- values ------------------------------------------------------------------------
    def show(self, t, words: list[int]) -> str:
        return show_value(self.view, t, words)

    # ---- --step ---------------------------------------------------------------------
    def do_steps(self) -> None:
        t, ev = self.pending_step
        self.pending_step = None
        k, uc = self.k, self.k.uc
        steps = []
        self.muted = True
        try:
            for _ in range(self.opts.step):
                if t.state != "runnable" or k.exit_status is not None:
                    break
                k.load(t)
                pc = uc.reg_read(RIP)
                before = {n: uc.reg_read(r) for n, r in GPRS}
                code = self.view.read(pc, 16)
                insn = next(self.md.disasm(code, pc), None)
                k.run_slice(t, count=1)
                if t.state == "dead" or k.loaded is not t:
                    after = {}
                else:
                    after = {n: uc.reg_read(r) for n, r in GPRS}
                changed = {n: hex(v) for n, v in after.items() if before.get(n) != v}
                steps.append(self._describe(pc, insn, changed))
        finally:
            self.muted = False
        self.emit({"seq": ev["seq"], "event": "steps", "tid": t.tid, "func": ev["func"], "steps": steps})

    def _describe(self, pc: int, insn, changed: dict) -> dict:
        hit = self.syms.lookup(pc)
        where = f"{hit[0]}+{pc - hit[1]:#x}" if hit else hex(pc)
        text = f"{insn.mnemonic} {insn.op_str}".strip() if insn else "(undecodable)"
        if insn is not None and insn.mnemonic.startswith(("call", "j")) and insn.op_str.startswith("0x"):
            try:
                target = int(insn.op_str, 16)
                th = self.syms.lookup(target)
                if th:
                    text += f" <{th[0]}{'+' + hex(target - th[1]) if target != th[1] else ''}>"
            except ValueError:
                pass
        file, line = self.syms.file_line(pc)
        return {"pc": pc, "where": where, "insn": text,
                "loc": f"{file.rsplit('/', 1)[-1]}:{line}" if file else "", "changed": changed}

    # ---- sinks ------------------------------------------------------------------------
    def emit(self, ev: dict) -> None:
        if self.opts.chrome or self.opts.timeline:
            self.events.append(ev)
        out = self.opts.out
        if self.opts.fmt == "jsonl":
            out.write(json.dumps(ev) + "\n")
        else:
            out.write(self._text(ev) + "\n")
        out.flush()

    @staticmethod
    def _id(prefix: str, v) -> str:
        return f"{prefix}{v}" if v is not None else f"{prefix}-"

    def _text(self, ev: dict) -> str:
        kind = ev.get("event")
        if kind == "steps":
            lines = [f"    step {i + 1:>3}  {s['pc']:#x} {s['where']:<32} {s['insn']:<40} "
                     f"{s['loc']:<18} {' '.join(f'{n}={v}' for n, v in s['changed'].items())}".rstrip()
                     for i, s in enumerate(ev["steps"])]
            return "\n".join(lines) if lines else "    (no instructions stepped)"
        if "icount" in ev:
            clock = f"[{ev['icount']}]"
        else:       # time slices: the guest clock, in ms from the first event
            t0 = getattr(self, "_t0", None)
            if t0 is None:
                self._t0 = t0 = ev["ns"]
            clock = f"[{(ev['ns'] - t0) / 1e6:.6f}ms]"
        head = f"{clock} {self._id('M', ev['m'])} {self._id('P', ev['p'])} {self._id('G', ev['goid'])}"
        if ev.get("goid") == 0 and ev.get("m") is not None:     # on g0 (or gsignal)
            head += f" curg={'G' + str(ev['curg']) if ev.get('curg') else '-'}"
        if kind == "picked":
            return f"{head} {ev['func']} picked G{ev['picked']}"
        if kind == "return":
            res = ""
            if ev.get("results"):
                res = " (" + ", ".join(f"{a['name']}={a['value']}" for a in ev["results"]) + ")"
            took = f"{ev['dur_icount']} instructions" if "dur_icount" in ev else f"{ev['dur_ns']} ns"
            return f"{head} {ev['func']}() returned{res} after {took}"
        args = ", ".join(f"{a['name']}={a['value']}" for a in ev.get("args", []))
        loc = f" {ev['file']}:{ev['line']}" if ev.get("file") else ""
        inl = f" [inlined in {ev['inlined_in']}]" if ev.get("inlined_in") else ""
        line = f"{head} {ev['func']}({args}){inl} \u2190 {ev['caller']}{loc}"
        if "stack" in ev:
            frames = [f"    #{i} {f}" for i, f in enumerate(ev["stack"])]
            if "stack_switch" in ev:
                frames.insert(ev["stack_switch"], f"    --- goroutine G{ev['stack_goid']} (m.curg), "
                                                  f"from its saved context ---")
            line += "\n" + "\n".join(frames)
        if "sched" in ev and ev["sched"]:
            s = ev["sched"]
            ps = " ".join(f"P{p['id']}:{p['status'].lstrip('_P')}/q{p['runq']}"
                          + (f"/next=G{p['runnext']}" if p['runnext'] else "") for p in s.get("ps", []))
            line += (f"\n    sched: runqsize={s.get('runqsize')} npidle={s.get('npidle')} "
                     f"nmspinning={s.get('nmspinning')} nmidle={s.get('nmidle')} {ps}")
        return line

    def write_chrome(self) -> None:
        """Chrome trace-event JSON on the guest's clock (the virtual clock with --deterministic,
        so the file is reproducible). A call that returns on another thread (its goroutine moved
        to another M while it was parked) is an instant, not a span across tracks."""
        pid = self.k.pid
        t0 = min((ev["ns"] for ev in self.events if "ns" in ev), default=0)
        tev: list[dict] = []
        names: dict[int, int | None] = {}
        starts: dict[int, dict] = {}
        for ev in self.events:
            kind = ev.get("event")
            if kind == "steps":
                continue
            names.setdefault(ev["tid"], ev.get("m"))
            ts = (ev["ns"] - t0) / 1000.0
            if kind == "picked":
                tev.append({"name": f"schedule picked G{ev['picked']}", "cat": "sched", "ph": "i", "s": "t",
                            "ts": ts, "pid": pid, "tid": ev["tid"], "args": {"goid": ev["picked"]}})
                continue
            if kind == "return":
                start = starts.pop(ev["call_seq"], None)
                if start is not None and start["tid"] == ev["tid"]:
                    start["dur"] = ev["dur_ns"] / 1000.0
                    if "results" in ev:
                        start["args"]["results"] = ev["results"]
                elif start is not None:
                    start["ph"], start["s"] = "i", "t"
                    start.pop("dur", None)
                continue
            args = {"goid": ev["goid"], "curg": ev.get("curg"), "p": ev["p"], "m": ev["m"],
                    "caller": ev["caller"]}
            for key in ("icount", "args", "inlined_in"):
                if key in ev:
                    args[key] = ev[key]
            if "stack" in ev:
                args["stack"] = ev["stack"]
            item = {"name": ev["func"], "cat": "call", "ph": "i", "s": "t", "ts": ts, "pid": pid,
                    "tid": ev["tid"], "args": args}
            if self.opts.ret and not ev.get("inlined_in"):
                item.update(ph="X", dur=0.0)
                item.pop("s")
                starts[ev["seq"]] = item
            tev.append(item)
            if "sched" in ev and ev["sched"]:
                s = ev["sched"]
                counters = {"global": s.get("runqsize", 0)}
                counters.update({f"P{p['id']}": p["runq"] for p in s.get("ps", [])})
                tev.append({"name": "run queues", "ph": "C", "ts": ts, "pid": pid, "tid": 0,
                            "args": counters})
        for item in starts.values():     # calls that never returned: instants, not spans
            if item["ph"] == "X":
                item["ph"], item["s"] = "i", "t"
                item.pop("dur", None)
        meta = [{"name": "process_name", "ph": "M", "ts": 0, "pid": pid, "tid": 0,
                 "args": {"name": f"goemu {self.k.exe_path.rsplit('/', 1)[-1]}"}}]
        for tid, m in sorted(names.items()):
            meta.append({"name": "thread_name", "ph": "M", "ts": 0, "pid": pid, "tid": tid,
                         "args": {"name": f"M{m if m is not None else '?'} (tid {tid})"}})
        doc = {"traceEvents": meta + tev, "displayTimeUnit": "ns",
               "otherData": {"clock": "guest monotonic clock (virtual with --deterministic: "
                                      "1 instruction = 1 ns, idle time skipped)",
                             "binary": self.k.exe_path, "go": self.syms.go_version}}
        with open(self.opts.chrome, "w") as f:
            json.dump(doc, f, indent=None, separators=(",", ":"))
            f.write("\n")


def run_traced(k, tracer: Tracer) -> int:
    tracer.install()
    k.start()
    try:
        while k.run_until_break() == "break":
            if tracer.pending_step is not None:
                tracer.do_steps()
    finally:
        k.finish()
        if tracer.opts.chrome:
            tracer.write_chrome()
        if tracer.opts.timeline:
            from .timeline import render_html, render_svg
            title = f"goemu trace {' '.join(tracer.opts.patterns)} \u2014 {tracer.k.exe_path.rsplit('/', 1)[-1]}"
            render = render_html if tracer.opts.timeline.endswith((".html", ".htm")) else render_svg
            try:
                picture = render(tracer.events, title, tracer.opts.ret, tracer.opts.window)
            except ValueError as e:       # a window naming a function that was not traced
                print(f"goemu: {e}", file=sys.stderr)
            else:
                with open(tracer.opts.timeline, "w") as f:
                    f.write(picture)
    return k.exit_status

