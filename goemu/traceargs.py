"""Arguments and results of Go functions, read at a traced entry or return.

Names and types come from the binary's DWARF (each function's DW_TAG_formal_parameter
children; ``DW_AT_variable_parameter`` marks results). Where the values live comes from the ABI,
not from DWARF's location lists (which describe the body, not the entry):

* Go <= 1.16 (stack ABI, esbuild's go1.14): arguments at 8(SP), 16(SP)... at the entry, each
  aligned to its type; results follow, aligned to 8; at the RET, SP is back where it was.
* Go >= 1.17 (register ABI, ABIInternal on amd64): each argument is register-assigned field by
  field, integers to RAX, RBX, RCX, RDI, RSI, R8, R9, R10, R11 and floats to X0-X14; an
  argument that does not fit (or an array of more than one element) goes to the stack instead.
  Results are assigned the same way from RAX/X0 again, and are read at the RET.

Values are shown the way someone reading the runtime wants them: ``*runtime.g`` as ``G7``
(its goid), ``*runtime.m``/``*runtime.p`` as ``M1``/``P0``, a func value as the function it
points to (``runtime.sysmon``), strings quoted, slices by length and capacity.
"""
from __future__ import annotations

import json
import re
import struct
from typing import Callable, NamedTuple, Optional

from unicorn import x86_const as X

INT_REGS = [X.UC_X86_REG_RAX, X.UC_X86_REG_RBX, X.UC_X86_REG_RCX, X.UC_X86_REG_RDI,
            X.UC_X86_REG_RSI, X.UC_X86_REG_R8, X.UC_X86_REG_R9, X.UC_X86_REG_R10, X.UC_X86_REG_R11]
FLOAT_REGS = [getattr(X, f"UC_X86_REG_XMM{i}") for i in range(15)]
GO_KIND = 0x2900            # DW_AT_go_kind: reflect.Kind of a type
_KIND_NAMES = {1: "bool", 13: "float", 14: "float", 15: "complex", 16: "complex", 18: "chan",
               19: "func", 20: "interface", 21: "map", 22: "ptr", 23: "slice", 24: "string",
               25: "struct", 26: "unsafe.Pointer", 17: "array"}


class Leaf(NamedTuple):
    off: int        # offset inside the value
    size: int
    kind: str       # "i" integer/pointer word, "f" float


class GoType(NamedTuple):
    name: str
    kind: str       # bool int uint uintptr float complex ptr func string slice interface struct array ...
    size: int
    align: int
    leaves: tuple   # scalar parts in memory order
    reg_ok: bool    # can be register-assigned (no array of length > 1 inside)


class Param(NamedTuple):
    name: str
    type: GoType
    out: bool


class Signature(NamedTuple):
    func: str
    params: list
    results: list
    abi: str        # "stack" | "regs"


