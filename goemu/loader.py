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

from .memory import PAGE, PROT_EXEC, PROT_READ, PROT_WRITE, Memory, page_down, page_up
from .record import field, record
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


@record
class Segment:
    vaddr: int
    memsz: int
    filesz: int
    offset: int
    flags: int


@record
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
    """The checks Linux's load_elf_binary makes before the point of no return (each failure is
    ENOEXEC natively: execve returns and the caller goes on)."""
    if not data:
        raise BadExecutable("empty file: not an ELF executable")
    if data[:4] != b"\x7fELF":
        raise BadExecutable("not an ELF executable")
    if len(data) < _EHDR.size:
        raise BadExecutable("truncated ELF header")
    # Linux's x86-64 loader reads any class and byte order but ELFCLASS32 as ELF64 and checks
    # only e_machine; a 32-bit file (compat loader) and a big-endian one are refused here
    if data[4] == 1:
        raise BadExecutable("32-bit ELF: goemu runs x86-64 (ELF64) executables only")
    (_ident, e_type, e_machine, _ver, e_entry, e_phoff, _shoff, _flags, _ehsize, e_phentsize,
     e_phnum, _shentsize, _shnum, _shstrndx) = _EHDR.unpack_from(data)
    if e_machine != EM_X86_64:
        if data[5] == 2:
            raise BadExecutable("big-endian ELF: goemu runs little-endian x86-64 executables only")
        raise BadExecutable(f"wrong architecture (ELF machine {e_machine}): goemu runs x86-64 executables only")
    if e_type not in (ET_EXEC, ET_DYN):
        raise BadExecutable(f"not an executable (ELF type {e_type})")
    if e_phentsize != _PHDR.size:
        raise BadExecutable(f"bad ELF program header size {e_phentsize} (not {_PHDR.size}): Exec format error")
    if e_phnum < 1 or e_phnum * _PHDR.size > 65536:
        raise BadExecutable(f"bad ELF program header count {e_phnum}: Exec format error")
    if e_phoff + e_phnum * _PHDR.size > len(data):
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
            img.segments.append(Segment(p_vaddr, p_memsz, p_filesz, p_offset, p_flags))
            if p_offset <= e_phoff < p_offset + p_filesz:
                img.phdr_addr = (p_vaddr + (e_phoff - p_offset)) & _U64_MASK
    if e_type == ET_DYN:
        raise BadExecutable("position-independent executable (ET_DYN): goemu runs static non-PIE executables only"
                            + (" (it is dynamically linked)" if has_dynamic else ""))
    return img


_U64_MASK = (1 << 64) - 1
TASK_SIZE_MAX = (1 << 47) - PAGE     # Linux x86-64's TASK_SIZE (the last page is never user memory)


class ExecFailed(Exception):
    """Linux's execve passed its point of no return and then failed (a segment that cannot be
    mapped, an entry point above user space, ...): the new process dies of SIGSEGV. The
    message is one line for the user."""
    signal = 11


def _prot(flags: int) -> int:
    return (PROT_READ if flags & PF_R else 0) | (PROT_WRITE if flags & PF_W else 0) | \
        (PROT_EXEC if flags & PF_X else 0)


def _mmap_min_addr() -> int:
    """Below this only a process with CAP_SYS_RAWIO may map (root here, as a rule)."""
    if os.geteuid() == 0:
        return 0
    try:
        with open("/proc/sys/vm/mmap_min_addr") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 65536


def _check_range(mem: Memory, start: int, end: int, what: str) -> None:
    if end > TASK_SIZE_MAX or end < start:
        raise ExecFailed(f"{what} at {start:#x} lies above user space (ENOMEM)")
    if start < _mmap_min_addr():
        raise ExecFailed(f"{what} at {start:#x} lies below vm.mmap_min_addr (EPERM)")


