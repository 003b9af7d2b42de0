"""Guest address space: a Linux-like VMA table, guest pages in host memory goemu owns, and
page permissions enforced by a native TLB fill hook.

Why this shape (measured; docs/design.md has the numbers):

* **Permissions live in the TLB fill hook, not in Unicorn regions.** Unicorn runs in
  ``UC_TLB_VIRTUAL`` mode: on a TLB miss it calls a fill hook, which answers from a page table
  of permission bytes (one byte per guest page, ``UC_PROT_*`` bits, in a sparse host mapping).
  The hook is 40 bytes of machine code, so no Python runs on a miss. A data page is answered
  without EXEC and no ``UC_HOOK_MEM_*`` hook is installed, so Unicorn clears TLB_NOTDIRTY on
  the first store and every later store to the page runs on TCG's inline fast path (before:
  every store went through ``store_helper`` -> ``flatview_translate`` -> ``notdirty_write``).
  A refused fill is the fault: Unicorn stops with ``UC_ERR_EXCEPTION`` and keeps the exact
  address in ``uc_struct.invalid_addr`` (offset found by experiment), the hook records the
  access type, and the VMA table says SEGV_MAPERR or SEGV_ACCERR.
* **Few, large Unicorn regions over host memory goemu owns.** Guest pages are backed by
  ``mmap(MAP_NORESERVE)`` host memory in 64 MiB-aligned granules registered once with
  ``uc_mem_map_ptr`` (paddr == vaddr); regions are never split, copied or re-protected. munmap
  and MADV_DONTNEED give the host pages back (``madvise``), mprotect rewrites permission
  bytes; each flushes the TLB. PROT_NONE reservations cost nothing.
* **Host-side access is a memcpy.** Syscall results, signal frames and the vvar page are
  copied straight into the backing memory: no ``uc_mem_write`` permission flips, no TLB flush.
  Writes into executable pages also drop their translated blocks.

All guest memory access from syscall handlers goes through ``read``/``write``/``read_u64``/...,
which raise ``LinuxError(EFAULT)`` where the guest could not access the memory itself.
"""
from __future__ import annotations

import bisect
import ctypes
import struct

from unicorn import (UC_HOOK_TLB_FILL, UC_PROT_ALL, UC_PROT_EXEC, UC_PROT_READ, UC_PROT_WRITE,
                     UC_TLB_VIRTUAL, UcError)
from unicorn.unicorn_const import UC_CTL_TLB_FLUSH

from . import native
from .errno import EFAULT, EINVAL, ENOMEM, LinuxError
from .record import record

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


@record
class Vma:
    start: int
    end: int
    prot: int
    name: str = ""


GRANULE = 1 << 26            # host backing is registered with Unicorn in 64 MiB-aligned pieces
_TABLE_HEADER = PAGE         # the permission table's first page: [-16] last vaddr, [-8] last type

# bool fill(uc_engine *uc, uint64_t vaddr, uc_mem_type type, uc_tlb_entry *e, uint8_t *table)
# (System V ABI: rdi, rsi, edx, rcx, r8). Identity paddr; perms = table[vaddr >> 12]; above
# 2^47 only the vsyscall page (at its 52-bit alias, where Unicorn keeps it) is answered.
#     mov [r8-16], rsi ; mov [r8-8], edx          ; the last fill asked for (a refusal's type)
#     mov rax, rsi ; shr rax, 12 ; movabs r9, 1<<35 ; cmp rax, r9 ; jae high
#     movzx eax, byte [r8+rax] ; mov [rcx], rsi ; mov [rcx+8], eax ; mov eax, 1 ; ret
# high: movabs rax, (1<<52)-1 ; and rsi, rax ; movabs rax, VSYSCALL_ALIAS ; cmp rsi, rax ; jne deny
#     mov [rcx], rsi ; mov dword [rcx+8], 5 ; mov eax, 1 ; ret
# deny: xor eax, eax ; ret
_FILL_CODE = bytes.fromhex(
    "498970f0418950f84889f048c1e80c49b900000000080000004c39c87311410fb60400488931894108b80100"
    "0000c348b8ffffffffffff0f004821c648b8000060ffffff0f004839c67510488931c7410805000000b80100"
    "0000c331c0c3")

UC_MEM_READ, UC_MEM_WRITE, UC_MEM_FETCH = 16, 17, 18


