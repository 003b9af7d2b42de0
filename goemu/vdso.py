"""A small vDSO, built as a real ELF shared object and passed in AT_SYSINFO_EHDR.

Go 1.14 never makes a clock syscall: nanotime/walltime CALL ``__vdso_clock_gettime`` (or,
with no vDSO, the legacy vsyscall address). This vDSO answers from a *vvar* data page that
goemu refreshes before every slice of guest execution, exactly as the kernel's vDSO reads
its vvar page: a clock read costs a few guest instructions and no exit to Python.
Unknown clock ids fall back to the real ``clock_gettime`` syscall.

Go's parser (runtime/vdso_linux.go) needs PT_LOAD, PT_DYNAMIC, DT_STRTAB, DT_SYMTAB, DT_HASH,
DT_VERSYM and DT_VERDEF (it follows verdef without a nil check) and version LINUX_2.6.
"""
from __future__ import annotations

import struct

VDSO_ADDR = 0x7FFF_F7FF_0000     # two pages: the vDSO image, then the vvar page
VVAR_ADDR = VDSO_ADDR + 0x1000
VDSO_SIZE = 0x2000
# vvar layout: u64 realtime ns at 0, u64 monotonic ns at 8.
VVAR_REALTIME, VVAR_MONOTONIC = 0, 8

# vsyscall page: Unicorn 2.1 masks guest addresses to 52 bits in its default TLB mode, so the
# canonical 0xffffffffff600000 is reached through this alias (go114-abi.md §1.4, unicorn#2010).
VSYSCALL_CANONICAL = 0xFFFF_FFFF_FF60_0000
VSYSCALL_ALIAS = VSYSCALL_CANONICAL & ((1 << 52) - 1)


def _clock_gettime_code() -> bytes:
    """rdi=clockid, rsi=timespec*.  REALTIME(0)/REALTIME_COARSE(5) read slot 0;
    MONOTONIC(1)/MONOTONIC_RAW(4)/MONOTONIC_COARSE(6)/BOOTTIME(7) read slot 1; others: syscall."""
    c = bytearray()
    fixups: list[tuple[int, str]] = []
    labels: dict[str, int] = {}

    def je(label: str) -> None:
        c.extend(b"\x74\x00")
        fixups.append((len(c) - 1, label))

    c += b"\x48\xb8" + struct.pack("<Q", VVAR_ADDR)   # movabs rax, VVAR
    for clock, label in ((0, "real"), (5, "real"), (1, "mono"), (4, "mono"), (6, "mono"), (7, "mono")):
        c += b"\x83\xff" + bytes([clock])               # cmp edi, clock
        je(label)
    c += b"\xb8\xe4\x00\x00\x00"                     # mov eax, 228 (clock_gettime)
    c += b"\x0f\x05"                                 # syscall
    c += b"\xc3"                                     # ret
    labels["real"] = len(c)
    c += b"\x48\x8b\x00"                             # mov rax, [rax]
    c += b"\xeb\x04"                                 # jmp split (skips the next 4 bytes)
    labels["mono"] = len(c)
    c += b"\x48\x8b\x40\x08"                         # mov rax, [rax+8]
    c += b"\x31\xd2"                                 # split: xor edx, edx
    c += b"\xb9\x00\xca\x9a\x3b"                     # mov ecx, 1000000000
    c += b"\x48\xf7\xf1"                             # div rcx
    c += b"\x48\x89\x06"                             # mov [rsi], rax
    c += b"\x48\x89\x56\x08"                         # mov [rsi+8], rdx
    c += b"\x31\xc0"                                 # xor eax, eax
    c += b"\xc3"                                     # ret
    for at, label in fixups:
        c[at] = labels[label] - (at + 1)
    return bytes(c)


