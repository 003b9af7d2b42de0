"""goemu trace: one event per entry of each traced function, with the runtime's M, P and G.

Code hooks sit only on the traced functions' entry addresses (and, with --ret, on their RET
instructions), so untraced code runs as in ``goemu run``. Slices are instruction-exact while
tracing, so every event carries ``icount``, the number of guest instructions executed before
it; with --deterministic two traces of the same run are byte-identical.

Sinks: text (in the spirit of ``dlv trace``), JSON Lines, and Chrome trace-event JSON (guest
threads as tracks, function spans, run-queue counters) that opens in Perfetto.
"""
from __future__ import annotations

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


@dataclass
class _Open:
    func: str
    rsp: int
    icount: int
    seq: int


@dataclass
class Tracer:
    k: object
    syms: Symbols
    layouts: Layouts
    opts: TraceOptions
    seq: int = 0
    events: list = field(default_factory=list)          # for the Chrome sink
    open_calls: dict = field(default_factory=dict)      # tid -> [_Open]
    pending_step: tuple | None = None
    muted: bool = False

    def __post_init__(self) -> None:
        self.view = RuntimeView(self.k, self.syms, self.layouts)
        self.md = Cs(CS_ARCH_X86, CS_MODE_64)
        self.targets: list[tuple[str, int, int]] = []   # (name, entry, end)
        ends = {f.entry: f.end for f in self.syms.functions()}
        seen = set()
        for pattern in self.opts.patterns:
            for name, addr in self.syms.glob(pattern):
                if addr in seen:
                    continue
                seen.add(addr)
                self.targets.append((name, addr, ends.get(addr, addr + 1)))
        self.targets.sort(key=lambda x: x[1])
        self._hooks = []

    # ---- installation ---------------------------------------------------------
    def install(self) -> None:
        uc = self.k.uc
        for name, entry, end in self.targets:
            self._hooks.append(uc.hook_add(UC_HOOK_CODE, self._on_entry, name, entry, entry))
            if self.opts.ret:
                code = self.syms.read(entry, end - entry) or b""
                for insn in self.md.disasm(code, entry):
                    if insn.mnemonic in ("ret", "retq"):
                        self._hooks.append(uc.hook_add(UC_HOOK_CODE, self._on_ret, name,
                                                       insn.address, insn.address))

    # ---- events -------------------------------------------------------------------
    def icount(self) -> int:
        return self.k.slicer.icount()

    def _caller(self, ret: int) -> tuple[str, str, int | None]:
        hit = self.syms.lookup(ret)
        if hit is None:
            return hex(ret), "", None
        name, start = hit
        file, line = self.syms.file_line(ret - 1)
        short = file.rsplit("/", 1)[-1] if file else ""
        return f"{name}+{ret - start:#x}", short, line

    def _on_entry(self, uc, address, size, name) -> None:
        if self.muted:
            return
        k = self.k
        t = k.current
        rsp = uc.reg_read(RSP)
        ret = self.view.u64(rsp)
        caller, file, line = self._caller(ret)
        mid, pid, goid = self.view.gmp(t)
        self.seq += 1
        ev = {"seq": self.seq, "icount": self.icount(), "tid": t.tid, "m": mid, "p": pid,
              "goid": goid, "func": name, "pc": address, "caller": caller,
              "caller_pc": ret, "file": file, "line": line}
        if self.opts.stack:
            frames = self.syms.unwind(self.view.u64, address, rsp, self.opts.stack)
            ev["stack"] = [f.func for f in frames]
        if self.opts.sched:
            ev["sched"] = self.view.sched()
        if self.opts.ret:
            calls = self.open_calls.setdefault(t.tid, [])
            calls.append(_Open(name, rsp, ev["icount"], self.seq))
            if len(calls) > 256:        # functions that never return (runtime.schedule, mcall)
                del calls[:-256]
        self.emit(ev)
        if self.opts.step:
            self.pending_step = (t, ev)
            k.stop("break")

    def _on_ret(self, uc, address, size, name) -> None:
        if self.muted:
            return
        t = self.k.current
        stack = self.open_calls.get(t.tid)
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
        mid, pid, goid = self.view.gmp(t)
        self.seq += 1
        now = self.icount()
        self.emit({"seq": self.seq, "icount": now, "tid": t.tid, "m": mid, "p": pid, "goid": goid,
                   "func": name, "pc": address, "event": "return", "call_seq": call.seq,
                   "dur_icount": now - call.icount})

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
        head = f"[{ev['icount']}] {self._id('M', ev['m'])} {self._id('P', ev['p'])} {self._id('G', ev['goid'])}"
        if kind == "return":
            return f"{head} {ev['func']}() returned after {ev['dur_icount']} instructions"
        loc = f" {ev['file']}:{ev['line']}" if ev.get("file") else ""
        line = f"{head} {ev['func']}() \u2190 {ev['caller']}{loc}"
        if "stack" in ev:
            line += "\n" + "\n".join(f"    #{i} {f}" for i, f in enumerate(ev["stack"]))
        if "sched" in ev and ev["sched"]:
            s = ev["sched"]
            ps = " ".join(f"P{p['id']}:{p['status'].lstrip('_P')}/q{p['runq']}"
                          + (f"/next=G{p['runnext']}" if p['runnext'] else "") for p in s.get("ps", []))
            line += (f"\n    sched: runqsize={s.get('runqsize')} npidle={s.get('npidle')} "
                     f"nmspinning={s.get('nmspinning')} nmidle={s.get('nmidle')} {ps}")
        return line

    def write_chrome(self) -> None:
        """Chrome trace-event JSON. Time is the instruction count (1 instruction = 1 ns), so
        the file is reproducible and spans show the work each call did."""
        pid = self.k.pid
        tev: list[dict] = []
        names: dict[int, int | None] = {}
        starts: dict[int, dict] = {}
        for ev in self.events:
            kind = ev.get("event")
            if kind == "steps":
                continue
            names.setdefault(ev["tid"], ev.get("m"))
            ts = ev["icount"] / 1000.0
            if kind == "return":
                start = starts.pop(ev["call_seq"], None)
                if start is not None:
                    start["dur"] = ev["dur_icount"] / 1000.0
                continue
            args = {"goid": ev["goid"], "p": ev["p"], "m": ev["m"], "caller": ev["caller"]}
            if "stack" in ev:
                args["stack"] = ev["stack"]
            item = {"name": ev["func"], "cat": "call", "ph": "i", "s": "t", "ts": ts, "pid": pid,
                    "tid": ev["tid"], "args": args}
            if self.opts.ret:
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
            item["ph"], item["s"] = "i", "t"
            item.pop("dur", None)
        meta = [{"name": "process_name", "ph": "M", "ts": 0, "pid": pid, "tid": 0,
                 "args": {"name": f"goemu {self.k.exe_path.rsplit('/', 1)[-1]}"}}]
        for tid, m in sorted(names.items()):
            meta.append({"name": "thread_name", "ph": "M", "ts": 0, "pid": pid, "tid": tid,
                         "args": {"name": f"M{m if m is not None else '?'} (tid {tid})"}})
        doc = {"traceEvents": meta + tev, "displayTimeUnit": "ns",
               "otherData": {"clock": "guest instructions (1 instruction = 1 ns)",
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
            from .timeline import render_svg
            title = f"goemu trace {' '.join(tracer.opts.patterns)} — {tracer.k.exe_path.rsplit('/', 1)[-1]}"
            with open(tracer.opts.timeline, "w") as f:
                f.write(render_svg(tracer.events, title, tracer.opts.ret))
    return k.exit_status