def _find_invalid_addr_offset() -> int | None:
    """Where Unicorn keeps the exact address of a refused TLB fill (``uc_struct.invalid_addr``;
    no API reads it). Found by experiment on a scratch engine: two loads from distinct odd
    addresses are refused, and the one offset holding each address in turn is it."""
    from unicorn import UC_ARCH_X86, UC_HOOK_TLB_FILL, UC_MODE_64, UC_TLB_VIRTUAL, Uc

    def fault_at(target: int):
        uc = Uc(UC_ARCH_X86, UC_MODE_64)
        uc.ctl_set_tlb_mode(UC_TLB_VIRTUAL)
        uc.ctl_exits_enabled(True)
        uc.mem_map(0x1000, 0x1000)
        uc.mem_write(0x1000, b"\x48\xb8" + target.to_bytes(8, "little") + b"\x48\x8b\x18")  # mov rax, T; mov rbx, [rax]

        def fill(uc_, vaddr, access, entry, _ud):
            if vaddr != 0x1000:
                return False
            entry.paddr, entry.perms = vaddr, 5
            return True
        uc.hook_add(UC_HOOK_TLB_FILL, fill)
        try:
            uc.emu_start(0x1000, 0, 0, 0)
        except UcError:
            pass
        base = ctypes.cast(uc._uch, ctypes.c_void_p).value
        words = (ctypes.c_uint64 * 1024).from_address(base)
        return {i * 8 for i in range(1024) if words[i] == target}, uc

    try:
        a, _ua = fault_at(0x7123_4567_89AB)
        b, _ub = fault_at(0x0C00_0000_1235)
        both = a & b
        return both.pop() if len(both) == 1 else None
    except Exception:   # an unexpected Unicorn build: fault addresses are then page-exact only
        return None


def invalid_addr_offset() -> int | None:
    return native.uc_struct_offset("invalid_addr", _find_invalid_addr_offset)


