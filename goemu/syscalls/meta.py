"""Metadata: the stat family, statfs, permissions, ownership, sizes, times, access.

Results are the host's (guest and host are both x86-64 Linux), packed in the guest's struct
layouts; paths under ``/proc/self`` resolve to the guest's files first (``paths``).
"""
from __future__ import annotations

import ctypes
import os
import struct

from ..errno import EFAULT, EINVAL, ENOENT, EROFS, LinuxError
from . import PARTIAL, syscall
from .fsbase import (AT_EACCESS, AT_EMPTY_PATH, AT_FDCWD, AT_NO_AUTOMOUNT, AT_STATX_SYNC_TYPE,
                     AT_SYMLINK_NOFOLLOW, fdarg, host_call, i32, i64, idarg, libc, libc_check)
from .confined import check_fd_write
from .paths import dir_entry, host_target, modify_found, modify_target, path_arg, raw_dirfd, resolve

STATX_BASIC_STATS = 0x7FF
STATX__RESERVED = 0x80000000
TIMESPEC2_SIZE = 32
W_OK = 2


# ---- guest structs -----------------------------------------------------------------------
# struct stat (x86-64): dev, ino, nlink, mode, uid, gid, pad, rdev, size, blksize, blocks,
# atime, atime_nsec, mtime, mtime_nsec, ctime, ctime_nsec, 3 reserved.
STAT = struct.Struct("<QQQIIIiQqqqqqqqqq24x")
# struct statx: mask, blksize, attributes, nlink, uid, gid, mode, pad, ino, size, blocks,
# attributes_mask, 4 x statx_timestamp {sec, nsec, pad} (atime, btime, ctime, mtime),
# rdev major/minor, dev major/minor, mnt_id, dio_mem_align, dio_offset_align, spare.
STATX = struct.Struct("<IIQIIIHHQQQQ" + "qIi" * 4 + "IIIIQII96x")
# struct statfs (x86-64): type, bsize, blocks, bfree, bavail, files, ffree, fsid[2],
# namelen, frsize, flags, spare[4].
STATFS = struct.Struct("<qqQQQQQiiqqq32x")

def _libc_at(k, dirfd: int, path: bytes, follow: bool, modify: bool = False) -> tuple[int, bytes]:
    """(host dirfd or AT_FDCWD, host path) for libc *at calls; an empty path is the dirfd."""
    if not path:
        entry = dir_entry(k, dirfd)
        return raw_dirfd(entry.host if entry is not None else None), path
    dfd, hp = (modify_target if modify else host_target)(k, dirfd, path, follow)
    return raw_dirfd(dfd), hp


# ---- stat family -------------------------------------------------------------------------------
def _split_ns(ns: int) -> tuple[int, int]:
    return divmod(ns, 1_000_000_000)


def pack_stat(s: os.stat_result) -> bytes:
    a, m, c = _split_ns(s.st_atime_ns), _split_ns(s.st_mtime_ns), _split_ns(s.st_ctime_ns)
    return STAT.pack(s.st_dev, s.st_ino, s.st_nlink, s.st_mode, s.st_uid, s.st_gid, 0, s.st_rdev,
                     s.st_size, s.st_blksize, s.st_blocks, a[0], a[1], m[0], m[1], c[0], c[1])


def pack_statx(s: os.stat_result) -> bytes:
    a, m, c = _split_ns(s.st_atime_ns), _split_ns(s.st_mtime_ns), _split_ns(s.st_ctime_ns)
    return STATX.pack(STATX_BASIC_STATS, s.st_blksize, 0, s.st_nlink, s.st_uid, s.st_gid,
                      s.st_mode & 0xFFFF, 0, s.st_ino, s.st_size, s.st_blocks, 0,
                      a[0], a[1], 0, 0, 0, 0, c[0], c[1], 0, m[0], m[1], 0,
                      os.major(s.st_rdev), os.minor(s.st_rdev), os.major(s.st_dev), os.minor(s.st_dev),
                      0, 0, 0)


def _stat_at(k, dirfd: int, path: bytes, flags: int) -> os.stat_result:
    if not path:
        if not flags & AT_EMPTY_PATH:
            raise LinuxError(ENOENT)
        d = i32(dirfd)
        if d == AT_FDCWD:
            dfd, hp = host_target(k, AT_FDCWD, b".")
            return host_call(lambda: os.stat(hp, dir_fd=dfd))
        return fd_stat(k, k.fds.get(fdarg(d)))
    follow = not flags & AT_SYMLINK_NOFOLLOW
    dfd, hp = host_target(k, dirfd, path, follow)
    return host_call(lambda: os.stat(hp, dir_fd=dfd, follow_symlinks=follow))


