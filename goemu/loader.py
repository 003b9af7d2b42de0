"""ELF loader: validate a static x86-64 executable, map it, and build the initial stack as
Linux's execve does (argc, argv, envp, auxv, AT_RANDOM bytes, strings).

Everything that can be wrong with the file is reported as ``BadExecutable`` with one line of
text; the CLI turns that into ``goemu: PATH: reason`` and exit status 126.
"""
from __future__ import annotations

import mmap
import os
import stat
import struct
from dataclasses import dataclass, field

from .memory import PAGE, PROT_EXEC, PROT_READ, PROT_WRITE, Memory, page_down, page_up
from .vdso import VDSO_ADDR, VSYSCALL_ALIAS, VVAR_ADDR, build_vdso, vsyscall_page

STACK_TOP = 0x7FFF_FFFF_F000
STACK_SIZE = 8 << 20

ET_EXEC, ET_DYN = 2, 3
EM_X86_64 = 62
PT_LOAD, PT_DYNAMIC, PT_INTERP = 1, 2, 3
PF_X, PF_W, PF_R = 1, 2, 4

AT_NULL, AT_PHDR, AT_PHENT, AT_PHNUM, AT_PAGESZ, AT_BASE, AT_FLAGS, AT_ENTRY = 0, 3, 4, 5, 6, 7, 8, 9
AT_UID, AT_EUID, AT_GID, AT_EGID, AT_PLATFORM, AT_HWCAP, AT_CLKTCK = 11, 12, 13, 14, 15, 16, 17
AT_SECURE, AT_RANDOM, AT_HWCAP2, AT_EXECFN, AT_SYSINFO_EHDR = 23, 25, 26, 31, 33


class BadExecutable(Exception):
    """The file cannot be run; the message is one line for the user."""


@dataclass
class Segment:
    vaddr: int
    memsz: int
    filesz: int
    offset: int
    flags: int


@dataclass
class Image:
    path: str
    data: bytes | mmap.mmap     # the file, mapped read-only (pages are read only where used)
    entry: int
    phoff: int
    phnum: int
    segments: list[Segment] = field(default_factory=list)
    phdr_addr: int = 0
    fd: int = -1                # the open file (segments are mapped from it)


_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
_PHDR = struct.Struct("<IIQQQQQQ")


def read_image(path: str) -> Image:
    """Read and validate; raise BadExecutable with the reason."""
    if os.path.isdir(path):
        raise BadExecutable("Is a directory")
    try:
        st = os.stat(path)
        # execve runs regular files only (a FIFO or /dev/zero: EACCES, without opening it)
        if not stat.S_ISREG(st.st_mode) or not os.access(path, os.X_OK):
            raise BadExecutable("Permission denied")
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            data = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ) if size else b""
            fd = os.dup(f.fileno()) if size else -1   # kept open: segments map from it
    except PermissionError:
        raise BadExecutable("Permission denied") from None
    except OSError as e:
        raise BadExecutable(e.strerror or str(e)) from None
    try:
        return _parse(path, data, fd)
    except BadExecutable:
        if fd >= 0:
            os.close(fd)
        raise


def _parse(path: str, data, fd: int) -> Image:
    if not data:
        raise BadExecutable("empty file: not an ELF executable")
    if data[:4] != b"\x7fELF":
        raise BadExecutable("not an ELF executable")
    if len(data) < _EHDR.size:
        raise BadExecutable("truncated ELF header")
    if data[4] != 2:
        raise BadExecutable("32-bit ELF: goemu runs x86-64 (ELF64) executables only")
    if data[5] != 1:
        raise BadExecutable("big-endian ELF: goemu runs little-endian x86-64 executables only")
    (_ident, e_type, e_machine, _ver, e_entry, e_phoff, _shoff, _flags, _ehsize, e_phentsize,
     e_phnum, _shentsize, _shnum, _shstrndx) = _EHDR.unpack_from(data)
    if e_machine != EM_X86_64:
        raise BadExecutable(f"wrong architecture (ELF machine {e_machine}): goemu runs x86-64 executables only")
    if e_type not in (ET_EXEC, ET_DYN):
        raise BadExecutable(f"not an executable (ELF type {e_type})")
    if e_phentsize != _PHDR.size or e_phoff + e_phnum * _PHDR.size > len(data):
        raise BadExecutable("truncated ELF: program headers lie past the end of the file")
    img = Image(path, data, e_entry, e_phoff, e_phnum, fd=fd)
    has_dynamic = False
    for i in range(e_phnum):
        p_type, p_flags, p_offset, p_vaddr, _paddr, p_filesz, p_memsz, _align = \
            _PHDR.unpack_from(data, e_phoff + i * _PHDR.size)
        if p_type == PT_INTERP:
            raise BadExecutable("dynamically linked (has an ELF interpreter): goemu runs static executables only")
        if p_type == PT_DYNAMIC:
            has_dynamic = True
        if p_type == PT_LOAD:
            if p_offset + p_filesz > len(data):
                raise BadExecutable("truncated ELF: a loadable segment lies past the end of the file")
            img.segments.append(Segment(p_vaddr, p_memsz, p_filesz, p_offset, p_flags))
            if p_offset <= e_phoff < p_offset + p_filesz:
                img.phdr_addr = p_vaddr + (e_phoff - p_offset)
    if e_type == ET_DYN:
        raise BadExecutable("position-independent executable (ET_DYN): goemu runs static non-PIE executables only"
                            + (" (it is dynamically linked)" if has_dynamic else ""))
    if not img.segments:
        raise BadExecutable("no loadable segments")
    return img


