"""Memory syscalls: mmap, munmap, mprotect, madvise, mincore, brk, mremap, msync, mlock."""
from __future__ import annotations

import fcntl
import os
import stat

from ..errno import EACCES, EBADF, EEXIST, EINVAL, ENODEV, ENOMEM, LinuxError, from_oserror
from ..memory import (MAP_ANONYMOUS, MAP_FIXED, MAP_FIXED_NOREPLACE, MAP_PRIVATE, MAP_SHARED,
                      PAGE, PROT_NONE, PROT_WRITE, TASK_SIZE, page_up)
from ..overcommit import check_commit
from . import PARTIAL, syscall

MAP_NORESERVE = 0x4000


@syscall("mmap", "ptr", "size", "prot", "mapflags", "fd", "hex", ret="hex", level=PARTIAL,
         note="MAP_SHARED maps of files opened read-write share the host file's pages; other "
              "file mappings are private copies")
def mmap(k, t, addr, length, prot, flags, fd, offset):
    if length == 0:
        raise LinuxError(EINVAL)
    if length > TASK_SIZE:
        raise LinuxError(ENOMEM)    # Linux: longer than the address space (not EINVAL)
    if offset & (PAGE - 1):
        raise LinuxError(EINVAL)
    if not flags & (MAP_SHARED | MAP_PRIVATE):
        raise LinuxError(EINVAL)
    fixed = bool(flags & (MAP_FIXED | MAP_FIXED_NOREPLACE))
    if flags & MAP_FIXED_NOREPLACE and k.mem.overlaps(addr, addr + page_up(length)):
        raise LinuxError(EEXIST)
    data = shared = None
    if not flags & MAP_ANONYMOUS:
        fd = fd & 0xFFFFFFFF
        entry = k.fds.fds.get(fd if fd < 0x80000000 else -1)
        if entry is None:
            raise LinuxError(EBADF)
        if entry.kind not in ("file", "memfd", "stdio"):
            raise LinuxError(ENODEV)
        if flags & MAP_SHARED and entry.kind in ("file", "memfd") and prot != PROT_NONE:
            # the host's own shared mapping of the file: writes reach the file, and many
            # mappings of the same pages cost no copies (Go's TestMemmoveOverflow maps one
            # 64 KiB page range 49,152 times)
            try:
                st = os.fstat(entry.host)
                rw = fcntl.fcntl(entry.host, fcntl.F_GETFL) & os.O_ACCMODE == os.O_RDWR
            except OSError as e:
                raise from_oserror(e) from None
            if not rw and prot & PROT_WRITE:
                raise LinuxError(EACCES)     # a shared writable map needs a read-write fd
            if rw and stat.S_ISREG(st.st_mode):
                shared = (entry.host, offset, st.st_size)
    if shared is None and not flags & MAP_ANONYMOUS:
        try:
            data = os.pread(entry.host, page_up(length), offset)
        except OSError as e:
            raise from_oserror(e) from None
        data = data.ljust(page_up(length), b"\0")
        if prot == PROT_NONE:
            data = None
    if not fixed and addr:
        addr &= ~(PAGE - 1)
    if (flags & MAP_PRIVATE or flags & MAP_ANONYMOUS) and \
            not check_commit(k.mem, page_up(length), prot, noreserve=bool(flags & MAP_NORESERVE)):
        raise LinuxError(ENOMEM)    # more than the host's overcommit policy lets Linux commit
    return k.mem.map(addr, length, prot, "[anon]" if data is None and shared is None else "[file]",
                     fixed=fixed, data=data, file=shared)


@syscall("munmap", "ptr", "size")
def munmap(k, t, addr, length):
    k.mem.unmap(addr, length)
    return 0


@syscall("mprotect", "ptr", "size", "prot")
def mprotect(k, t, addr, length, prot):
    if prot & ~7:
        raise LinuxError(EINVAL)
    if prot & PROT_WRITE:
        # pages becoming writable are charged now (mprotect_fixup), as Linux's overcommit does
        end = addr + page_up(length)
        grow = sum(min(v.end, end) - max(v.start, addr) for v in k.mem.vmas
                   if v.start < end and v.end > addr and not v.prot & PROT_WRITE)
        if grow and not check_commit(k.mem, grow, prot):
            raise LinuxError(ENOMEM)
    k.mem.protect(addr, length, prot)
    return 0


MADV_DONTNEED, MADV_FREE = 4, 8


@syscall("madvise", "ptr", "size", "int", level=PARTIAL,
         note="MADV_DONTNEED zeroes and MADV_FREE releases the host pages; other advice is accepted")
def madvise(k, t, addr, length, advice):
    if addr & (PAGE - 1):
        raise LinuxError(EINVAL)
    if advice in (MADV_DONTNEED, MADV_FREE) and length:
        end = addr + page_up(length)
        if end > TASK_SIZE or not k.mem.covers(addr, end):
            raise LinuxError(ENOMEM)      # Linux: part of the range is not mapped
        k.mem.discard(addr, length, zero=advice == MADV_DONTNEED)
    return 0


@syscall("mincore", "ptr", "size", "ptr")
def mincore(k, t, addr, length, vec):
    if addr & (PAGE - 1):
        raise LinuxError(EINVAL)
    pages = page_up(length) // PAGE
    out = bytearray(pages)
    for i in range(pages):
        v = k.mem.find(addr + i * PAGE)
        if v is None:
            raise LinuxError(ENOMEM)
        out[i] = 1 if v.prot != PROT_NONE else 0
    k.mem.write(vec, bytes(out))
    return 0


@syscall("brk", "ptr", ret="hex")
def brk(k, t, addr):
    if addr == 0:
        return k.mem.brk
    try:
        return k.mem.set_brk(addr)
    except LinuxError:
        return k.mem.brk


@syscall("mremap", "ptr", "size", "size", "hex", "ptr", ret="hex", level=PARTIAL,
         note="moves by copying")
def mremap(k, t, old, old_len, new_len, flags, new_addr):
    MREMAP_MAYMOVE, MREMAP_FIXED = 1, 2
    v = k.mem.find(old)
    if v is None or old & (PAGE - 1):
        raise LinuxError(EINVAL if v else 14)
    old_len, new_len = page_up(old_len), page_up(new_len)
    if new_len <= old_len and not flags & MREMAP_FIXED:
        if new_len < old_len:
            k.mem.unmap(old + new_len, old_len - new_len)
        return old
    if not flags & MREMAP_MAYMOVE:
        raise LinuxError(ENOMEM)
    data = k.mem.read(old, old_len) if v.prot != PROT_NONE else None
    dest = k.mem.map(new_addr if flags & MREMAP_FIXED else 0, new_len, v.prot | (PROT_WRITE if data else 0),
                     v.name, fixed=bool(flags & MREMAP_FIXED))
    if data:
        k.mem.write(dest, data)
        if not v.prot & PROT_WRITE:
            k.mem.protect(dest, new_len, v.prot)
    k.mem.unmap(old, old_len)
    return dest


@syscall("msync", "ptr", "size", "hex")
def msync(k, t, addr, length, flags):
    return 0


@syscall("mlock", "ptr", "size")
def mlock(k, t, addr, length):
    return 0


@syscall("munlock", "ptr", "size")
def munlock(k, t, addr, length):
    return 0