def _type_info(dw, die, depth: int = 0) -> GoType:
    """A GoType from a DWARF type DIE (typedefs followed)."""
    while die is not None and die.tag == "DW_TAG_typedef" and "DW_AT_type" in die.attributes:
        die = die.get_DIE_from_attribute("DW_AT_type")
    if die is None or depth > 8:
        return GoType("?", "?", 8, 8, (Leaf(0, 8, "i"),), True)
    a = die.attributes
    name = a["DW_AT_name"].value.decode("utf-8", "replace") if "DW_AT_name" in a else "?"
    size = a["DW_AT_byte_size"].value if "DW_AT_byte_size" in a else 8
    gokind = a[GO_KIND].value if GO_KIND in a else None
    tag = die.tag
    if tag == "DW_TAG_pointer_type" or tag == "DW_TAG_subroutine_type":
        kind = "func" if tag == "DW_TAG_subroutine_type" or gokind == 19 else \
            _KIND_NAMES.get(gokind, "ptr")
        return GoType(name, kind, 8, 8, (Leaf(0, 8, "i"),), True)
    if tag == "DW_TAG_base_type":
        enc = a["DW_AT_encoding"].value if "DW_AT_encoding" in a else 7
        kind = {2: "bool", 4: "float", 3: "complex", 5: "int"}.get(enc, "uint")
        if name == "uintptr":
            kind = "uintptr"
        if kind == "complex":
            half = size // 2
            return GoType(name, kind, size, half, (Leaf(0, half, "f"), Leaf(half, half, "f")), True)
        return GoType(name, kind, size, max(1, min(size, 8)),
                      (Leaf(0, size, "f" if kind == "float" else "i"),), True)
    if tag == "DW_TAG_structure_type":
        leaves: list[Leaf] = []
        reg_ok = True
        align = 1
        for c in die.iter_children():
            if c.tag != "DW_TAG_member" or "DW_AT_type" not in c.attributes:
                continue
            loc = c.attributes.get("DW_AT_data_member_location")
            off = loc.value if loc is not None and isinstance(loc.value, int) else 0
            t = _type_info(dw, c.get_DIE_from_attribute("DW_AT_type"), depth + 1)
            leaves += [Leaf(off + lf.off, lf.size, lf.kind) for lf in t.leaves]
            reg_ok &= t.reg_ok
            align = max(align, t.align)
        if name == "string":
            kind = "string"
        elif name.startswith("[]"):
            kind = "slice"
        elif gokind == 20 or name in ("runtime.iface", "runtime.eface") or name.startswith("interface"):
            kind = "interface"
        else:
            kind = _KIND_NAMES.get(gokind, "struct")
        return GoType(name, kind, size, align, tuple(leaves), reg_ok)
    if tag == "DW_TAG_array_type":
        elem = _type_info(dw, die.get_DIE_from_attribute("DW_AT_type"), depth + 1) \
            if "DW_AT_type" in a else None
        n = 0
        for c in die.iter_children():
            if c.tag == "DW_TAG_subrange_type" and "DW_AT_count" in c.attributes:
                n = c.attributes["DW_AT_count"].value
        if elem is None:
            return GoType(name, "array", size, 8, (), False)
        leaves = tuple(Leaf(k * elem.size + lf.off, lf.size, lf.kind)
                       for k in range(min(n, 8)) for lf in elem.leaves)
        return GoType(name, "array", size, elem.align, leaves, n <= 1 and elem.reg_ok)
    return GoType(name, _KIND_NAMES.get(gokind, "?"), size, 8, (Leaf(0, min(size, 8), "i"),), True)


class Signatures:
    """Signatures of functions by name, from DWARF; None for a function DWARF does not describe
    (assembly, a stripped binary)."""

    def __init__(self, syms):
        self.syms = syms
        m = re.match(r"go1\.(\d+)", syms.go_version or "")
        self.regabi = bool(m and int(m.group(1)) >= 17)
        self._dw = None
        self._dw_failed = not syms.has_dwarf
        self._cache: dict[str, Optional[Signature]] = {}

    def _dwarf(self):
        if self._dw is None and not self._dw_failed:
            try:
                from .gotypes import _Dwarf
                self._dw = _Dwarf(self.syms)
            except Exception:
                self._dw_failed = True
        return self._dw

    def get(self, func: str) -> Optional[Signature]:
        if func in self._cache:
            return self._cache[func]
        sig = None
        dw = self._dwarf()
        die = dw.subprogram(func) if dw is not None else None
        if die is not None:
            params, results = [], []
            for c in die.iter_children():
                if c.tag != "DW_TAG_formal_parameter" or "DW_AT_type" not in c.attributes:
                    continue
                name = c.attributes["DW_AT_name"].value.decode() if "DW_AT_name" in c.attributes else "?"
                out = bool(c.attributes["DW_AT_variable_parameter"].value) \
                    if "DW_AT_variable_parameter" in c.attributes else False
                t = _type_info(dw, c.get_DIE_from_attribute("DW_AT_type"))
                (results if out else params).append(Param(name, t, out))
            # an assembly-wrapped (ABI0) entry keeps the stack ABI even in a register-ABI binary
            abi = "regs" if self.regabi and not self._is_abi0(func) else "stack"
            sig = Signature(func, params, results, abi)
        self._cache[func] = sig
        return sig

    def _is_abi0(self, func: str) -> bool:
        syms = self.syms
        return func + ".abi0" in getattr(syms, "_symbols", {})

    # ---- placing values ------------------------------------------------------------------
    @staticmethod
    def _place(params: list, regabi: bool, stack_base: int) -> tuple[list, int]:
        """[(param, [("r", reg) | ("f", reg) | ("m", offset)] per leaf)], stack bytes used."""
        ints = floats = 0
        off = stack_base
        out = []
        for p in params:
            t = p.type
            need_i = sum(1 for lf in t.leaves if lf.kind == "i")
            need_f = len(t.leaves) - need_i
            if regabi and t.reg_ok and ints + need_i <= len(INT_REGS) and floats + need_f <= len(FLOAT_REGS):
                where = []
                for lf in t.leaves:
                    if lf.kind == "i":
                        where.append(("r", INT_REGS[ints]))
                        ints += 1
                    else:
                        where.append(("f", FLOAT_REGS[floats]))
                        floats += 1
                out.append((p, where))
                continue
            a = max(t.align, 1)
            off = (off + a - 1) // a * a
            out.append((p, [("m", off + lf.off) for lf in t.leaves]))
            off += t.size
        return out, off

    def values(self, sig: Signature, which: str, reg: Callable[[int], int], sp: int,
               read: Callable[[int, int], bytes], show: Callable[[GoType, list], str]) -> list[dict]:
        """The arguments (which="args", at the entry) or results ("results", at the RET) as
        [{"name", "type", "value"}]; sp is SP at that instruction (the return-address slot)."""
        regabi = sig.abi == "regs"
        placed, end = self._place(sig.params, regabi, 0)
        if which == "results":
            base = (end + 7) // 8 * 8 if not regabi else \
                (self._stack_end(sig.params, regabi) + 7) // 8 * 8
            placed, _ = self._place(sig.results, regabi, base)
        out = []
        for p, where in placed:
            words = []
            for lf, (kind, loc) in zip(p.type.leaves, where):
                if kind == "m":
                    raw = read(sp + 8 + loc, lf.size)
                    words.append(int.from_bytes(raw, "little"))
                elif kind == "r":
                    v = reg(loc)
                    words.append(v & ((1 << (8 * lf.size)) - 1) if lf.size < 8 else v)
                else:
                    words.append(reg(loc) & ((1 << (8 * lf.size)) - 1))
            out.append({"name": p.name, "type": p.type.name, "value": show(p.type, words)})
        return out

    def results_after_return(self, sig: Signature, reg: Callable[[int], int], sp: int,
                             read: Callable[[int, int], bytes],
                             show: Callable[[GoType, list], str]) -> list[dict]:
        """The results of a call that has just returned (goemu debug's finish): at the return
        address the registers are the RET's and SP is 8 above the RET's."""
        return self.values(sig, "results", reg, sp - 8, read, show)

    def _stack_end(self, params: list, regabi: bool) -> int:
        return self._place(params, regabi, 0)[1]


