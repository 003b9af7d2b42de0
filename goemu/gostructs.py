"""Every field of the runtime's g, m, p and schedt, for `print g` in goemu debug.

With DWARF (``Layouts.source == "dwarf"``) the fields are the binary's own: every member, nested
structs (``sched.pc``, ``stack.lo``) flattened, with Go type names; arrays are summarised.
Without, they are the fields of goemu's built-in table (``goemu.gotypes``). ``format_struct``
turns them into lines with the values read from guest memory: pointers in hex, code addresses
with their function, statuses and wait reasons by name, strings quoted.
"""
from __future__ import annotations

from typing import Callable, NamedTuple, Optional

from .gotypes import _SIGNED, STRUCTS, Layouts, _Dwarf, _name, pstatus_name, status_name

# Go's DW_AT_go_kind (attribute 0x2900) values: reflect.Kind
_GO_KIND = 0x2900
_KINDS = {1: "bool", 2: "int", 3: "int", 4: "int", 5: "int", 6: "int", 7: "uint", 8: "uint",
          9: "uint", 10: "uint", 11: "uint", 12: "uint", 13: "float", 14: "float", 17: "array",
          18: "ptr", 19: "ptr", 21: "ptr", 22: "ptr", 23: "slice", 24: "string", 25: "struct",
          26: "ptr", 20: "iface"}
_MAX_DEPTH = 3


class Member(NamedTuple):
    path: str
    offset: int
    size: int
    type: str       # Go type name ("" from the built-in table)
    kind: str       # bool int uint ptr float string slice array iface struct other


def members(layouts: Layouts, key: str) -> list[Member]:
    """The fields of runtime struct `key` ("g", "m", "p", "schedt"), flattened, in offset order."""
    cache = layouts.__dict__.setdefault("_members", {})
    if key in cache:
        return cache[key]
    out: list[Member] = []
    if layouts.source == "dwarf":
        try:
            dw = layouts.__dict__.get("_dwarf") or _Dwarf(layouts.symbols)
            layouts.__dict__["_dwarf"] = dw
            die = dw.struct(STRUCTS[key])
            if die is not None:
                _flatten(dw, die, "", 0, out, 0)
        except Exception:       # an unreadable DWARF: the table's fields below
            out = []
    if not out:
        for path, off in sorted(layouts.offsets.get(key, {}).items(), key=lambda kv: kv[1]):
            size = layouts.sizes[key][path]
            kind = "int" if (key, path) in _SIGNED else "ptr" if size == 8 else \
                "uint" if size in (1, 2, 4) else "other"
            out.append(Member(path, off, size, "", kind))
    cache[key] = out
    return out


def _typename(t) -> str:
    return (_name(t) or "?") if t is not None else "?"


def _flatten(dw: _Dwarf, die, prefix: str, base: int, out: list, depth: int) -> None:
    for c in die.iter_children():
        if c.tag != "DW_TAG_member":
            continue
        loc = c.attributes.get("DW_AT_data_member_location")
        if loc is None or not isinstance(loc.value, int):
            continue
        name = prefix + (_name(c) or "?")
        t = c.get_DIE_from_attribute("DW_AT_type") if "DW_AT_type" in c.attributes else None
        tname = _typename(t)
        real = dw._type(c)
        size = _Dwarf._size(real) or 0
        kind_attr = real.attributes.get(_GO_KIND) if real is not None else None
        kind = _KINDS.get(kind_attr.value, "other") if kind_attr is not None else \
            ("ptr" if real is not None and real.tag == "DW_TAG_pointer_type" else
             "struct" if real is not None and real.tag == "DW_TAG_structure_type" else "other")
        if real is not None and real.tag == "DW_TAG_base_type" and kind_attr is None:
            enc = real.attributes.get("DW_AT_encoding")
            kind = {2: "bool", 5: "int", 7: "uint", 8: "uint", 4: "float"}.get(enc.value if enc else 0, "other")
        off = base + loc.value
        if kind == "struct" and depth < _MAX_DEPTH and real is not None:
            _flatten(dw, real, name + ".", off, out, depth + 1)
            continue
        out.append(Member(name, off, size, tname, kind))


def format_struct(layouts: Layouts, key: str, addr: int, read: Callable[[int, int], bytes],
                  where: Callable[[int], Optional[str]]) -> list[str]:
    """`path = value` lines for runtime struct `key` at addr. where(pc) names a code address."""
    lines = []
    for f in members(layouts, key):
        raw = read(addr + f.offset, f.size) if f.size else b""
        lines.append(f"  {f.path} = {_value(layouts, key, f, raw, read, where)}")
    return lines


def _value(layouts, key: str, f: Member, raw: bytes, read, where) -> str:
    tname = f" ({f.type})" if f.kind in ("array", "other", "iface") and f.type else ""
    if f.kind in ("array", "other", "struct") or f.size not in (1, 2, 4, 8, 16, 24):
        return f"<{f.size} bytes>{tname}"
    if f.kind == "string" and f.size == 16:
        ptr, n = int.from_bytes(raw[:8], "little"), int.from_bytes(raw[8:], "little")
        if not n:
            return '""'
        data = read(ptr, min(n, 64))
        return repr_gostring(data) + ("..." if n > 64 else "")
    if f.kind == "slice" and f.size == 24:
        p, n, c = (int.from_bytes(raw[i:i + 8], "little") for i in (0, 8, 16))
        return f"{f.type} {{ptr={p:#x} len={n} cap={c}}}"
    if f.kind == "iface" and f.size == 16:
        return f"{{tab={int.from_bytes(raw[:8], 'little'):#x} data={int.from_bytes(raw[8:], 'little'):#x}}}"
    if f.size > 8:
        return f"<{f.size} bytes>{tname}"
    v = int.from_bytes(raw, "little", signed=(f.kind == "int"))
    if f.kind == "bool":
        return "true" if v else "false"
    if key == "g" and f.path == "atomicstatus":
        return f"{v} ({status_name(v)})"
    if key == "g" and f.path == "waitreason":
        return f"{v} ({layouts.waitreason_name(v) or '-'})"
    if key == "p" and f.path == "status":
        return f"{v} ({pstatus_name(v)})"
    if f.kind == "ptr" or (f.kind == "uint" and f.type.endswith("uintptr")):
        name = where(v) if v else None
        return f"{v:#x}" + (f" <{name}>" if name else "")
    return str(v)


def repr_gostring(data: bytes) -> str:
    """Bytes as a Go-quoted string (printable UTF-8 kept, the rest escaped)."""
    text = data.decode("utf-8", errors="backslashreplace")
    out = []
    for ch in text:
        if ch == '"':
            out.append('\\"')
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\\" or ch.isprintable():
            out.append(ch)
        else:
            out.append(f"\\x{ord(ch):02x}" if ord(ch) < 256 else f"\\u{ord(ch):04x}")
    return '"' + "".join(out) + '"'
