"""Directories and names: getdents64, mkdir, unlink/rmdir, rename, symlink, link, mknod.

``getdents64`` lists a directory on first use and keeps the position per open file description
(``fsbase.DirStream`` in ``Fd.obj``), because Python cannot call getdents itself.
"""
from __future__ import annotations

import ctypes
import os
import struct

from ..errno import EINVAL, ENOENT, EPERM, LinuxError
from . import PARTIAL, syscall
from .fsbase import (AT_EMPTY_PATH, AT_FDCWD, AT_REMOVEDIR, AT_SYMLINK_FOLLOW, dirstream, fdarg,
                     host_call, libc, libc_check)
from .confined import check_modify, check_same_mount
from .paths import dir_entry, modify_found, modify_target, path_arg, raw_dirfd

# linux_dirent64 header: d_ino, d_off, d_reclen, d_type; the name follows.
DIRENT64 = struct.Struct("<QqHB")


def dirent64(ino: int, off: int, dtype: int, name: bytes) -> bytes:
    reclen = (DIRENT64.size + len(name) + 1 + 7) & ~7
    return (DIRENT64.pack(ino, off, reclen, dtype) + name).ljust(reclen, b"\0")


@syscall("getdents64", "fd", "ptr", "uint", level=PARTIAL,
         note="the listing is a snapshot taken at the first call after open or rewind")
def getdents64(k, t, fd, dirp, count):
    entry = k.fds.get(fdarg(fd))
    ds = dirstream(entry)
    if ds.entries is None:
        ds.entries = host_call(lambda: ds.list(entry.host))
    count &= 0xFFFFFFFF
    out = bytearray()
    pos = ds.pos
    while pos < len(ds.entries):
        ino, dtype, name = ds.entries[pos]
        rec = dirent64(ino, pos + 1, dtype, name)
        if len(out) + len(rec) > count:
            if not out:
                raise LinuxError(EINVAL)
            break
        out += rec
        pos += 1
    k.mem.write(dirp, bytes(out))
    ds.pos = pos
    return len(out)



def _unlink(k, dirfd: int, path: bytes, flags: int) -> int:
    flags &= 0xFFFFFFFF
    if flags & ~AT_REMOVEDIR:
        raise LinuxError(EINVAL)
    dfd, hp = modify_target(k, dirfd, path)
    if flags & AT_REMOVEDIR:
        host_call(lambda: os.rmdir(hp, dir_fd=dfd))
    else:
        host_call(lambda: os.unlink(hp, dir_fd=dfd))
    return 0


@syscall("unlinkat", "dirfd", "str", "atflags")
def unlinkat(k, t, dirfd, path, flags):
    return _unlink(k, dirfd, path_arg(k, path), flags)


@syscall("unlink", "str")
def unlink(k, t, path):
    return _unlink(k, AT_FDCWD, path_arg(k, path), 0)


@syscall("rmdir", "str")
def rmdir(k, t, path):
    return _unlink(k, AT_FDCWD, path_arg(k, path), AT_REMOVEDIR)


def _mkdir(k, dirfd: int, path: bytes, mode: int) -> int:
    dfd, hp = modify_target(k, dirfd, path)
    host_call(lambda: os.mkdir(hp, mode & 0o7777, dir_fd=dfd))
    return 0


@syscall("mkdirat", "dirfd", "str", "oct")
def mkdirat(k, t, dirfd, path, mode):
    return _mkdir(k, dirfd, path_arg(k, path), mode)


@syscall("mkdir", "str", "oct")
def mkdir(k, t, path, mode):
    return _mkdir(k, AT_FDCWD, path_arg(k, path), mode)


def _rename(k, olddirfd, oldpath: bytes, newdirfd, newpath: bytes, flags: int = 0) -> int:
    src = modify_found(k, olddirfd, oldpath, check=False)
    dst = modify_found(k, newdirfd, newpath, check=False)
    check_same_mount(src, dst)
    check_modify(src)
    check_modify(dst)
    sdfd, oldpath, ddfd, newpath = src.dfd, src.path, dst.dfd, dst.path
    if flags:
        # RENAME_NOREPLACE / EXCHANGE / WHITEOUT: the host's renameat2 decides (EINVAL where unsupported)
        fn = getattr(libc, "renameat2", None)
        if fn is None:
            raise LinuxError(EINVAL)
        libc_check(fn(raw_dirfd(sdfd), oldpath, raw_dirfd(ddfd), newpath, ctypes.c_uint(flags)))
        return 0
    host_call(lambda: os.rename(oldpath, newpath, src_dir_fd=sdfd, dst_dir_fd=ddfd))
    return 0


@syscall("renameat", "dirfd", "str", "dirfd", "str")
def renameat(k, t, olddirfd, oldpath, newdirfd, newpath):
    return _rename(k, olddirfd, path_arg(k, oldpath), newdirfd, path_arg(k, newpath))


