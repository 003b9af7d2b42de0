"""A small vDSO, built as a real ELF shared object and passed in AT_SYSINFO_EHDR.

Go 1.14 never makes a clock syscall: nanotime/walltime CALL ``__vdso_clock_gettime`` (or,
with no vDSO, the legacy vsyscall address). This vDSO answers from a *vvar* data page that
goemu refreshes before every slice of guest execution and extrapolates with the TSC, exactly
as the kernel's vDSO reads its vvar page: a clock read costs a few guest instructions and no
exit to Python.
Unknown clock ids fall back to the real ``clock_gettime`` syscall.

Go's parser (runtime/vdso_linux.go) needs PT_LOAD, PT_DYNAMIC, DT_STRTAB, DT_SYMTAB, DT_HASH,
DT_VERSYM and DT_VERDEF (it follows verdef without a nil check) and version LINUX_2.6.
"""
from __future__ import annotations

import struct

VDSO_ADDR = 0x7FFF_F7FF_0000     # two pages: the vDSO image, then the vvar page
VVAR_ADDR = VDSO_ADDR + 0x1000
VDSO_SIZE = 0x2000
# vvar layout: u64 realtime ns at 0, u64 monotonic ns at 8, their host TSC at 16, ns/tick<<32 at 24,
# a sequence number at 32.
VVAR_REALTIME, VVAR_MONOTONIC = 0, 8

# vsyscall page: Unicorn 2.1 masks guest addresses to 52 bits in its default TLB mode, so the
# canonical 0xffffffffff600000 is reached through this alias (go114-abi.md §1.4, unicorn#2010).
VSYSCALL_CANONICAL = 0xFFFF_FFFF_FF60_0000
VSYSCALL_ALIAS = VSYSCALL_CANONICAL & ((1 << 52) - 1)


# The vDSO's code: _ASM assembled by GNU as (tests/test_vdso.py assembles it again and compares).
# vvar layout: [0] realtime ns and [8] monotonic ns at host TSC [16]; [24] ns per TSC tick << 32,
# or 0 when time stands still between slices (the virtual clock, or a host whose clocksource is
# not the TSC); [32] a sequence number, new in every page. `now` extrapolates from the TSC as
# Linux's own vDSO does, so a clock read is fresh to the nanosecond without leaving the guest
# (guest RDTSC is the host's: qemu's cpu_get_ticks). Like Linux's vDSO it reads under a seqcount:
# a slice can end inside `now`, and the next slice runs on a new page; a read that mixed the old
# page's TSC base with the new page's clock (one slice too far ahead; the next read then went
# back in time by a slice) starts again.
_ASM = """\
.intel_syntax noprefix
.text
clock_gettime:
    movabs r8, 0x7ffff7ff1000
    cmp edi, 0
    je real
    cmp edi, 5
    je real
    cmp edi, 1
    je mono
    cmp edi, 4
    je mono
    cmp edi, 6
    je mono
    cmp edi, 7
    je mono
    mov eax, 228
    syscall
    ret
real: xor r9d, r9d
    jmp ts
mono: mov r9d, 8
ts: call now
    xor edx, edx
    mov ecx, 1000000000
    div rcx
    mov [rsi], rax
    mov [rsi+8], rdx
    xor eax, eax
    ret
now: mov r10, [r8+32]
    mov rcx, [r8+24]
    xor eax, eax
    test rcx, rcx
    jz frozen
    rdtsc
    shl rdx, 32
    or rax, rdx
    sub rax, [r8+16]
    jae fresh
    xor eax, eax
fresh: mul rcx
    shrd rax, rdx, 32
frozen: add rax, [r8+r9]
    cmp r10, [r8+32]
    jne now
    ret
gettimeofday:
    test rdi, rdi
    je done
    movabs r8, 0x7ffff7ff1000
    xor r9d, r9d
    call now
    xor edx, edx
    mov ecx, 1000000000
    div rcx
    mov [rdi], rax
    mov rax, rdx
    xor edx, edx
    mov ecx, 1000
    div rcx
    mov [rdi+8], rax
done: xor eax, eax
    ret
time:
    movabs r8, 0x7ffff7ff1000
    xor r9d, r9d
    call now
    xor edx, edx
    mov ecx, 1000000000
    div rcx
    test rdi, rdi
    je out
    mov [rdi], rax
out: ret
"""
_TEXT = bytes.fromhex(
    "49b80010fff7ff7f000083ff00742183ff05741c83ff01741c83ff04741783ff06741283ff07740db8e4000000"
    "0f05c34531c9eb0641b908000000e81400000031d2b900ca9a3b48f7f14889064889560831c0c34d8b5020498b"
    "481831c04885c974190f3148c1e2204809d0492b4010730231c048f7e1480facd0204b0304084d3b502075cec3"
    "4885ff743049b80010fff7ff7f00004531c9e8b6ffffff31d2b900ca9a3b48f7f14889074889d031d2b9e80300"
    "0048f7f14889470831c0c349b80010fff7ff7f00004531c9e883ffffff31d2b900ca9a3b48f7f14885ff740348"
    "8907c3")
_ENTRY = {b"__vdso_clock_gettime": 0x00, b"__vdso_gettimeofday": 0x87, b"__vdso_time": 0xBF}
assert _TEXT[2:10] == struct.pack("<Q", VVAR_ADDR), "the vDSO code hard-codes the vvar address"


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
        (b"__vdso_clock_gettime", None), (b"__vdso_gettimeofday", None), (b"__vdso_time", None),
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
    text = _TEXT
    func_addr = {name: text_off + off for name, off in _ENTRY.items()}
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


def vvar_bytes(realtime_ns: int, monotonic_ns: int, tsc: int = 0, mult: int = 0, seq: int = 0) -> bytes:
    """The vvar page's data: clocks at host TSC `tsc`, advancing `mult` / 2^32 ns per tick;
    `seq` differs from the last page's (a read that saw both starts again)."""
    return struct.pack("<QQQQQ", realtime_ns, monotonic_ns, tsc, mult, seq & (2**64 - 1))
