"""Guest address space: a Linux-like VMA table in Python over one Unicorn instance.

Why a table of our own: the Go runtime reserves ~585 MiB of PROT_NONE address space at start
and maps 64 MiB arenas inside reservations. Unicorn regions cost per region and copy the whole
region on a partial unmap/protect, so only pages that are accessible live in Unicorn; PROT_NONE
reservations exist only here. A fault on a reserved page is told apart from a fault on a hole
by looking the address up here (SEGV_ACCERR vs SEGV_MAPERR).

All guest memory access from syscall handlers goes through ``read``/``write``/``read_u64``/...,
which raise ``LinuxError(EFAULT)``.
"""
from __future__ import annotations

import bisect
import struct
from dataclasses import dataclass

from unicorn import UC_PROT_EXEC, UC_PROT_READ, UC_PROT_WRITE, UcError

from .errno import EFAULT, EINVAL, ENOMEM, LinuxError

PAGE = 4096
PROT_NONE, PROT_READ, PROT_WRITE, PROT_EXEC = 0, 1, 2, 4
MAP_SHARED, MAP_PRIVATE, MAP_FIXED, MAP_ANONYMOUS = 0x01, 0x02, 0x10, 0x20
MAP_FIXED_NOREPLACE = 0x100000
TASK_SIZE = 1 << 47          # user space ends here (Go assumes 48-bit heap addresses)
MMAP_BASE = 0x7F0000000000   # top-down search for address-less mmaps starts below this

_U64 = struct.Struct("<Q")
_U32 = struct.Struct("<I")
_I64 = struct.Struct("<q")


def page_down(x: int) -> int:
    return x & ~(PAGE - 1)


def page_up(x: int) -> int:
    return (x + PAGE - 1) & ~(PAGE - 1)


def uc_perms(prot: int) -> int:
    perms = 0
    if prot & PROT_READ:
        perms |= UC_PROT_READ
    if prot & PROT_WRITE:
        perms |= UC_PROT_WRITE | UC_PROT_READ
    if prot & PROT_EXEC:
        perms |= UC_PROT_EXEC | UC_PROT_READ
    return perms


@dataclass
class Vma:
    start: int
    end: int
    prot: int
    name: str = ""

    @property
    def in_uc(self) -> bool:
        return self.prot != PROT_NONE