@syscall("renameat2", "dirfd", "str", "dirfd", "str", "hex")
def renameat2(k, t, olddirfd, oldpath, newdirfd, newpath, flags):
    return _rename(k, olddirfd, path_arg(k, oldpath), newdirfd, path_arg(k, newpath), flags & 0xFFFFFFFF)


@syscall("rename", "str", "str")
def rename(k, t, oldpath, newpath):
    return _rename(k, AT_FDCWD, path_arg(k, oldpath), AT_FDCWD, path_arg(k, newpath))


def _symlink(k, target: bytes, dirfd: int, linkpath: bytes) -> int:
    dfd, hp = modify_target(k, dirfd, linkpath)
    host_call(lambda: os.symlink(target, hp, dir_fd=dfd))
    return 0


@syscall("symlinkat", "str", "dirfd", "str")
def symlinkat(k, t, target, newdirfd, linkpath):
    return _symlink(k, path_arg(k, target), newdirfd, path_arg(k, linkpath))


@syscall("symlink", "str", "str")
def symlink(k, t, target, linkpath):
    return _symlink(k, path_arg(k, target), AT_FDCWD, path_arg(k, linkpath))


def _link(k, olddirfd, oldpath: bytes, newdirfd, newpath: bytes, flags: int) -> int:
    flags &= 0xFFFFFFFF
    if flags & ~(AT_SYMLINK_FOLLOW | AT_EMPTY_PATH):
        raise LinuxError(EINVAL)
    src = None
    if oldpath:
        src = modify_found(k, olddirfd, oldpath, follow=bool(flags & AT_SYMLINK_FOLLOW), check=False)
        sdfd, oldpath = src.dfd, src.path
    else:                                   # AT_EMPTY_PATH: the dirfd itself
        entry = dir_entry(k, olddirfd)
        sdfd = entry.host if entry is not None else None
        if getattr(k, "sandbox", None) is not None:
            raise LinuxError(EPERM)         # (CAP_DAC_READ_SEARCH on Linux; never in a sandbox)
    dst = modify_found(k, newdirfd, newpath, check=False)
    if src is not None:
        check_same_mount(src, dst)
        if src.device or src.mountpoint:
            check_modify(src)
    check_modify(dst)
    ddfd, newpath = dst.dfd, dst.path
    libc_check(libc.linkat(raw_dirfd(sdfd), oldpath, raw_dirfd(ddfd), newpath, ctypes.c_int(flags)))
    return 0


@syscall("linkat", "dirfd", "str", "dirfd", "str", "atflags")
def linkat(k, t, olddirfd, oldpath, newdirfd, newpath, flags):
    old = k.mem.read_cstr(oldpath)
    if not old and not flags & AT_EMPTY_PATH:
        raise LinuxError(ENOENT)
    return _link(k, olddirfd, old, newdirfd, path_arg(k, newpath), flags)


@syscall("link", "str", "str")
def link(k, t, oldpath, newpath):
    return _link(k, AT_FDCWD, path_arg(k, oldpath), AT_FDCWD, path_arg(k, newpath), 0)



# ---- special files -------------------------------------------------------------------------------
S_IFMT, S_IFSOCK, S_IFREG, S_IFBLK, S_IFCHR, S_IFIFO = 0o170000, 0o140000, 0o100000, 0o60000, 0o20000, 0o10000


def _mknod(k, dirfd: int, path: bytes, mode: int, dev: int) -> int:
    """FIFOs, regular files and sockets on the host; device nodes too where the host allows
    them (EPERM without CAP_MKNOD, as Linux)."""
    mode &= 0xFFFFFFFF
    kind = mode & S_IFMT
    if kind == 0:
        mode |= S_IFREG                      # Linux: no type means a regular file
    elif kind not in (S_IFREG, S_IFIFO, S_IFSOCK, S_IFCHR, S_IFBLK):
        raise LinuxError(EINVAL)
    if kind in (S_IFCHR, S_IFBLK) and getattr(k, "sandbox", None) is not None:
        raise LinuxError(EPERM)              # a device node would reach the host's devices
    dev &= 0xFFFFFFFF                        # the kernel's new_encode_dev layout
    major, minor = (dev & 0xFFF00) >> 8, (dev & 0xFF) | ((dev >> 12) & 0xFFF00)
    dfd, hp = modify_target(k, dirfd, path)
    host_call(lambda: os.mknod(hp, mode & (S_IFMT | 0o7777), os.makedev(major, minor), dir_fd=dfd))
    return 0


@syscall("mknodat", "dirfd", "str", "oct", "hex")
def mknodat(k, t, dirfd, path, mode, dev):
    return _mknod(k, dirfd, path_arg(k, path), mode, dev)


@syscall("mknod", "str", "oct", "hex")
def mknod(k, t, path, mode, dev):
    return _mknod(k, AT_FDCWD, path_arg(k, path), mode, dev)