def _load_segment(mem: Memory, img: Image, seg: Segment, name: str, file_size: int, first: bool) -> int:
    """One PT_LOAD as Linux's elf_load maps it; returns the end of what it mapped."""
    prot = _prot(seg.flags)
    in_page = seg.vaddr & (PAGE - 1)
    mapped_end = 0
    if seg.filesz:
        # elf_map: the file's pages, MAP_PRIVATE | MAP_FIXED_NOREPLACE (ET_EXEC)
        start = page_down(seg.vaddr)
        if seg.filesz + in_page > TASK_SIZE_MAX:
            raise ExecFailed(f"segment at {seg.vaddr:#x}: file size {seg.filesz:#x} does not fit (ENOMEM)")
        end = start + page_up(seg.filesz + in_page)
        offset = seg.offset - in_page
        if offset % PAGE or offset < 0 or offset + (end - start) > _U64_MASK:
            raise ExecFailed(f"segment at {seg.vaddr:#x}: file offset {seg.offset:#x} and address "
                             "differ modulo the page size (EINVAL)")
        if offset + (end - start) > (1 << 63) - 1:      # file_mmap_ok: past MAX_LFS_FILESIZE
            raise ExecFailed(f"segment at {seg.vaddr:#x}: file offset {seg.offset:#x} lies past the "
                             "largest file size (EOVERFLOW)")
        _check_range(mem, start, end, "segment")
        # only the first PT_LOAD is MAP_FIXED_NOREPLACE (nothing else is mapped yet but the
        # stack); later ones are MAP_FIXED and replace what they overlap, as Linux's
        if first and mem.overlaps(start, end):
            raise ExecFailed(f"segment at {seg.vaddr:#x} overlaps the stack (EEXIST)")
        _commit(mem, start, end, prot, "segment")
        mem.map(start, end - start, prot | PROT_READ | PROT_WRITE, name=name)
        valid_end = min(end, start + max(page_up(file_size) - offset, 0))
        if valid_end > start and img.fd >= 0:
            mem.map_file(start, valid_end - start, img.fd, offset)
        if not prot & PROT_WRITE:
            mem.protect(start, end - start, prot)
        if valid_end < end:
            # pages wholly past the end of the file: SIGBUS when touched (Linux's page cache)
            mem.bus_error_range(max(valid_end, start), end)
        mapped_end = end
        if seg.memsz > seg.filesz:
            zero_start = seg.vaddr + seg.filesz
            # padzero: clear the rest of the last file page; a failure matters only if the
            # segment is writable (a page past the end of the file: EFAULT)
            if zero_start % PAGE and prot & PROT_WRITE:
                if offset + (page_down(zero_start) - start) >= file_size:
                    raise ExecFailed(f"segment at {seg.vaddr:#x}: its last file page lies past the "
                                     "end of the file and cannot be cleared (EFAULT)")
                mem.poke(zero_start, bytes(page_up(zero_start) - zero_start))
            zero_start = page_up(zero_start)
        bss_start = zero_start if seg.memsz > seg.filesz else 0
    else:
        bss_start = page_down(seg.vaddr)
    if seg.memsz > seg.filesz:
        # vm_brk_flags: anonymous read-write pages (executable if the segment is), replacing
        # whatever was there
        zero_end = seg.vaddr + seg.memsz
        if seg.memsz > TASK_SIZE_MAX or zero_end > TASK_SIZE_MAX:
            raise ExecFailed(f"segment at {seg.vaddr:#x}: memory size {seg.memsz:#x} reaches "
                             "above user space (ENOMEM)")
        zero_end = page_up(zero_end)
        if zero_end > bss_start:
            _check_range(mem, bss_start, zero_end, "segment")
            bss_prot = PROT_READ | PROT_WRITE | (prot & PROT_EXEC)
            _commit(mem, bss_start, zero_end, bss_prot, "segment's zero-filled part")
            mem.map(bss_start, zero_end - bss_start, bss_prot, name="")
            mapped_end = max(mapped_end, zero_end)
    return mapped_end


def _commit(mem: Memory, start: int, end: int, prot: int, what: str) -> None:
    from .overcommit import check_commit
    if not check_commit(mem, end - start, prot):
        raise ExecFailed(f"{what} at {start:#x}: {end - start:#x} bytes are more memory than the "
                         "host can commit (ENOMEM)")


def load(mem: Memory, img: Image) -> None:
    """Map PT_LOAD segments (file bytes + zeroed bss), the vDSO, vvar and vsyscall pages, in the
    order and with the checks of Linux's load_elf_binary past its point of no return (a failure
    raises ExecFailed: Linux kills the new process with SIGSEGV)."""
    name = os.path.basename(img.path)
    file_size = len(img.data)
    top = 0
    for i, seg in enumerate(img.segments):
        # Linux checks these after mapping the segment; checked first here (the outcome is the
        # same SIGSEGV, and a 2^45-byte file range need not be mapped to be refused)
        k = seg.vaddr
        if k >= TASK_SIZE_MAX or seg.filesz > seg.memsz or seg.memsz > TASK_SIZE_MAX or \
                TASK_SIZE_MAX - seg.memsz < k:
            raise ExecFailed(f"segment at {seg.vaddr:#x}: file size {seg.filesz:#x} and memory size "
                             f"{seg.memsz:#x} are inconsistent or reach above user space (EINVAL)")
        end = _load_segment(mem, img, seg, name, file_size, i == 0)
        top = max(top, end, page_up(k + seg.memsz))
    if img.entry >= TASK_SIZE_MAX:
        raise ExecFailed(f"entry point {img.entry:#x} lies above user space (EINVAL)")
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