class Memory:
    def __init__(self, uc):
        self.uc = uc
        self.vmas: list[Vma] = []   # sorted by start, never overlapping
        self._starts: list[int] = []
        self.brk_start = 0
        self.brk = 0

    # ---- the VMA table -------------------------------------------------
    def _reindex(self) -> None:
        self.vmas.sort(key=lambda v: v.start)
        self._starts = [v.start for v in self.vmas]

    def find(self, addr: int) -> Vma | None:
        i = bisect.bisect_right(self._starts, addr) - 1
        if i >= 0 and self.vmas[i].end > addr:
            return self.vmas[i]
        return None

    def overlaps(self, start: int, end: int) -> bool:
        i = bisect.bisect_right(self._starts, start) - 1
        if i >= 0 and self.vmas[i].end > start:
            return True
        i += 1
        return i < len(self.vmas) and self.vmas[i].start < end

    def _carve(self, start: int, end: int) -> list[Vma]:
        """Remove [start, end) from the table; return the removed pieces (split at the edges)."""
        removed: list[Vma] = []
        keep: list[Vma] = []
        changed = False
        for v in self.vmas:
            if v.end <= start or v.start >= end:
                keep.append(v)
                continue
            changed = True
            if v.start < start:
                keep.append(Vma(v.start, start, v.prot, v.name))
            if v.end > end:
                keep.append(Vma(end, v.end, v.prot, v.name))
            removed.append(Vma(max(v.start, start), min(v.end, end), v.prot, v.name))
        if changed:
            self.vmas = keep
            self._reindex()
        return removed

    def _insert(self, vma: Vma) -> None:
        self.vmas.append(vma)
        self._reindex()

    def _uc_unmap_pieces(self, pieces: list[Vma]) -> None:
        for p in pieces:
            if p.in_uc:
                self.uc.mem_unmap(p.start, p.end - p.start)

    # ---- Linux operations ----------------------------------------------
    def find_free(self, length: int, hint: int = 0) -> int:
        if hint and hint + length <= TASK_SIZE and not self.overlaps(hint, hint + length):
            return hint
        # top-down below MMAP_BASE, like Linux's default layout
        top = MMAP_BASE
        for v in reversed(self.vmas):
            if v.start >= top:
                continue
            if v.end <= top - length:
                return top - length
            top = min(top, v.start)
        if top - length >= 0x10000:
            return top - length
        raise LinuxError(ENOMEM)

    def map(self, addr: int, length: int, prot: int, name: str = "", fixed: bool = True,
            data: bytes | None = None) -> int:
        """mmap semantics for anonymous memory: returns the address."""
        if length <= 0:
            raise LinuxError(EINVAL)
        length = page_up(length)
        if fixed:
            if addr & (PAGE - 1):
                raise LinuxError(EINVAL)
            if addr + length > TASK_SIZE:
                raise LinuxError(ENOMEM)
            self._uc_unmap_pieces(self._carve(addr, addr + length))
        else:
            addr = self.find_free(length, page_down(addr) if addr else 0)
        vma = Vma(addr, addr + length, prot, name)
        if prot != PROT_NONE:
            self.uc.mem_map(addr, length, uc_perms(prot) | UC_PROT_WRITE if data else uc_perms(prot))
            if data:
                self.uc.mem_write(addr, bytes(data[:length]))
                if not prot & PROT_WRITE:
                    self.uc.mem_protect(addr, length, uc_perms(prot))
        elif data:
            raise LinuxError(EINVAL)
        self._insert(vma)
        return addr

    def unmap(self, addr: int, length: int) -> None:
        if addr & (PAGE - 1) or length <= 0:
            raise LinuxError(EINVAL)
        self._uc_unmap_pieces(self._carve(addr, addr + page_up(length)))

    def protect(self, addr: int, length: int, prot: int) -> None:
        if addr & (PAGE - 1):
            raise LinuxError(EINVAL)
        end = addr + page_up(length)
        # Linux: ENOMEM if any page in the range is unmapped.
        covered = sum(min(v.end, end) - max(v.start, addr) for v in self.vmas
                      if v.start < end and v.end > addr)
        if covered != end - addr:
            raise LinuxError(ENOMEM)
        for p in self._carve(addr, end):
            size = p.end - p.start
            if p.in_uc and prot == PROT_NONE:
                self.uc.mem_unmap(p.start, size)
            elif not p.in_uc and prot != PROT_NONE:
                self.uc.mem_map(p.start, size, uc_perms(prot))
            elif p.in_uc and p.prot != prot:
                self.uc.mem_protect(p.start, size, uc_perms(prot))
            self._insert(Vma(p.start, p.end, prot, p.name))

    def set_brk(self, new: int) -> int:
        if new < self.brk_start:
            return self.brk
        old_top, new_top = page_up(self.brk), page_up(new)
        if new_top > old_top:
            if self.overlaps(old_top, new_top):
                return self.brk
            self.map(old_top, new_top - old_top, PROT_READ | PROT_WRITE, "[heap]")
        elif new_top < old_top:
            self.unmap(new_top, old_top - new_top)
        self.brk = new
        return self.brk

    def is_accessible(self, addr: int, length: int, write: bool = False) -> bool:
        end = addr + max(length, 1)
        while addr < end:
            v = self.find(addr)
            if v is None or not v.prot & PROT_READ or (write and not v.prot & PROT_WRITE):
                return False
            addr = v.end
        return True

    # ---- guest memory accessors (EFAULT on bad pointers) -----------------
    def read(self, addr: int, n: int) -> bytes:
        if n == 0:
            return b""
        try:
            return bytes(self.uc.mem_read(addr, n))
        except UcError:
            raise LinuxError(EFAULT) from None

    def write(self, addr: int, data: bytes) -> None:
        if not data:
            return
        if not self.is_accessible(addr, len(data), write=True):
            raise LinuxError(EFAULT)
        try:
            self.uc.mem_write(addr, bytes(data))
        except UcError:
            raise LinuxError(EFAULT) from None

    def read_u32(self, addr: int) -> int:
        return _U32.unpack(self.read(addr, 4))[0]

    def read_u64(self, addr: int) -> int:
        return _U64.unpack(self.read(addr, 8))[0]

    def read_i64(self, addr: int) -> int:
        return _I64.unpack(self.read(addr, 8))[0]

    def write_u32(self, addr: int, v: int) -> None:
        self.write(addr, _U32.pack(v & 0xFFFFFFFF))

    def write_u64(self, addr: int, v: int) -> None:
        self.write(addr, _U64.pack(v & 0xFFFFFFFFFFFFFFFF))

    def read_cstr(self, addr: int, limit: int = 4096) -> bytes:
        out = bytearray()
        while len(out) < limit:
            # read up to the end of the page, so a string near an unmapped page still works
            chunk = self.read(addr, min(PAGE - (addr & (PAGE - 1)), limit - len(out)))
            nul = chunk.find(b"\0")
            if nul >= 0:
                out += chunk[:nul]
                return bytes(out)
            out += chunk
            addr += len(chunk)
        raise LinuxError(EFAULT if limit < 4096 else 36)  # ENAMETOOLONG for paths

    def read_ptr_array(self, addr: int, limit: int = 4096) -> list[int]:
        out = []
        while len(out) < limit:
            p = self.read_u64(addr)
            if p == 0:
                return out
            out.append(p)
            addr += 8
        raise LinuxError(EINVAL)