class Memory:
    def __init__(self, uc):
        self.uc = uc
        self.vmas: list[Vma] = []   # sorted by start, never overlapping
        self._starts: list[int] = []
        self.brk_start = 0
        self.brk = 0
        # host backing: sorted, non-overlapping (guest start, guest end, host address)
        self._backs: list[tuple[int, int, int]] = []
        self._back_starts: list[int] = []
        self._file_pages: list[tuple[int, int]] = []   # guest ranges mapped from a file (sorted)
        self._file_starts: list[int] = []
        # executable pages wholly past the end of its file: never granted, SIGBUS when touched
        # (as Linux's page cache answers); set by the loader, read by the fault handler
        self._bus_ranges: list[tuple[int, int]] = []
        # RLIMIT_AS of the guest (None: unlimited): map() refuses growth past it with ENOMEM,
        # as Linux's may_expand_vm; set by the kernel and the guest's setrlimit
        self.as_limit: int | None = None
        self._free_hint: tuple[int, int] | None = None   # (top of the gap find_free last chose, its length)
        # the permission table: one byte per guest page below 2^47 (32 GiB of address space,
        # touched only where pages are mapped: 4 KiB of table per 16 MiB of guest memory)
        self._table_size = _TABLE_HEADER + (TASK_SIZE >> 12)
        self._table_mem = native.host_alloc(self._table_size)
        self._table = self._table_mem + _TABLE_HEADER
        self._last_vaddr = ctypes.c_uint64.from_address(self._table - 16)
        self._last_type = ctypes.c_uint32.from_address(self._table - 8)
        uc.ctl_set_tlb_mode(UC_TLB_VIRTUAL)
        uc.ctl_exits_enabled(True)   # no `until` address: Unicorn would probe its page after every run
        self._fill_hook = native.hook_add_native(uc, UC_HOOK_TLB_FILL, native.code_page(_FILL_CODE),
                                                 self._table)
        off = invalid_addr_offset()
        self._invalid_addr = (ctypes.c_uint64.from_address(native.uc_address(uc) + off)
                              if off is not None else None)
        self.tlb_flushes = 0

    def close(self) -> None:
        """Give the host memory back (the Unicorn engine must not run any more)."""
        for start, end, host in self._backs:
            native.host_free(host, end - start)
        self._backs, self._back_starts = [], []
        if self._table_mem:
            native.host_free(self._table_mem, self._table_size)
            self._table_mem = 0

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
        lo = max(bisect.bisect_right(self._starts, start) - 1, 0)
        hi = bisect.bisect_left(self._starts, end)
        removed: list[Vma] = []
        keep: list[Vma] = []
        for v in self.vmas[lo:hi]:
            if v.end <= start or v.start >= end:
                keep.append(v)
                continue
            if v.start < start:
                keep.append(Vma(v.start, start, v.prot, v.name))
            if v.end > end:
                keep.append(Vma(end, v.end, v.prot, v.name))
            removed.append(Vma(max(v.start, start), min(v.end, end), v.prot, v.name))
        if removed:
            self.vmas[lo:hi] = keep
            self._starts[lo:hi] = [v.start for v in keep]
        return removed

    def _insert(self, vma: Vma) -> None:
        i = bisect.bisect_left(self._starts, vma.start)
        self.vmas.insert(i, vma)
        self._starts.insert(i, vma.start)

    # ---- backing, permissions, TLB ---------------------------------------
    def _ensure_backed(self, start: int, end: int) -> None:
        """Back [start, end) with host memory registered in Unicorn (whole granules)."""
        g = start & ~(GRANULE - 1)
        gend = (end + GRANULE - 1) & ~(GRANULE - 1)
        while g < gend:
            i = bisect.bisect_right(self._back_starts, g) - 1
            if i >= 0 and self._backs[i][1] > g:        # backed already
                g = self._backs[i][1]
                continue
            nxt = self._back_starts[i + 1] if i + 1 < len(self._backs) else gend
            run_end = min(gend, nxt)
            size = run_end - g
            try:
                host = native.host_alloc(size)
            except MemoryError:
                raise LinuxError(ENOMEM) from None
            try:
                self.uc.mem_map_ptr(g, size, UC_PROT_ALL, host)
            except UcError:
                native.host_free(host, size)
                raise LinuxError(ENOMEM) from None
            bisect.insort(self._backs, (g, run_end, host))
            self._back_starts = [b[0] for b in self._backs]
            g = run_end

    def _host_spans(self, addr: int, n: int):
        """(host address, length) pieces for guest [addr, addr+n), which must be backed."""
        end = addr + n
        i = bisect.bisect_right(self._back_starts, addr) - 1
        while addr < end:
            if i < 0 or i >= len(self._backs) or not self._backs[i][0] <= addr < self._backs[i][1]:
                raise LinuxError(EFAULT)
            bstart, bend, host = self._backs[i]
            take = min(end, bend) - addr
            yield host + (addr - bstart), take
            addr += take
            i += 1

    def _set_perms(self, start: int, end: int, prot: int) -> None:
        base, n = self._table + (start >> 12), (end - start) >> 12
        perms = uc_perms(prot)
        if perms == 0 and n >= 4 * PAGE:
            # a large PROT_NONE range (a 64 TiB reservation has 16 GiB of table): hand the
            # table's whole pages back, they read as zero, instead of writing zeros into them
            lo, hi = page_up(base), page_down(base + n)
            ctypes.memset(base, 0, lo - base)
            native.host_zero(lo, hi - lo)
            ctypes.memset(hi, 0, base + n - hi)
            return
        ctypes.memset(base, perms, n)

    def _release(self, start: int, end: int) -> None:
        """Zero [start, end) and hand its host pages back (where it is backed). Pages mapped
        from a file become anonymous again (discarding them would bring the file back)."""
        for bstart, bend, host in self._backs:
            lo, hi = max(start, bstart), min(end, bend)
            if lo < hi:
                native.host_zero(host + (lo - bstart), hi - lo)
        if self._file_pages:
            lo_i = max(bisect.bisect_right(self._file_starts, start) - 1, 0)
            hi_i = bisect.bisect_left(self._file_starts, end)
            keep = []
            for a, b in self._file_pages[lo_i:hi_i]:
                lo, hi = max(a, start), min(b, end)
                if lo >= hi:
                    keep.append((a, b))
                    continue
                for h, k in self._host_spans(lo, hi - lo):
                    native.host_anon_fixed(h, k)
                keep += [r for r in ((a, lo), (hi, b)) if r[0] < r[1]]
            self._file_pages[lo_i:hi_i] = keep
            self._file_starts[lo_i:hi_i] = [r[0] for r in keep]

    def map_file(self, addr: int, length: int, f, offset: int, shared: bool = False) -> None:
        """Put the pages of file `f` (an fd, or anything with fileno()) from `offset` under the
        backed guest range [addr, addr+length): copy-on-write, or shared with the file (writes
        reach it, as MAP_SHARED). The range must lie within the file (past its end the host
        would raise SIGBUS in goemu itself)."""
        fd = f.fileno() if hasattr(f, "fileno") else f
        done = 0
        for h, k in self._host_spans(addr, length):
            native.host_map_file(h, k, fd, offset + done, shared)
            done += k
        i = bisect.bisect_left(self._file_starts, addr)
        self._file_pages.insert(i, (addr, addr + length))
        self._file_starts.insert(i, addr)

    def bus_error_range(self, start: int, end: int) -> None:
        """[start, end) is mapped but past the end of its file: accesses raise SIGBUS."""
        self._set_perms(start, end, PROT_NONE)
        self._bus_ranges.append((start, end))

    def is_bus_error(self, addr: int) -> bool:
        return self.find(addr) is not None and any(a <= addr < b for a, b in self._bus_ranges)

    def total_mapped(self) -> int:
        """Bytes in the VMA table (Linux's total_vm, which RLIMIT_AS bounds)."""
        return sum(v.end - v.start for v in self.vmas)

    def flush_tlb(self) -> None:
        native.uc_ctl_write(self.uc, UC_CTL_TLB_FLUSH)
        self.tlb_flushes += 1

    def _drop_code(self, pieces: list[Vma]) -> None:
        """Translated blocks of executable pages whose contents or mapping went away."""
        for p in pieces:
            if p.prot & PROT_EXEC:
                self.uc.ctl_remove_cache(p.start, p.end)

    def fault_info(self) -> tuple[int, int]:
        """(exact address, UC_MEM_READ/WRITE/FETCH) of the refused access that stopped the CPU."""
        addr = self._invalid_addr.value if self._invalid_addr is not None else self._last_vaddr.value
        return addr, self._last_type.value

    def clear_fault(self) -> None:
        if self._invalid_addr is not None:
            self._invalid_addr.value = 0

    def access_allowed(self, addr: int, access: int) -> bool:
        """Would the fill hook grant this access? (Tells a refused fill from other exceptions.)"""
        if addr >= TASK_SIZE:
            return False
        need = {UC_MEM_READ: UC_PROT_READ, UC_MEM_WRITE: UC_PROT_WRITE, UC_MEM_FETCH: UC_PROT_EXEC}.get(access, 0)
        return bool(ctypes.c_uint8.from_address(self._table + (addr >> 12)).value & need)

    # ---- Linux operations ----------------------------------------------
    def find_free(self, length: int, hint: int = 0) -> int:
        if hint and hint + length <= TASK_SIZE and not self.overlaps(hint, hint + length):
            return hint
        # top-down below MMAP_BASE, like Linux's default layout
        top = MMAP_BASE
        i = len(self.vmas)
        # The last search (for L bytes) found no gap of L bytes above the top T of the gap it
        # chose; while nothing is unmapped, none appears, so a search for >= L bytes resumes at
        # T: the same answer without rescanning every mapping above (Go maps 16,384 arena
        # records of 2 MiB one below the other before it finds out that 1 TiB cannot be had)
        if self._free_hint is not None and length >= self._free_hint[1]:
            top = self._free_hint[0]
            i = bisect.bisect_left(self._starts, top)
        for j in range(i - 1, -1, -1):
            v = self.vmas[j]
            if v.start >= top:
                continue
            if v.end <= top - length:
                self._free_hint = (top, length)
                return top - length
            top = min(top, v.start)
        if top - length >= 0x10000:
            self._free_hint = (top, length)
            return top - length
        raise LinuxError(ENOMEM)

    def map(self, addr: int, length: int, prot: int, name: str = "", fixed: bool = True,
            data: bytes | None = None, file: tuple[int, int, int] | None = None) -> int:
        """mmap semantics: anonymous memory, optionally filled with `data`, or with `file` =
        (host fd, offset, file size) shared with that file (MAP_SHARED: the pages are the
        file's, writes reach it). Returns the address."""
        if length <= 0:
            raise LinuxError(EINVAL)
        length = page_up(length)
        if fixed:
            if addr & (PAGE - 1):
                raise LinuxError(EINVAL)
            if addr + length > TASK_SIZE:
                raise LinuxError(ENOMEM)
        else:
            addr = self.find_free(length, page_down(addr) if addr else 0)
        if self.as_limit is not None:
            # may_expand_vm: what MAP_FIXED replaces does not count twice
            grow = length - sum(min(v.end, addr + length) - max(v.start, addr) for v in self.vmas
                                if v.start < addr + length and v.end > addr)
            if self.total_mapped() + grow > self.as_limit:
                raise LinuxError(ENOMEM)
        if data and prot == PROT_NONE:
            raise LinuxError(EINVAL)
        end = addr + length
        if prot != PROT_NONE:
            self._ensure_backed(addr, end)      # may fail with ENOMEM: nothing changed yet
        replaced = self._carve(addr, end) if fixed else []
        if replaced:
            self._set_perms(addr, end, PROT_NONE)
            self.flush_tlb()
            self._release(addr, end)
            self._drop_code(replaced)
        if data:
            self.poke(addr, bytes(data[:length]))
        if file is not None and prot != PROT_NONE:
            fd, offset, size = file
            inside = min(length, max(page_up(size) - offset, 0))
            if inside:
                self.map_file(addr, inside, fd, offset, shared=True)
        self._set_perms(addr, end, prot)
        self._insert(Vma(addr, end, prot, name))
        if file is not None and prot != PROT_NONE and inside < length and hasattr(self, "bus_error_range"):
            self.bus_error_range(addr + inside, end)      # past the file's end: SIGBUS, as Linux
        return addr

    def unmap(self, addr: int, length: int) -> None:
        if addr & (PAGE - 1) or length <= 0:
            raise LinuxError(EINVAL)
        end = addr + page_up(length)
        if end > TASK_SIZE:
            raise LinuxError(EINVAL)
        pieces = self._carve(addr, end)
        if pieces:
            self._free_hint = None          # a gap opened: find_free scans from the top again
            self._set_perms(addr, end, PROT_NONE)
            self.flush_tlb()
            self._release(addr, end)
            self._drop_code(pieces)

    def protect(self, addr: int, length: int, prot: int) -> None:
        if addr & (PAGE - 1):
            raise LinuxError(EINVAL)
        end = addr + page_up(length)
        if not self.covers(addr, end):
            raise LinuxError(ENOMEM)       # Linux: some page in the range is unmapped
        if prot != PROT_NONE:
            self._ensure_backed(addr, end)
        pieces = self._carve(addr, end)
        for p in pieces:
            self._insert(Vma(p.start, p.end, prot, p.name))
        self._set_perms(addr, end, prot)
        if any(p.prot != prot for p in pieces):
            self.flush_tlb()

    def covers(self, start: int, end: int) -> bool:
        """Is every page of [start, end) in some VMA (whatever its protection)?"""
        lo = max(bisect.bisect_right(self._starts, start) - 1, 0)
        return sum(min(v.end, end) - max(v.start, start) for v in self.vmas[lo:]
                   if v.start < end and v.end > start) == end - start

    def discard(self, addr: int, length: int, zero: bool = True) -> None:
        """MADV_DONTNEED (zero: the pages read as zero afterwards, as private anonymous memory
        does on Linux) or MADV_FREE (the host may reclaim them lazily; contents stay until it
        does, as on Linux)."""
        end = addr + page_up(length)
        for v in self.vmas[max(bisect.bisect_right(self._starts, addr) - 1, 0):]:
            if v.start >= end:
                break
            lo, hi = max(v.start, addr), min(v.end, end)
            if lo < hi and v.prot != PROT_NONE:
                if zero:
                    self._release(lo, hi)
                    if v.prot & PROT_EXEC:
                        self.uc.ctl_remove_cache(lo, hi)
                else:
                    for h, k in self._host_spans(lo, hi - lo):
                        native.host_free_lazily(h, k)

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
        """Could the guest itself read (or write) all of [addr, addr+length)? On x86, write and
        exec permission imply read."""
        end = addr + max(length, 1)
        while addr < end:
            v = self.find(addr)
            if v is None or v.prot == PROT_NONE or (write and not v.prot & PROT_WRITE):
                return False
            addr = v.end
        return True

    def _any_exec(self, start: int, end: int) -> bool:
        lo = max(bisect.bisect_right(self._starts, start) - 1, 0)
        for v in self.vmas[lo:]:
            if v.start >= end:
                return False
            if v.end > start and v.prot & PROT_EXEC:
                return True
        return False

    # ---- guest memory accessors (EFAULT on bad pointers) -----------------
    def read(self, addr: int, n: int) -> bytes:
        if n <= 0:
            return b""
        if not self.is_accessible(addr, n):
            raise LinuxError(EFAULT)
        return b"".join(ctypes.string_at(h, k) for h, k in self._host_spans(addr, n))

    def write(self, addr: int, data: bytes) -> None:
        """Copy out to guest memory the guest may write (else EFAULT), as the kernel's
        copy_to_user does."""
        if not data:
            return
        if not self.is_accessible(addr, len(data), write=True):
            raise LinuxError(EFAULT)
        self._copy_in(addr, data)

    def poke(self, addr: int, data: bytes) -> None:
        """Write guest memory whatever its protection (the loader, the vDSO, a debugger)."""
        if data:
            self._copy_in(addr, data)

    def _copy_in(self, addr: int, data: bytes) -> None:
        if not isinstance(data, bytes):
            data = bytes(data)
        done = 0
        for h, k in self._host_spans(addr, len(data)):
            ctypes.memmove(h, data[done:done + k] if done or k != len(data) else data, k)
            done += k
        if self._any_exec(addr, addr + len(data)):
            self.uc.ctl_remove_cache(addr, addr + len(data))   # code changed under the JIT

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
