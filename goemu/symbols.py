"""Symbols of a static Go executable: ELF .symtab, Go's pclntab, the Go version.

This is the symbol layer under ``goemu trace`` / ``goemu debug``. It reads only the file; it
never needs the program to run. Sources, and what each one gives:

* ELF ``.symtab`` (absent in stripped binaries): every function and data symbol with its size,
  including the runtime globals (``runtime.allgs``, ``runtime.sched``, ...).
* Go's pclntab (``.gopclntab``; found by scanning for its magic when there are no section
  headers): the function table (entry, end, name), file:line for a PC, and the SP delta at a PC,
  which is what unwinding needs. Layouts: Go 1.2 (magic 0xfffffffb, Go 1.2-1.15), 1.16
  (0xfffffffa), 1.18 (0xfffffff0, Go 1.18-1.19) and 1.20 (0xfffffff1, Go 1.20+). The pc-value
  tables are decoded exactly as ``debug/gosym`` does.
* The Go version: ``runtime.buildVersion`` (a string header in .data), else the
  ``.go.buildinfo`` blob, else the first ``go1.N[.M]`` string in the read-only data.

Unwinding (``frames``/``unwind``) follows gentraceback on amd64 and, for go1.14/1.15 and
go1.18/1.19 binaries, expands calls the compiler inlined (FUNCDATA_InlTree + PCDATA
InlTreeIndex), so stacks read like Go's own tracebacks.

Names are reported the way Go prints them: the linker's ``.abi0`` suffix on assembly functions
(Go 1.17+ .symtab) is dropped, and ``address_of`` accepts either spelling.
"""
from __future__ import annotations

import bisect
import fnmatch
import os
import re
import struct
from typing import Callable, NamedTuple, Optional

__all__ = ["Symbols", "PclnTab", "Func", "Frame", "FrameInfo", "InlineSite", "SymbolsError", "STOP_FUNCS"]


class SymbolsError(Exception):
    """The file is not an ELF64 little-endian executable we can read."""


class Func(NamedTuple):
    name: str
    entry: int
    end: int


class Frame(NamedTuple):
    """One frame of an unwound stack, as ``unwind`` returns it."""
    pc: int
    func: Optional[str]
    file: Optional[str]
    line: Optional[int]


class InlineSite(NamedTuple):
    """One place where the compiler inlined a function: ``pc`` is the lowest pc of the inlined
    body (where a breakpoint on the inlined function goes, as DWARF's DW_AT_low_pc), ``host``
    and ``host_entry`` the physical function it was inlined into."""
    name: str
    pc: int
    host: str
    host_entry: int


class FrameInfo(NamedTuple):
    """A frame with its stack pointer (``frames``); ``sp`` is the SP while ``pc`` runs.

    ``inlined`` frames are calls the compiler inlined into the next (physical) frame: they
    share its pc and sp, and ``entry`` is the physical function's entry."""
    pc: int
    sp: int
    func: Optional[str]
    entry: Optional[int]
    file: Optional[str]
    line: Optional[int]
    inlined: bool = False


# Unwinding stops after a frame of one of these: the bottom of a goroutine stack (goexit), of
# an M's g0 stack (mstart) and of the main thread (rt0_go); and, as the runtime's own traceback
# does (go1.14 topofstack(), go1.19 funcFlag_TOPFRAME/SPWRITE), at the functions that switch
# stacks, where the word above the frame is not a return address: on a g0 stack the frame
# above systemstack is a fake mstart (go1.14) or garbage (go1.17+), and mcall/morestack never
# return.
STOP_FUNCS = frozenset({"runtime.goexit", "runtime.mstart", "runtime.rt0_go", "runtime.mcall",
                        "runtime.morestack", "runtime.systemstack", "runtime.asmcgocall"})

_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
_PHDR = struct.Struct("<IIQQQQQQ")
_SHDR = struct.Struct("<IIQQQQIIQQ")
_SYM = struct.Struct("<IBBHQQ")
PT_LOAD = 1
SHT_SYMTAB, SHT_NOBITS = 2, 8
STT_OBJECT, STT_FUNC = 1, 2

PCLN_MAGICS = {
    0xFFFFFFFB: "1.2",
    0xFFFFFFFA: "1.16",
    0xFFFFFFF0: "1.18",
    0xFFFFFFF1: "1.20",
}
BUILDINFO_MAGIC = b"\xff Go buildinf:"
_GOVERSION_RE = re.compile(rb"go1\.\d+(?:\.\d+)?(?:(?:beta|rc)\d+)?")


def go_name(name: str) -> str:
    """The name as Go prints it: without the linker's ABI0 wrapper suffix."""
    return name[:-5] if name.endswith(".abi0") else name


class _Section(NamedTuple):
    name: str
    type: int
    flags: int
    addr: int
    offset: int
    size: int
    link: int


class _Segment(NamedTuple):
    vaddr: int
    memsz: int
    filesz: int
    offset: int
    flags: int


# --------------------------------------------------------------------------------------------
# pclntab