def fd_stat(k, entry) -> os.stat_result:
    """The host fd's metadata, except for goemu's generated /proc files (memfds), which show
    their /proc entry's, as Linux's do (size 0, read-only)."""
    if entry.kind == "memfd" and entry.path.startswith("/proc/"):
        try:
            dfd, hp = host_target(k, AT_FDCWD, os.fsencode(entry.path))
            return os.stat(hp, dir_fd=dfd)
        except (LinuxError, OSError):
            pass                      # the entry has gone (a thread ended): the memfd's own
    return host_call(lambda: os.fstat(entry.host))


@syscall("fstat", "fd", "ptr")
def fstat(k, t, fd, buf):
    k.mem.write(buf, pack_stat(fd_stat(k, k.fds.get(fdarg(fd)))))
    return 0


@syscall("newfstatat", "dirfd", "str", "ptr", "atflags")
def newfstatat(k, t, dirfd, path, buf, flags):
    flags &= 0xFFFFFFFF
    if flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH | AT_NO_AUTOMOUNT):
        raise LinuxError(EINVAL)
    s = _stat_at(k, dirfd, k.mem.read_cstr(path), flags)
    k.mem.write(buf, pack_stat(s))
    return 0


@syscall("stat", "str", "ptr")
def stat(k, t, path, buf):
    k.mem.write(buf, pack_stat(_stat_at(k, AT_FDCWD, path_arg(k, path), 0)))
    return 0


@syscall("lstat", "str", "ptr")
def lstat(k, t, path, buf):
    k.mem.write(buf, pack_stat(_stat_at(k, AT_FDCWD, path_arg(k, path), AT_SYMLINK_NOFOLLOW)))
    return 0


@syscall("statx", "dirfd", "str", "atflags", "hex", "ptr", level=PARTIAL,
         note="basic stats only (no btime, mnt_id or attributes)")
def statx(k, t, dirfd, path, flags, mask, buf):
    flags &= 0xFFFFFFFF
    if flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH | AT_NO_AUTOMOUNT | AT_STATX_SYNC_TYPE):
        raise LinuxError(EINVAL)
    if flags & AT_STATX_SYNC_TYPE == AT_STATX_SYNC_TYPE or mask & STATX__RESERVED:
        raise LinuxError(EINVAL)
    if path == 0:
        if not flags & AT_EMPTY_PATH:
            raise LinuxError(EFAULT)
        p = b""
    else:
        p = k.mem.read_cstr(path)
    k.mem.write(buf, pack_statx(_stat_at(k, dirfd, p, flags)))
    return 0


def _statfs_host(fn, target) -> bytes:
    buf = ctypes.create_string_buffer(STATFS.size)
    libc_check(fn(target, buf))
    return buf.raw


@syscall("statfs", "str", "ptr")
def statfs(k, t, path, buf):
    tg = resolve(k, AT_FDCWD, path_arg(k, path))
    hp = tg.node.stand_in if tg.node is not None else tg.standalone()
    k.mem.write(buf, _statfs_host(libc.statfs, hp))
    return 0


@syscall("fstatfs", "fd", "ptr")
def fstatfs(k, t, fd, buf):
    host = k.fds.host(fdarg(fd))
    k.mem.write(buf, _statfs_host(libc.fstatfs, ctypes.c_int(host)))
    return 0



# ---- permissions, ownership, times, sizes ---------------------------------------------------------
@syscall("fchmod", "fd", "oct")
def fchmod(k, t, fd, mode):
    host = k.fds.host(fdarg(fd))
    check_fd_write(k, host)
    host_call(lambda: os.fchmod(host, mode & 0o7777))
    return 0


def _chmod(k, dirfd, path: bytes, mode: int) -> int:
    dfd, hp = modify_target(k, dirfd, path, follow=True)
    host_call(lambda: os.chmod(hp, mode & 0o7777, dir_fd=dfd))
    return 0


@syscall("fchmodat", "dirfd", "str", "oct")
def fchmodat(k, t, dirfd, path, mode):
    return _chmod(k, dirfd, path_arg(k, path), mode)


@syscall("chmod", "str", "oct")
def chmod(k, t, path, mode):
    return _chmod(k, AT_FDCWD, path_arg(k, path), mode)


@syscall("fchown", "fd", "int", "int")
def fchown(k, t, fd, uid, gid):
    host = k.fds.host(fdarg(fd))
    check_fd_write(k, host)
    host_call(lambda: os.fchown(host, idarg(uid), idarg(gid)))
    return 0