def show_value(view, t, words: list[int]) -> str:
    """A Go value of type t from its words, as text (view: a goemu.runtime_view.RuntimeView):
    runtime pointers by their ids, func values by name, strings quoted. goemu trace --args and
    goemu debug's finish both show values with it."""
    if not words:
        return "{}"
    w0 = words[0]
    kind = t.kind
    if kind == "bool":
        return "true" if w0 & 0xFF else "false"
    if kind == "int":
        bits = 8 * min(t.size, 8)
        return str(w0 - (1 << bits) if w0 >> (bits - 1) & 1 else w0)
    if kind == "uint":
        if t.name == "runtime.waitReason":
            return f"{w0} ({view.lay.waitreason_name(w0)})"
        return str(w0)
    if kind == "uintptr":
        return str(w0) if w0 < 1 << 32 else hex(w0)     # sizes in decimal, addresses in hex
    if kind == "float":
        fmt, n = ("<f", 4) if t.size == 4 else ("<d", 8)
        return repr(struct.unpack(fmt, w0.to_bytes(8, "little")[:n])[0])
    if kind == "func":
        if not w0:
            return "nil"
        hit = view.syms.lookup(view.u64(w0))
        return hit[0] if hit else hex(w0)
    if kind == "ptr":
        if not w0:
            return "nil"
        if t.name == "*runtime.g":
            goid = view.goid_of(w0)
            return f"G{goid}" if goid else f"g@{w0:#x}"     # g0s, gsignal, a new g
        if t.name == "*runtime.funcval":
            hit = view.syms.lookup(view.u64(w0))
            return hit[0] if hit else hex(w0)
        if t.name == "*runtime.m":
            return f"M{view.field('m', w0, 'id', signed=True)}"
        if t.name == "*runtime.p":
            return f"P{view.field('p', w0, 'id', signed=True)}"
        return hex(w0)
    if kind == "string" and len(words) >= 2:
        n = words[1]
        raw = view.read(w0, min(n, 40)) if w0 and n < 1 << 30 else b""
        return json.dumps(raw.decode("utf-8", "replace") + ("..." if n > 40 else ""))
    if t.name == "runtime.gList":        # netpoll's result: the goroutines made ready
        return f"gList(head={'G' + str(view.goid_of(w0)) if w0 else 'nil'})"
    if kind == "slice" and len(words) >= 3:
        return f"{t.name}(len={words[1]}, cap={words[2]})"
    if kind == "interface" and not any(words):
        return "nil"
    return "{" + ", ".join(hex(v) for v in words) + "}"