def _gettimeofday_code() -> bytes:
    """rdi=timeval*, rsi=timezone* (ignored)."""
    c = bytearray()
    c += b"\x48\x85\xff"                             # test rdi, rdi
    c += b"\x74\x2e"                                 # je done
    c += b"\x48\xb8" + struct.pack("<Q", VVAR_ADDR)  # movabs rax, VVAR
    c += b"\x48\x8b\x00"                             # mov rax, [rax]
    c += b"\x31\xd2"                                 # xor edx, edx
    c += b"\xb9\x00\xca\x9a\x3b"                     # mov ecx, 1000000000
    c += b"\x48\xf7\xf1"                             # div rcx
    c += b"\x48\x89\x07"                             # mov [rdi], rax
    c += b"\x48\x89\xd0"                             # mov rax, rdx
    c += b"\x31\xd2"                                 # xor edx, edx
    c += b"\xb9\xe8\x03\x00\x00"                     # mov ecx, 1000
    c += b"\x48\xf7\xf1"                             # div rcx
    c += b"\x48\x89\x47\x08"                         # mov [rdi+8], rax
    done = len(c)
    c += b"\x31\xc0"                                 # xor eax, eax
    c += b"\xc3"                                     # ret
    c[4] = done - 5
    return bytes(c)


def _time_code() -> bytes:
    """rdi=time_t* (may be NULL); returns seconds."""
    c = bytearray()
    c += b"\x48\xb8" + struct.pack("<Q", VVAR_ADDR)  # movabs rax, VVAR
    c += b"\x48\x8b\x00"                             # mov rax, [rax]
    c += b"\x31\xd2"                                 # xor edx, edx
    c += b"\xb9\x00\xca\x9a\x3b"                     # mov ecx, 1000000000
    c += b"\x48\xf7\xf1"                             # div rcx
    c += b"\x48\x85\xff"                             # test rdi, rdi
    c += b"\x74\x03"                                 # je +3
    c += b"\x48\x89\x07"                             # mov [rdi], rax
    c += b"\xc3"                                     # ret
    return bytes(c)


def vsyscall_page() -> bytes:
    """The legacy vsyscall page: gettimeofday at +0, time at +0x400, getcpu at +0x800."""
    page = bytearray(b"\xcc" * 0x1000)
    for off, nr in ((0x0, 96), (0x400, 201), (0x800, 309)):
        page[off:off + 8] = b"\xb8" + struct.pack("<I", nr) + b"\x0f\x05\xc3"
    return bytes(page)


def _sysv_hash(name: bytes) -> int:
    h = 0
    for ch in name:
        h = ((h << 4) + ch) & 0xFFFFFFFF
        g = h & 0xF0000000
        if g:
            h ^= g >> 24
        h &= ~g & 0xFFFFFFFF
    return h


