"""The Go runtime's own view of itself, read from guest memory: the current G, M and P of a
guest thread, the scheduler (schedt and the Ps), all goroutines, all Ms.

Layouts come from goemu.gotypes (DWARF, or the built-in table for the Go version); the current
g of a thread is at FS_BASE-8, where the runtime keeps it (rt0_go, settls).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .cpu import FS_BASE
from .errno import LinuxError
from .gotypes import Layouts, pstatus_name, read_struct, status_name
from .symbols import Symbols

if TYPE_CHECKING:
    from .kernel import Kernel
    from .thread import Thread


class RuntimeView:
    def __init__(self, k: "Kernel", syms: Symbols, layouts: Layouts):
        self.k = k
        self.syms = syms
        self.lay = layouts
        self.ok = layouts.source != "none"

    # ---- memory ------------------------------------------------------------
    def read(self, addr: int, n: int) -> bytes:
        try:
            return self.k.mem.read(addr, n)
        except LinuxError:
            return b"\0" * n

    def u64(self, addr: int) -> int:
        return int.from_bytes(self.read(addr, 8), "little")

    def field(self, struct: str, addr: int, path: str, signed: bool = False) -> int | None:
        off = self.lay.offsets.get(struct, {}).get(path)
        if off is None or not addr:
            return None
        size = self.lay.sizes[struct][path]
        return int.from_bytes(self.read(addr + off, size), "little", signed=signed)

    # ---- per thread ----------------------------------------------------------
    def current_g(self, t: "Thread") -> int:
        fs = self.k.get_reg(t, FS_BASE)
        return self.u64(fs - 8) if fs >= 8 else 0

    def gmp(self, t: "Thread") -> tuple[int | None, int | None, int | None]:
        """(M id, P id, goid) of what thread t runs now; None where there is none."""
        if not self.ok:
            return None, None, None
        g = self.current_g(t)
        if not g:
            return None, None, None
        goid = self.field("g", g, "goid", signed=True)
        m = self.field("g", g, "m")
        mid = self.field("m", m, "id", signed=True) if m else None
        p = self.field("m", m, "p") if m else None
        pid = self.field("p", p, "id", signed=True) if p else None
        return mid, pid, goid

    def where(self, t: "Thread") -> dict:
        """What thread t runs now, for a trace event: {"g": g pointer, "m", "p", "goid",
        "curg" (goid of m.curg, the user goroutine the M serves; 0 when none), "curg_ptr"}."""
        out = {"g": 0, "m": None, "p": None, "goid": None, "curg": None, "curg_ptr": 0}
        if not self.ok:
            return out
        g = self.current_g(t)
        out["g"] = g
        if not g:
            return out
        out["goid"] = self.field("g", g, "goid", signed=True)
        m = self.field("g", g, "m")
        if m:
            out["m"] = self.field("m", m, "id", signed=True)
            p = self.field("m", m, "p")
            out["p"] = self.field("p", p, "id", signed=True) if p else None
            cg = self.field("m", m, "curg") or 0
            out["curg_ptr"] = cg
            out["curg"] = self.field("g", cg, "goid", signed=True) if cg else 0
        return out

    def goid_of(self, g: int) -> int | None:
        return self.field("g", g, "goid", signed=True) if g else None

    # ---- global state -----------------------------------------------------------
    def _slice(self, name: str) -> list[int]:
        base = self.lay.globals.get(name)
        if base is None:
            return []
        ptr, length = self.u64(base), self.u64(base + 8)
        if not ptr or length > 1 << 20:
            return []
        raw = self.read(ptr, 8 * length)
        return [int.from_bytes(raw[i:i + 8], "little") for i in range(0, len(raw), 8)]

    def ps(self) -> list[dict]:
        out = []
        for p in self._slice("runtime.allp"):
            if not p:
                continue
            v = read_struct(self.lay, "p", self.read, p, ["id", "status", "runqhead", "runqtail",
                                                           "runnext", "schedtick", "m"])
            runnext = v.get("runnext", 0)
            out.append({
                "id": v.get("id"), "status": pstatus_name(v.get("status", 0)),
                "runq": (v.get("runqtail", 0) - v.get("runqhead", 0)) & 0xFFFFFFFF,
                "runnext": self.field("g", runnext, "goid", signed=True) if runnext else None,
                "schedtick": v.get("schedtick"),
                "m": self.field("m", v["m"], "id", signed=True) if v.get("m") else None,
            })
        return out

    def sched(self) -> dict:
        base = self.lay.globals.get("runtime.sched")
        if base is None or "schedt" not in self.lay.offsets:
            return {}
        v = read_struct(self.lay, "schedt", self.read, base,
                        ["runqsize", "npidle", "nmspinning", "nmidle", "nmsys", "mnext", "nmfreed",
                         "gcwaiting", "goidgen"])
        out = {k: v[k] for k in ("runqsize", "npidle", "nmspinning", "nmidle", "nmsys", "gcwaiting")
               if k in v}
        if "mnext" in v and "nmfreed" in v:
            out["mcount"] = v["mnext"] - v["nmfreed"]
        out["ps"] = self.ps()
        return out

    def goroutines(self) -> list[dict]:
        out = []
        for g in self._slice("runtime.allgs"):
            if not g:
                continue
            v = read_struct(self.lay, "g", self.read, g, ["goid", "atomicstatus", "waitreason",
                                                           "startpc", "gopc", "sched.pc", "m"])
            status = v.get("atomicstatus", 0)
            if status == 6:     # _Gdead: a free g
                continue
            start = self.syms.lookup(v.get("startpc", 0))
            pc = v.get("sched.pc", 0)
            where = self.syms.lookup(pc) if pc else None
            out.append({
                "goid": v.get("goid"), "status": status_name(status),
                "waitreason": self.lay.waitreason_name(v.get("waitreason", 0)) if status == 4 else "",
                "start": start[0] if start else hex(v.get("startpc", 0)),
                "at": where[0] if where else "",
                "m": self.field("m", v["m"], "id", signed=True) if v.get("m") else None,
            })
        return out

    def threads(self) -> list[dict]:
        out = []
        for tid, t in sorted(self.k.threads.items()):
            mid, pid, goid = self.gmp(t) if t.state != "dead" else (None, None, None)
            m = None
            g = self.current_g(t) if t.state != "dead" else 0
            curg = None
            if g and self.ok:
                m = self.field("g", g, "m")
                cg = self.field("m", m, "curg") if m else None
                curg = self.field("g", cg, "goid", signed=True) if cg else None
            out.append({"tid": tid, "state": t.state, "wait": t.wait.what if t.wait else "",
                        "m": mid, "p": pid, "g": goid, "curg": curg})
        return out