def _cstring(data, off: int) -> str:
    end = data.index(b"\0", off)
    return bytes(data[off:end]).decode("utf-8", "replace")


class PclnTab:
    """Go's runtime symbol table (pclntab), any of the four Go 1.2+ layouts.

    ``data`` is the table from its header to (at least) its end. The parsing follows
    ``debug/gosym/pclntab.go`` (``parsePclnTab``, ``funcData``, ``pcvalue``, ``go12PCToFile``).
    """

    def __init__(self, data: bytes, text_start: Optional[int] = None):
        if len(data) < 16:
            raise SymbolsError("pclntab too short")
        magic = struct.unpack_from("<I", data)[0]
        if magic not in PCLN_MAGICS or data[4] != 0 or data[5] != 0:
            raise SymbolsError("no Go 1.2+ pclntab magic")
        if data[6] not in (1, 2, 4) or data[7] not in (4, 8):
            raise SymbolsError("bad pclntab quantum/pointer size")
        self.data = data
        self.magic = magic
        self.version = PCLN_MAGICS[magic]
        self.quantum = data[6]
        self.ptrsize = ps = data[7]
        self._uptr = "<Q" if ps == 8 else "<I"
        word = lambda n: struct.unpack_from(self._uptr, data, 8 + n * ps)[0]  # noqa: E731
        self.text_start = 0
        if self.version in ("1.18", "1.20"):
            self.nfunc, self.nfiles = word(0), word(1)
            self.text_start = word(2) if text_start is None else text_start
            self._funcnametab, self._cutab, self._filetab = word(3), word(4), word(5)
            self._pctab, self._funcdata = word(6), word(7)
            self._fieldsz, self._functab = 4, word(7)
        elif self.version == "1.16":
            self.nfunc, self.nfiles = word(0), word(1)
            self._funcnametab, self._cutab, self._filetab = word(2), word(3), word(4)
            self._pctab, self._funcdata = word(5), word(6)
            self._fieldsz, self._functab = ps, word(6)
        else:  # Go 1.2 layout (Go 1.2 .. 1.15)
            self.nfunc = word(0)
            self._funcnametab = self._pctab = self._funcdata = 0
            self._cutab = 0
            self._fieldsz, self._functab = ps, 8 + ps
            fileoff = struct.unpack_from("<I", data, self._functab + (2 * self.nfunc + 1) * ps)[0]
            self._filetab = fileoff
            self.nfiles = struct.unpack_from("<I", data, fileoff)[0]
        if not 0 < self.nfunc < 10_000_000:
            raise SymbolsError("implausible pclntab function count")
        fmt = "<%d%s" % (2 * self.nfunc + 1, "I" if self._fieldsz == 4 else "Q")
        words = struct.unpack_from(fmt, data, self._functab)
        base = self.text_start if self._fieldsz == 4 else 0
        # entries[i] is the entry PC of function i; entries[nfunc] is the end of the last one.
        self.entries = [w + base for w in words[0::2]]
        self._funcoffs = list(words[1::2])
        if any(a > b for a, b in zip(self.entries, self.entries[1:])):
            raise SymbolsError("pclntab function table is not sorted")
        self._names: list[Optional[str]] = [None] * self.nfunc
        self._sz0 = 4 if self.version in ("1.18", "1.20") else ps
        # sizeof(_func) before its pcdata offsets: the entry, the uint32 fields (7 in 1.2,
        # +cuOffset from 1.16, +startLine from 1.20), then funcID, flag/pad, nfuncdata bytes.
        nfields = {"1.2": 7, "1.16": 8, "1.18": 8, "1.20": 9}[self.version]
        self._func_fixed = self._sz0 + 4 * nfields + 4
        self.addr: Optional[int] = None  # virtual address of data[0], when known
        self._tables: dict = {}

    # -- functions

    @property
    def end(self) -> int:
        return self.entries[-1]

    def func_index(self, pc: int) -> Optional[int]:
        if pc < self.entries[0] or pc >= self.entries[-1]:
            return None
        return bisect.bisect_right(self.entries, pc) - 1

    def _field(self, i: int, n: int) -> int:
        """Field n (1..9) of function i's _func: uint32s after the entry (uintptr or uint32)."""
        off = self._funcdata + self._funcoffs[i] + self._sz0 + (n - 1) * 4
        return struct.unpack_from("<I", self.data, off)[0]

    def func_entry(self, i: int) -> int:
        """The entry recorded in _func itself (equals entries[i])."""
        off = self._funcdata + self._funcoffs[i]
        if self._sz0 == 4:
            return struct.unpack_from("<I", self.data, off)[0] + self.text_start
        return struct.unpack_from(self._uptr, self.data, off)[0]

    def name(self, i: int) -> str:
        n = self._names[i]
        if n is None:
            n = self._names[i] = _cstring(self.data, self._funcnametab + self._field(i, 1))
        return n

    def funcs(self) -> list[Func]:
        e = self.entries
        return [Func(self.name(i), e[i], e[i + 1]) for i in range(self.nfunc)]

    def lookup(self, pc: int) -> Optional[tuple[str, int]]:
        i = self.func_index(pc)
        return None if i is None else (self.name(i), self.entries[i])

    # -- pc-value tables

    def _readvarint(self, p: int) -> tuple[int, int]:
        data = self.data
        v = shift = 0
        while True:
            b = data[p]
            p += 1
            v |= (b & 0x7F) << shift
            if not b & 0x80:
                return v & 0xFFFFFFFF, p
            shift += 7

    def _table(self, off: int, entry: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Decode a pc-value table into (range ends, values), as gosym's step() loop does:
        value vals[k] holds for pc < ends[k] (and >= the previous end)."""
        key = (off, entry)
        hit = self._tables.get(key)
        if hit is not None:
            return hit
        if len(self._tables) > 65536:
            self._tables.clear()
        p = self._pctab + off
        pc, val = entry, -1
        ends: list[int] = []
        vals: list[int] = []
        q = self.quantum
        while True:
            first = pc == entry
            uv, p = self._readvarint(p)
            if uv == 0 and not first:
                break
            vdelta = ~(uv >> 1) if uv & 1 else uv >> 1
            pcdelta, p = self._readvarint(p)
            pc += pcdelta * q
            val += vdelta
            ends.append(pc)
            vals.append(val)
        hit = self._tables[key] = (tuple(ends), tuple(vals))
        return hit

    def pcvalue(self, off: int, entry: int, pc: int) -> Optional[int]:
        """The value a pc-value table gives at pc; None if the table is absent or ends first."""
        if off == 0:
            return None
        ends, vals = self._table(off, entry)
        k = bisect.bisect_right(ends, pc)
        return vals[k] if k < len(vals) else None

    def pcdata(self, i: int, table: int, pc: int) -> Optional[int]:
        """PCDATA table `table` of function i at pc (None if the function has no such table)."""
        npcdata = self._field(i, 7)
        if table >= npcdata:
            return None
        off = self._funcdata + self._funcoffs[i] + self._func_fixed + 4 * table
        return self.pcvalue(struct.unpack_from("<I", self.data, off)[0], self.entries[i], pc)

    def funcdata(self, i: int, k: int) -> Optional[int]:
        """FUNCDATA slot k of function i: an absolute address (layouts 1.2 and 1.16) or an
        offset from moduledata.gofunc (1.18+); None when the slot is empty."""
        base = self._funcdata + self._funcoffs[i]
        if k >= self.data[base + self._func_fixed - 1]:  # nfuncdata, the last byte
            return None
        p = base + self._func_fixed + 4 * self._field(i, 7)
        if self._sz0 == 4:
            v = struct.unpack_from("<I", self.data, p + 4 * k)[0]
            return None if v == 0xFFFFFFFF else v
        if self.ptrsize == 8 and ((self.addr or 0) + p) & 4:  # uintptrs are 8-aligned
            p += 4
        v = struct.unpack_from(self._uptr, self.data, p + self.ptrsize * k)[0]
        return v or None

    def funcname_at(self, nameoff: int) -> str:
        """A function name by its offset in the name table (inlinedCall.func_)."""
        return _cstring(self.data, self._funcnametab + nameoff)

    def spdelta(self, pc: int) -> Optional[int]:
        """Bytes between SP and the return-address slot at pc (0 at the entry)."""
        i = self.func_index(pc)
        if i is None:
            return None
        return self.pcvalue(self._field(i, 4), self.entries[i], pc)

    def file_line(self, pc: int) -> tuple[Optional[str], Optional[int]]:
        i = self.func_index(pc)
        if i is None:
            return None, None
        entry = self.entries[i]
        line = self.pcvalue(self._field(i, 6), entry, pc)
        fno = self.pcvalue(self._field(i, 5), entry, pc)
        return self._file(i, fno), line

    def _file(self, i: int, fno: Optional[int]) -> Optional[str]:
        if fno is None:
            return None
        if self.version == "1.2":
            if fno <= 0 or fno >= self.nfiles:
                return None
            off = struct.unpack_from("<I", self.data, self._filetab + 4 * fno)[0]
            return _cstring(self.data, off)
        if fno < 0:  # 0 is a valid file index from Go 1.16 on
            return None
        cuoff = self._field(i, 8)
        fnoff = struct.unpack_from("<I", self.data, self._cutab + (cuoff + fno) * 4)[0]
        if fnoff == 0xFFFFFFFF:
            return None
        return _cstring(self.data, self._filetab + fnoff)


# --------------------------------------------------------------------------------------------
# the executable


class Symbols:
    """Symbols of one static Go ELF executable (a path, or the file's bytes)."""

    def __init__(self, source):
        if isinstance(source, (bytes, bytearray, memoryview)):
            self.path: Optional[str] = None
            data = bytes(source)
        else:
            self.path = os.fspath(source)
            with open(self.path, "rb") as f:
                data = f.read()
        self.data = data
        # what a reader could not read (a truncated or corrupt file): one line each, shown as
        # notes by `goemu trace`/`goemu debug`, which go on with what could be read
        self.notes: list[str] = []
        self._parse_elf()
        self._symtab_funcs: list[Func] = []
        self._symbols: dict[str, tuple[int, int, int]] = {}  # name -> (addr, size, type)
        self.has_symtab = False
        self._load_symtab()
        self.pclntab: Optional[PclnTab] = None
        self.pclntab_addr: Optional[int] = None
        self.pclntab_found_by: Optional[str] = None
        self._load_pclntab()
        self._go_version: Optional[str] = None
        self._go_version_source: Optional[str] = None
        self._go_version_done = False
        # lookup() table: .symtab when present (it has sizes), else pclntab.
        funcs = self._symtab_funcs if self._symtab_funcs else (
            self.pclntab.funcs() if self.pclntab else [])
        self._funcs = funcs
        self._starts = [f.entry for f in funcs]

    # -- ELF

    def _parse_elf(self) -> None:
        d = self.data
        if d[:4] != b"\x7fELF" or len(d) < _EHDR.size:
            raise SymbolsError("not an ELF file")
        if d[4] != 2 or d[5] != 1:
            raise SymbolsError("not a little-endian ELF64 file")
        (_i, _t, self.machine, _v, self.entry, phoff, shoff, _f, _eh, phentsize, phnum,
         shentsize, shnum, shstrndx) = _EHDR.unpack_from(d)
        self.segments: list[_Segment] = []
        for k in range(phnum):
            o = phoff + k * phentsize
            if o + _PHDR.size > len(d):
                break
            p_type, p_flags, p_off, p_vaddr, _pa, p_filesz, p_memsz, _al = _PHDR.unpack_from(d, o)
            if p_type == PT_LOAD:
                self.segments.append(_Segment(p_vaddr, p_memsz, p_filesz, p_off, p_flags))
        self.sections: dict[str, _Section] = {}
        self._section_list: list[_Section] = []
        if shoff and shnum and shentsize < _SHDR.size:
            self.notes.append(f"ELF section header size {shentsize} is too small ({_SHDR.size}): "
                              "section headers not read")
        elif shoff and shnum and shoff + (shnum - 1) * shentsize + _SHDR.size > len(d):
            self.notes.append(f"the {shnum} ELF section headers at offset {shoff:#x} lie past the "
                              f"end of the file ({len(d)} bytes): not read")
        elif shoff and shnum:
            raw = [_SHDR.unpack_from(d, shoff + k * shentsize) for k in range(shnum)]
            strtab = raw[shstrndx] if shstrndx < shnum else None
            if strtab is None:
                self.notes.append(f"ELF section name table index {shstrndx} is out of range "
                                  f"({shnum} sections): section names unknown")
            for r in raw:
                name = ""
                if strtab is not None:
                    try:
                        name = _cstring(d, strtab[4] + r[0])
                    except (ValueError, IndexError):
                        name = ""
                s = _Section(name, r[1], r[2], r[3], r[4], r[5], r[6])
                if s.type != SHT_NOBITS and s.size and s.offset + s.size > len(d):
                    # clip to what the file holds; readers see a short section
                    have = max(0, len(d) - s.offset)
                    self.notes.append(f"section {name or '#%d' % len(self._section_list)}: {s.size} "
                                      f"bytes at offset {s.offset:#x} lie past the end of the file "
                                      f"({len(d)} bytes): {'read the first %d' % have if have else 'not read'}")
                    s = s._replace(size=have)
                self._section_list.append(s)
                if name and name not in self.sections:
                    self.sections[name] = s
        self.has_sections = bool(self.sections)

    def section_data(self, name: str) -> Optional[bytes]:
        """Raw file bytes of a section (compressed sections stay compressed)."""
        s = self.sections.get(name)
        if s is None or s.type == SHT_NOBITS:
            return None
        return self.data[s.offset:s.offset + s.size]

    def read(self, addr: int, size: int) -> Optional[bytes]:
        """Bytes at a virtual address as the loaded image starts out (bss reads as zeros)."""
        for s in self.segments:
            if s.vaddr <= addr and addr + size <= s.vaddr + s.memsz:
                rel = addr - s.vaddr
                out = self.data[s.offset + rel:s.offset + min(rel + size, s.filesz)] \
                    if rel < s.filesz else b""
                return out + bytes(size - len(out))
        return None

    def _file_to_vaddr(self, off: int) -> Optional[int]:
        for s in self.segments:
            if s.offset <= off < s.offset + s.filesz:
                return s.vaddr + off - s.offset
        return None

    # -- .symtab

    def _load_symtab(self) -> None:
        symtab = next((s for s in self._section_list if s.type == SHT_SYMTAB), None)
        if symtab is None or symtab.link >= len(self._section_list):
            return
        strtab = self._section_list[symtab.link]
        d = self.data
        funcs: dict[int, Func] = {}
        n = symtab.size // _SYM.size       # sections are clipped to the file (_parse_elf)
        bad_names = 0
        for k in range(1, n):
            st_name, st_info, _o, _shndx, value, size = _SYM.unpack_from(
                d, symtab.offset + k * _SYM.size)
            typ = st_info & 0xF
            if typ not in (STT_FUNC, STT_OBJECT) or value == 0:
                continue
            if st_name >= strtab.size:
                bad_names += 1
                continue
            try:
                name = _cstring(d, strtab.offset + st_name)
            except ValueError:
                bad_names += 1
                continue
            self._symbols.setdefault(name, (value, size, typ))
            if typ == STT_FUNC:
                g = go_name(name)
                if g != name:
                    self._symbols.setdefault(g, (value, size, typ))
                # Zero-sized markers (runtime.text, runtime.etext) are not functions.
                if size and value not in funcs:
                    funcs[value] = Func(g, value, value + size)
        if bad_names:
            self.notes.append(f".symtab: {bad_names} symbol names lie outside their string table "
                              f"({strtab.size} bytes): those symbols left out")
        self._symtab_funcs = sorted(funcs.values(), key=lambda f: f.entry)
        self.has_symtab = bool(self._symbols)

    # -- pclntab

    def _load_pclntab(self) -> None:
        sec = self.sections.get(".gopclntab")
        if sec is not None and sec.type != SHT_NOBITS:
            try:
                self.pclntab = PclnTab(self.data[sec.offset:sec.offset + sec.size],
                                       self._text_start())
                self.pclntab_addr = self.pclntab.addr = sec.addr
                self.pclntab_found_by = ".gopclntab section"
                return
            except (SymbolsError, struct.error, IndexError, ValueError) as e:
                why = "truncated or corrupt" if isinstance(e, (struct.error, IndexError)) else str(e)
                self.notes.append(f".gopclntab unreadable ({why}): looking for a pclntab by its "
                                  "magic bytes")
        self._scan_pclntab()

    def _text_start(self) -> Optional[int]:
        sym = self._symbols.get("runtime.text")
        if sym:
            return sym[0]
        return None  # the pclntab header's own textStart

    def _scan_pclntab(self) -> None:
        """No usable .gopclntab section: find the header by its magic, validate it by parsing."""
        d = self.data
        execs = [s for s in self.segments if s.flags & 1]
        for magic in PCLN_MAGICS:
            needle = struct.pack("<I", magic) + b"\0\0"
            pos = d.find(needle)
            while pos != -1:
                if pos % 4 == 0 and pos + 16 <= len(d) and d[pos + 6] in (1, 2, 4) \
                        and d[pos + 7] in (4, 8):
                    try:
                        t = PclnTab(d[pos:], None)
                        ok = t.nfunc > 1 and (not execs or any(
                            s.vaddr <= t.entries[0] and t.entries[-1] <= s.vaddr + s.memsz
                            for s in execs))
                        if ok:
                            t.name(0)
                            t.name(t.nfunc - 1)
                            self.pclntab = t
                            self.pclntab_addr = t.addr = self._file_to_vaddr(pos)
                            self.pclntab_found_by = "magic scan at file offset %#x" % pos
                            return
                    except (SymbolsError, struct.error, IndexError, ValueError):
                        pass
                pos = d.find(needle, pos + 1)

    @property
    def has_pclntab(self) -> bool:
        return self.pclntab is not None

    @property
    def has_dwarf(self) -> bool:
        return any(n in self.sections for n in (".debug_info", ".zdebug_info"))

    # -- functions

    def functions(self) -> list[Func]:
        """All functions (from .symtab when present, else from the pclntab), sorted by entry."""
        return list(self._funcs)

    def lookup(self, pc: int) -> Optional[tuple[str, int]]:
        """(function name, entry) of the function containing pc, or None."""
        k = bisect.bisect_right(self._starts, pc) - 1
        if k >= 0:
            f = self._funcs[k]
            end = f.end if f.end > f.entry else (
                self._starts[k + 1] if k + 1 < len(self._starts) else f.entry + 1)
            if pc < end:
                return f.name, f.entry
        if self.pclntab is not None and self._funcs is self._symtab_funcs:
            return self.pclntab.lookup(pc)
        return None

    def address_of(self, name: str) -> Optional[int]:
        """Address of a function or data symbol; functions also resolve without .symtab."""
        for n in (name, name + ".abi0"):
            s = self._symbols.get(n)
            if s is not None:
                return s[0]
        if self.pclntab is not None:
            idx = self._pcln_name_index()
            i = idx.get(name)
            if i is None:
                i = idx.get(go_name(name))
            if i is not None:
                return self.pclntab.entries[i]
        return None

    def size_of(self, name: str) -> Optional[int]:
        """Symbol size from .symtab (functions: end - entry from the pclntab)."""
        for n in (name, name + ".abi0"):
            s = self._symbols.get(n)
            if s is not None:
                return s[1]
        if self.pclntab is not None:
            i = self._pcln_name_index().get(name)
            if i is not None:
                return self.pclntab.entries[i + 1] - self.pclntab.entries[i]
        return None

    def _pcln_name_index(self) -> dict[str, int]:
        idx = getattr(self, "_pcln_idx", None)
        if idx is None:
            t = self.pclntab
            idx = {}
            for i in range(t.nfunc):
                idx.setdefault(t.name(i), i)
            self._pcln_idx = idx
        return idx

    def glob(self, pattern: str, data: bool = False) -> list[tuple[str, int]]:
        """(name, address) of every function (and with data=True, data symbol) whose name
        matches the fnmatch pattern, sorted by address."""
        out: dict[str, int] = {}
        for f in self._funcs:
            if fnmatch.fnmatchcase(f.name, pattern):
                out.setdefault(f.name, f.entry)
        if self.pclntab is not None and self._funcs is self._symtab_funcs:
            for name, i in self._pcln_name_index().items():
                if name not in out and fnmatch.fnmatchcase(name, pattern):
                    out[name] = self.pclntab.entries[i]
        if data:
            for name, (addr, _size, typ) in self._symbols.items():
                if typ == STT_OBJECT and fnmatch.fnmatchcase(name, pattern):
                    out.setdefault(name, addr)
        return sorted(out.items(), key=lambda kv: (kv[1], kv[0]))

    # -- pclntab queries

    def file_line(self, pc: int) -> tuple[Optional[str], Optional[int]]:
        if self.pclntab is None:
            return None, None
        return self.pclntab.file_line(pc)

    def spdelta(self, pc: int) -> Optional[int]:
        if self.pclntab is None:
            return None
        return self.pclntab.spdelta(pc)

    def frames(self, read_u64: Callable[[int], int], pc: int, sp: int,
               max_frames: int = 100, inline: bool = True) -> list[FrameInfo]:
        """Unwind a Go stack from (pc, sp) the way gentraceback does on amd64.

        For each frame: caller pc = *(sp + spdelta(pc)), caller sp = sp + spdelta(pc) + 8.
        Stops after a frame of a STOP_FUNCS function (runtime.goexit, runtime.mstart,
        runtime.rt0_go, and the stack switchers), at pc 0, at a return address outside every
        function, when read_u64 raises, or after max_frames frames. file:line of a caller
        frame is looked up at pc-1 (inside the CALL), except right above runtime.sigpanic,
        whose "return address" is the faulting instruction itself. With inline=True, calls
        the compiler inlined are listed as frames of their own (``inlined=True``), as Go's
        tracebacks show them (go1.14/1.15 and go1.18/1.19 binaries; see inline_supported).
        """
        out: list[FrameInfo] = []
        exact = True  # pc is the instruction being executed, not a return address
        while len(out) < max_frames and pc != 0:
            hit = self.pclntab.lookup(pc) if self.pclntab is not None else self.lookup(pc)
            if hit is None:
                if not out:  # an innermost pc outside Go code (vDSO, bad jump): show it
                    out.append(FrameInfo(pc, sp, None, None, None, None))
                break
            name, entry = hit
            name = go_name(name)
            tpc = pc if exact or pc <= entry else pc - 1
            if inline:
                calls, tpc = self.inlined_calls(tpc)
                for iname, ipc in calls:
                    file, line = self.file_line(ipc)
                    out.append(FrameInfo(pc, sp, iname, entry, file, line, True))
            file, line = self.file_line(tpc)
            out.append(FrameInfo(pc, sp, name, entry, file, line))
            if name in STOP_FUNCS:
                break
            delta = self.spdelta(pc)
            if delta is None or delta < 0:
                break
            try:
                pc = read_u64(sp + delta)
            except Exception:
                break
            sp = sp + delta + 8
            exact = name == "runtime.sigpanic"
        return out[:max_frames]

    # -- inlining

    @property
    def inline_supported(self) -> bool:
        """Whether inlined calls can be expanded: the FUNCDATA index of the inline tree and
        the inlinedCall layout are known (and tested) for go1.14/1.15 and go1.18/1.19."""
        return self._inltree_slot() is not None

    def _inltree_slot(self) -> Optional[int]:
        if self.pclntab is None:
            return None
        v = self.go_version or ""
        m = re.match(r"go1\.(\d+)", v)
        minor = int(m.group(1)) if m else None
        if self.pclntab.version == "1.2" and minor in (14, 15):
            return 4  # _FUNCDATA_InlTree (after RegPointerMaps, StackObjects)
        if self.pclntab.version == "1.18" and minor in (18, 19):
            return 3  # _FUNCDATA_InlTree
        return None

    def _gofunc(self) -> Optional[int]:
        """moduledata.gofunc, the base of 1.18+ FUNCDATA offsets ("go.func.*")."""
        if hasattr(self, "_gofunc_cache"):
            return self._gofunc_cache
        addr = self.address_of("go.func.*")
        if addr is None and self.pclntab is not None and self.pclntab_addr is not None:
            addr = self._gofunc_from_moduledata()
        self._gofunc_cache = addr
        return addr

    def _gofunc_from_moduledata(self) -> Optional[int]:
        # runtime.firstmoduledata starts {pcHeader *pcHeader; funcnametab []byte; ...} and
        # holds gofunc at offset 304 in go1.18/1.19 (runtime/symtab.go moduledata).
        t = self.pclntab
        want = struct.pack("<QQ", self.pclntab_addr, self.pclntab_addr + t._funcnametab)
        for s in self.segments:
            if not s.flags & 2:  # writable segments (.noptrdata)
                continue
            blob = self.data[s.offset:s.offset + s.filesz]
            pos = blob.find(want)
            while pos != -1:
                if pos % 8 == 0 and pos + 312 <= len(blob):
                    gofunc = struct.unpack_from("<Q", blob, pos + 304)[0]
                    if any(r.vaddr <= gofunc < r.vaddr + r.filesz for r in self.segments
                           if not r.flags & 1):
                        return gofunc
                pos = blob.find(want, pos + 1)
        return None

    def inlined_calls(self, tracepc: int) -> tuple[list[tuple[str, int]], int]:
        """The inlined calls active at tracepc, innermost first, as (name, pc to look up
        file:line at); and the pc to use for the physical function's own file:line (the
        call site of the outermost inlined call, or tracepc itself)."""
        slot = self._inltree_slot()
        t = self.pclntab
        if slot is None:
            return [], tracepc
        i = t.func_index(tracepc)
        if i is None:
            return [], tracepc
        raw = t.funcdata(i, slot)
        if raw is None:
            return [], tracepc
        if t.version == "1.18":
            base = self._gofunc()
            if base is None:
                return [], tracepc
            raw += base
        entry = t.entries[i]
        calls: list[tuple[str, int]] = []
        for _ in range(64):  # inlining depth is small; bound it anyway
            ix = t.pcdata(i, 2, tracepc)  # _PCDATA_InlTreeIndex
            if ix is None or ix < 0:
                break
            # inlinedCall{parent int16; funcID uint8; _ byte; file, line, func_, parentPc int32}
            rec = self.read(raw + 20 * ix, 20)
            if rec is None:
                break
            _parent, _fid, _pad, _file, _line, nameoff, parent_pc = struct.unpack("<hBBiiii", rec)
            calls.append((go_name(t.funcname_at(nameoff)), tracepc))
            tracepc = entry + parent_pc
        return calls, tracepc

    def inline_sites(self) -> dict[str, list[InlineSite]]:
        """Every inlined call in the binary, by the inlined function's name.

        For each function with an inline tree, the PCDATA_InlTreeIndex table maps each pc to
        the innermost inlined call it belongs to; a call's body is every pc whose chain of
        parents contains it, and its site is the lowest such pc. Built once per binary (0.13 s
        for esbuild, whose 1531 inlined functions have 9298 sites)."""
        cached = getattr(self, "_inline_sites", None)
        if cached is not None:
            return cached
        out: dict[str, list[InlineSite]] = {}
        self._inline_sites = out
        slot = self._inltree_slot()
        t = self.pclntab
        if slot is None:
            return out
        base = 0
        if t.version == "1.18":
            base = self._gofunc()
            if base is None:
                return out
        for i in range(t.nfunc):
            try:
                self._inline_sites_of(i, slot, base, out)
            except (struct.error, IndexError, ValueError):
                continue        # a damaged table: the other functions' sites still count
        return out

    def _inline_sites_of(self, i: int, slot: int, base: int, out: dict) -> None:
        """Add function i's inlined calls to out (see inline_sites)."""
        t = self.pclntab
        raw = t.funcdata(i, slot)
        if raw is None or t._field(i, 7) <= 2:
            return
        raw += base
        entry = t.entries[i]
        off = struct.unpack_from("<I", t.data, t._funcdata + t._funcoffs[i] + t._func_fixed + 8)[0]
        if off == 0:
            return
        ends, vals = t._table(off, entry)
        lowest: dict[int, int] = {}
        nodes: dict[int, tuple[int, int]] = {}      # index -> (parent, nameoff)
        start = entry
        for end, ix in zip(ends, vals):
            while ix >= 0 and (ix not in lowest or lowest[ix] > start):
                lowest[ix] = min(lowest.get(ix, start), start)
                if ix not in nodes:
                    rec = self.read(raw + 20 * ix, 20)
                    if rec is None:
                        break
                    parent, _fid, _pad, _file, _line, nameoff, _ppc = struct.unpack("<hBBiiii", rec)
                    nodes[ix] = (parent, nameoff)
                ix = nodes[ix][0]
            start = end
        host = None
        for ix, pc in sorted(lowest.items(), key=lambda kv: kv[1]):
            if ix not in nodes:
                continue
            host = host or go_name(t.name(i))
            name = go_name(t.funcname_at(nodes[ix][1]))
            out.setdefault(name, []).append(InlineSite(name, pc, host, entry))

    def unwind(self, read_u64: Callable[[int], int], pc: int, sp: int,
               max_frames: int = 100, inline: bool = True) -> list[Frame]:
        """[(pc, funcname, file, line), ...] from the innermost frame outwards (inlined calls
        included as frames sharing the pc of the function they were inlined into)."""
        return [Frame(f.pc, f.func, f.file, f.line)
                for f in self.frames(read_u64, pc, sp, max_frames, inline)]

    # -- Go version

    @property
    def go_version(self) -> Optional[str]:
        if not self._go_version_done:
            self._go_version_done = True
            for how, fn in (("runtime.buildVersion", self._version_from_symbol),
                            (".go.buildinfo", self._version_from_buildinfo),
                            ("string search", self._version_from_strings)):
                try:
                    v = fn()
                except (struct.error, IndexError, ValueError):
                    v = None
                if v:
                    self._go_version, self._go_version_source = v, how
                    break
        return self._go_version

    @property
    def go_version_source(self) -> Optional[str]:
        self.go_version  # noqa: B018
        return self._go_version_source

    def _read_gostring(self, header_addr: int, ptrsize: int = 8) -> Optional[str]:
        raw = self.read(header_addr, 2 * ptrsize)
        if raw is None:
            return None
        ptr, n = struct.unpack("<QQ" if ptrsize == 8 else "<II", raw)
        if not 0 < n < 4096:
            return None
        s = self.read(ptr, n)
        return None if s is None else s.decode("utf-8", "replace")

    def _version_from_symbol(self) -> Optional[str]:
        s = self._symbols.get("runtime.buildVersion")
        if s is None:
            return None
        v = self._read_gostring(s[0])
        return v if v and v.startswith("go") else None

    def _version_from_buildinfo(self) -> Optional[str]:
        sec = self.sections.get(".go.buildinfo")
        d = self.data
        if sec is not None and sec.type != SHT_NOBITS:
            pos = sec.offset
        else:
            pos = d.find(BUILDINFO_MAGIC)
            while pos != -1 and pos % 16:
                pos = d.find(BUILDINFO_MAGIC, pos + 1)
            if pos == -1:
                return None
        if d[pos:pos + 14] != BUILDINFO_MAGIC:
            return None
        ptrsize, flags = d[pos + 14], d[pos + 15]
        if flags & 2:  # Go 1.18+: inline varint-length strings after the 32-byte header
            p = pos + 32
            n = shift = 0
            while True:
                b = d[p]
                p += 1
                n |= (b & 0x7F) << shift
                shift += 7
                if not b & 0x80:
                    break
            v = d[p:p + n].decode("utf-8", "replace")
        else:  # pointer to the runtime.buildVersion string header
            hdr = struct.unpack_from("<Q" if ptrsize == 8 else "<I", d, pos + 16)[0]
            v = self._read_gostring(hdr, ptrsize)
        return v if v and v.startswith("go") else None

    def _version_from_strings(self) -> Optional[str]:
        """Last resort: a go1.N[.M] string in the read-only data. Go packs its string data
        without separators ("...functiongo1.14.2hijacked..."), so no word boundaries can be
        required; file names such as "bits_go1.13.go" are skipped."""
        ro = [s for s in self.segments if not s.flags & 1]  # non-executable segments
        spans = [(s.offset, s.offset + s.filesz) for s in ro] or [(0, len(self.data))]
        d = self.data
        for a, b in spans:
            for m in _GOVERSION_RE.finditer(d, a, b):
                before = d[m.start() - 1:m.start()]
                after = d[m.end():m.end() + 2]
                if before in (b"_", b"/", b"-", b".") or after[:1] == b"." or after[:1] == b"_":
                    continue
                return m.group().decode()
        return None

    # -- what is missing

    def missing(self) -> list[str]:
        """Human-readable notes on what this binary lacks or what could not be read, and what
        is used instead."""
        out = list(self.notes)
        if not self.has_sections:
            out.append("no ELF section headers: pclntab and build info found by scanning for "
                       "their magic bytes")
        if not self.has_symtab:
            out.append("no .symtab: function names come from pclntab; addresses of runtime "
                       "globals (runtime.allgs, runtime.allp, runtime.sched, runtime.allm, ...) "
                       "are unknown")
        if not self.has_pclntab:
            out.append("no pclntab: no file:line and no stack unwinding")
        if not self.has_dwarf:
            from .gotypes import table_for  # local import: gotypes imports this module
            v = self.go_version
            if table_for(v) is not None:
                major = ".".join(v.split(".")[:2])
                out.append(f"no DWARF: runtime struct layouts from the built-in table for {major}")
            else:
                out.append("no DWARF: no runtime struct layouts (no built-in table for %s)"
                           % (v or "an unknown Go version"))
        if self.go_version is None:
            out.append("no Go version string found")
        return out

    def summary(self) -> dict:
        return {
            "path": self.path,
            "go_version": self.go_version,
            "go_version_source": self.go_version_source,
            "has_symtab": self.has_symtab,
            "has_pclntab": self.has_pclntab,
            "pclntab_layout": self.pclntab.version if self.pclntab else None,
            "pclntab_found_by": self.pclntab_found_by,
            "has_dwarf": self.has_dwarf,
            "functions": len(self._funcs),
            "missing": self.missing(),
        }