def build_vdso() -> bytes:
    """Return the vDSO image (one page), linked to run at VDSO_ADDR (p_vaddr 0, position-independent)."""
    funcs = [
        (b"__vdso_clock_gettime", _clock_gettime_code()),
        (b"__vdso_gettimeofday", _gettimeofday_code()),
        (b"__vdso_time", _time_code()),
        (b"clock_gettime", None), (b"gettimeofday", None), (b"time", None),  # weak aliases
    ]
    strtab = bytearray(b"\0")

    def add_str(s: bytes) -> int:
        off = len(strtab)
        strtab.extend(s + b"\0")
        return off

    soname = add_str(b"linux-vdso.so.1")
    ver_name = add_str(b"LINUX_2.6")

    ehdr_size, phdr_size = 64, 56
    off = ehdr_size + 2 * phdr_size
    text_off = 0x400
    text = bytearray()
    func_addr = {}
    for name, code in funcs[:3]:
        func_addr[name] = text_off + len(text)
        text += code
        text += b"\xcc" * ((-len(text)) % 16)
    for alias, target in zip(funcs[3:], funcs[:3]):
        func_addr[alias[0]] = func_addr[target[0]]

    names = [f[0] for f in funcs]
    nsyms = len(names) + 1
    sym_name_off = [add_str(n) for n in names]

    # dynsym
    symtab = bytearray(24)  # null symbol
    for i, n in enumerate(names):
        bind = 1 if i < 3 else 2  # GLOBAL for __vdso_*, WEAK for aliases
        st_info = (bind << 4) | 2  # STT_FUNC
        symtab += struct.pack("<IBBHQQ", sym_name_off[i], st_info, 0, 7, func_addr[n], 0x20)
    # SysV hash
    nbucket = 3
    buckets = [0] * nbucket
    chains = [0] * nsyms
    for idx in range(1, nsyms):
        b = _sysv_hash(names[idx - 1]) % nbucket
        chains[idx] = buckets[b]
        buckets[b] = idx
    hashtab = struct.pack(f"<II{nbucket}I{nsyms}I", nbucket, nsyms, *buckets, *chains)
    versym = struct.pack(f"<{nsyms}H", 0, *([2] * (nsyms - 1)))
    # verdef: base entry (the file) then LINUX_2.6 (index 2)
    vd = struct.Struct("<HHHHIII")   # version, flags, ndx, cnt, hash, aux, next
    vda = struct.Struct("<II")       # name, next
    verdef = vd.pack(1, 1, 1, 1, _sysv_hash(b"linux-vdso.so.1"), 20, 28) + vda.pack(soname, 0)
    verdef += vd.pack(1, 0, 2, 1, _sysv_hash(b"LINUX_2.6"), 20, 0) + vda.pack(ver_name, 0)

    layout = {}
    blob = bytearray()
    cursor = off

    def place(key: str, data: bytes, align: int = 8) -> None:
        nonlocal cursor
        pad = (-cursor) % align
        blob.extend(b"\0" * pad)
        cursor += pad
        layout[key] = cursor
        blob.extend(data)
        cursor += len(data)

    place("hash", hashtab)
    place("dynsym", bytes(symtab))
    place("dynstr", bytes(strtab), 1)
    place("versym", versym, 2)
    place("verdef", verdef, 4)
    DT_NULL, DT_HASH, DT_STRTAB, DT_SYMTAB, DT_STRSZ, DT_SYMENT = 0, 4, 5, 6, 10, 11
    DT_SONAME, DT_VERSYM, DT_VERDEF, DT_VERDEFNUM = 14, 0x6FFFFFF0, 0x6FFFFFFC, 0x6FFFFFFD
    dyn = [(DT_SONAME, soname), (DT_HASH, layout["hash"]), (DT_STRTAB, layout["dynstr"]),
           (DT_SYMTAB, layout["dynsym"]), (DT_STRSZ, len(strtab)), (DT_SYMENT, 24),
           (DT_VERSYM, layout["versym"]), (DT_VERDEF, layout["verdef"]), (DT_VERDEFNUM, 2),
           (DT_NULL, 0)]
    place("dynamic", b"".join(struct.pack("<qQ", t, v) for t, v in dyn))
    assert cursor <= text_off, "vDSO tables overflow into text"
    image = bytearray(0x1000)
    image[off:cursor] = blob
    image[text_off:text_off + len(text)] = text
    size = 0x1000
    # ELF header
    e_ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + b"\0" * 8
    image[0:64] = e_ident + struct.pack("<HHIQQQIHHHHHH", 3, 62, 1, func_addr[b"__vdso_clock_gettime"],
                                        ehdr_size, 0, 0, 64, phdr_size, 2, 64, 0, 0)
    PT_LOAD, PT_DYNAMIC = 1, 2
    ph = struct.Struct("<IIQQQQQQ")
    image[64:120] = ph.pack(PT_LOAD, 5, 0, 0, 0, size, size, 0x1000)
    dyn_size = len(dyn) * 16
    image[120:176] = ph.pack(PT_DYNAMIC, 4, layout["dynamic"], layout["dynamic"], layout["dynamic"],
                             dyn_size, dyn_size, 8)
    return bytes(image)


def vvar_bytes(realtime_ns: int, monotonic_ns: int) -> bytes:
    return struct.pack("<QQ", realtime_ns, monotonic_ns)