def _chown(k, dirfd, path: bytes, uid: int, gid: int, flags: int) -> int:
    flags &= 0xFFFFFFFF
    if flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH):
        raise LinuxError(EINVAL)
    if not path:
        if not flags & AT_EMPTY_PATH:
            raise LinuxError(ENOENT)
        d = i32(dirfd)
        if d == AT_FDCWD:
            host_call(lambda: os.chown(".", idarg(uid), idarg(gid)))
        else:
            host = k.fds.host(fdarg(d))
            check_fd_write(k, host)
            host_call(lambda: os.fchown(host, idarg(uid), idarg(gid)))
        return 0
    follow = not flags & AT_SYMLINK_NOFOLLOW
    dfd, hp = modify_target(k, dirfd, path, follow)
    host_call(lambda: os.chown(hp, idarg(uid), idarg(gid), dir_fd=dfd, follow_symlinks=follow))
    return 0


@syscall("fchownat", "dirfd", "str", "int", "int", "atflags")
def fchownat(k, t, dirfd, path, uid, gid, flags):
    return _chown(k, dirfd, k.mem.read_cstr(path), uid, gid, flags)


@syscall("chown", "str", "int", "int")
def chown(k, t, path, uid, gid):
    return _chown(k, AT_FDCWD, path_arg(k, path), uid, gid, 0)


@syscall("lchown", "str", "int", "int")
def lchown(k, t, path, uid, gid):
    return _chown(k, AT_FDCWD, path_arg(k, path), uid, gid, AT_SYMLINK_NOFOLLOW)


@syscall("ftruncate", "fd", "long")
def ftruncate(k, t, fd, length):
    host = k.fds.host(fdarg(fd))
    length = i64(length)
    if length < 0:
        raise LinuxError(EINVAL)
    host_call(lambda: os.ftruncate(host, length))
    return 0


@syscall("truncate", "str", "long")
def truncate(k, t, path, length):
    p = path_arg(k, path)
    length = i64(length)
    if length < 0:
        raise LinuxError(EINVAL)
    hp = modify_found(k, AT_FDCWD, p, follow=True).standalone()
    host_call(lambda: os.truncate(hp, length))
    return 0



@syscall("utimensat", "dirfd", "str", "ptr", "atflags")
def utimensat(k, t, dirfd, path, times, flags):
    flags &= 0xFFFFFFFF
    ts = None
    if times:
        ts = ctypes.create_string_buffer(k.mem.read(times, TIMESPEC2_SIZE), TIMESPEC2_SIZE)
    if path == 0:
        # futimens(dirfd, times): the fd itself
        d = i32(dirfd)
        if d == AT_FDCWD:
            raise LinuxError(EFAULT)
        if flags & ~AT_EMPTY_PATH:
            raise LinuxError(EINVAL)
        host = k.fds.host(fdarg(d))
        check_fd_write(k, host)
        libc_check(libc.futimens(ctypes.c_int(host), ts))
        return 0
    p = k.mem.read_cstr(path)
    d, hp = _libc_at(k, dirfd, p, not flags & AT_SYMLINK_NOFOLLOW, modify=True)
    libc_check(libc.utimensat(ctypes.c_int(d), hp, ts, ctypes.c_int(flags)))
    return 0


def _access(k, dirfd, path: bytes, mode: int, flags: int) -> int:
    flags &= 0xFFFFFFFF
    if mode & ~7 or flags & ~(AT_EACCESS | AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH):
        raise LinuxError(EINVAL)
    if not path and not flags & AT_EMPTY_PATH:
        raise LinuxError(ENOENT)
    d, hp = _libc_at(k, dirfd, path, not flags & AT_SYMLINK_NOFOLLOW)
    if mode & W_OK and getattr(k, "sandbox", None) is not None:
        _access_rofs(k, dirfd, path, flags)
    libc_check(libc.faccessat(ctypes.c_int(d), hp, ctypes.c_int(mode), ctypes.c_int(flags)))
    return 0


def _access_rofs(k, dirfd, path: bytes, flags: int) -> None:
    """W_OK on a read-only bind is EROFS (Linux's access() on a read-only mount)."""
    if not path:
        check_fd_write(k, k.fds.host(fdarg(dirfd)))
        return
    tg = resolve(k, dirfd, path, not flags & AT_SYMLINK_NOFOLLOW)
    if tg.mount is not None and tg.mount.ro:
        raise LinuxError(EROFS)


@syscall("access", "str", "accessmode")
def access(k, t, path, mode):
    return _access(k, AT_FDCWD, path_arg(k, path), mode, 0)


@syscall("faccessat", "dirfd", "str", "accessmode")
def faccessat(k, t, dirfd, path, mode):
    return _access(k, dirfd, path_arg(k, path), mode, 0)


@syscall("faccessat2", "dirfd", "str", "accessmode", "atflags")
def faccessat2(k, t, dirfd, path, mode, flags):
    return _access(k, dirfd, k.mem.read_cstr(path), mode, flags)