def _prot(flags: int) -> int:
    return (PROT_READ if flags & PF_R else 0) | (PROT_WRITE if flags & PF_W else 0) | \
        (PROT_EXEC if flags & PF_X else 0)


def load(mem: Memory, img: Image) -> None:
    """Map PT_LOAD segments (file bytes + zeroed bss), the vDSO, vvar and vsyscall pages."""
    top = 0
    name = os.path.basename(img.path)
    file_pages: list[tuple[int, int]] = []
    for seg in img.segments:
        start = page_down(seg.vaddr)
        end = page_up(seg.vaddr + seg.memsz)
        prot = _prot(seg.flags)
        # map writable, bring the file bytes in (fresh pages are zero: that is the bss), then
        # set the segment's own protection
        mem.map(start, end - start, prot | PROT_READ | PROT_WRITE, name=name)
        fend = page_up(seg.vaddr + seg.filesz)
        if seg.filesz and img.fd >= 0 and \
                (seg.vaddr - seg.offset) % PAGE == 0 and \
                not any(a < fend and start < b for a, b in file_pages):
            # map the file's pages as Linux does (read only where the guest touches them),
            # then clear what follows the file bytes in their last page
            mem.map_file(start, fend - start, img.fd, page_down(seg.offset))
            file_pages.append((start, fend))
            tail = fend - (seg.vaddr + seg.filesz)
            if tail:
                mem.poke(seg.vaddr + seg.filesz, bytes(min(tail, end - (seg.vaddr + seg.filesz))))
        elif seg.filesz:
            mem.poke(seg.vaddr, img.data[seg.offset:seg.offset + seg.filesz])
        if not prot & PROT_WRITE:
            mem.protect(start, end - start, prot)
        top = max(top, end)
    mem.brk_start = mem.brk = top
    mem.map(VDSO_ADDR, PAGE, PROT_READ | PROT_EXEC, "[vdso]", data=build_vdso())
    mem.map(VVAR_ADDR, PAGE, PROT_READ, "[vvar]")
    # The vsyscall alias lies above TASK_SIZE, so it is mapped in Unicorn only, not in the VMA table.
    mem.uc.mem_map(VSYSCALL_ALIAS, PAGE, 5)
    mem.uc.mem_write(VSYSCALL_ALIAS, vsyscall_page())


def build_stack(mem: Memory, img: Image, argv: list[bytes], envp: list[bytes], random16: bytes) -> int:
    """Map the stack and lay out argc/argv/envp/auxv as Linux does; return the initial RSP."""
    mem.map(STACK_TOP - STACK_SIZE, STACK_SIZE, PROT_READ | PROT_WRITE, "[stack]")
    sp = STACK_TOP
    execfn = img.path.encode()

    def push_bytes(b: bytes) -> int:
        nonlocal sp
        sp -= len(b)
        mem.write(sp, b)
        return sp

    push_bytes(b"\0" * 8)
    execfn_addr = push_bytes(execfn + b"\0")
    env_addrs = [push_bytes(e + b"\0") for e in reversed(envp)][::-1]
    arg_addrs = [push_bytes(a + b"\0") for a in reversed(argv)][::-1]
    platform_addr = push_bytes(b"x86_64\0")
    sp &= ~15
    random_addr = push_bytes(random16)
    sp &= ~15
    auxv = [
        (AT_SYSINFO_EHDR, VDSO_ADDR), (AT_HWCAP, 0x178BFBFF), (AT_PAGESZ, PAGE), (AT_CLKTCK, 100),
        (AT_PHDR, img.phdr_addr), (AT_PHENT, _PHDR.size), (AT_PHNUM, img.phnum), (AT_BASE, 0),
        (AT_FLAGS, 0), (AT_ENTRY, img.entry), (AT_UID, os.getuid()), (AT_EUID, os.geteuid()),
        (AT_GID, os.getgid()), (AT_EGID, os.getegid()), (AT_SECURE, 0), (AT_RANDOM, random_addr),
        (AT_HWCAP2, 0x2), (AT_EXECFN, execfn_addr), (AT_PLATFORM, platform_addr), (AT_NULL, 0),
    ]
    words = [len(argv), *arg_addrs, 0, *env_addrs, 0]
    for k, v in auxv:
        words += [k, v]
    if len(words) % 2:
        sp -= 8
    sp -= 8 * len(words)
    sp &= ~15
    mem.write(sp, struct.pack(f"<{len(words)}Q", *words))
    return sp


def auxv_bytes(mem: Memory, rsp: int) -> bytes:
    """The auxv vector as /proc/self/auxv would return it (read back from the initial stack)."""
    argc = mem.read_u64(rsp)
    p = rsp + 8 * (argc + 2)
    while mem.read_u64(p):
        p += 8
    p += 8
    start = p
    while mem.read_u64(p):
        p += 16
    return mem.read(start, p + 16 - start)
