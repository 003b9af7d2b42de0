"""Small pieces of native code and host memory that goemu hands to Unicorn.

Unicorn calls hook callbacks through plain C function pointers, so a callback need not be
Python: a few bytes of x86-64 machine code in an executable page run at native speed. goemu
uses two (the time-slice block hook, goemu/slicer.py, and the TLB fill hook, goemu/memory.py);
their assembly source sits beside their bytes.
"""
from __future__ import annotations

import ctypes
import mmap

from unicorn.unicorn_py3 import unicorn as _ucmod

PROT_READ, PROT_WRITE, PROT_EXEC = 1, 2, 4
MAP_PRIVATE, MAP_FIXED, MAP_ANONYMOUS, MAP_NORESERVE = 0x02, 0x10, 0x20, 0x4000
MADV_DONTNEED, MADV_FREE = 4, 8
MAP_FAILED = ctypes.c_void_p(-1).value

libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                      ctypes.c_long]
libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]


def host_alloc(size: int) -> int:
    """Reserve `size` bytes of zeroed host memory that costs RAM only where it is touched
    (MAP_NORESERVE: no commit charge). Returns its address; raises MemoryError."""
    addr = libc.mmap(None, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                     -1, 0)
    if addr is None or addr == MAP_FAILED:
        raise MemoryError(f"host mmap of {size} bytes failed (errno {ctypes.get_errno()})")
    return addr


MAP_SHARED = 0x01


def host_map_file(addr: int, size: int, fd: int, offset: int, shared: bool = False) -> None:
    """Map `size` bytes of file `fd` from `offset` at host `addr` (copy-on-write, or shared)."""
    got = libc.mmap(addr, size, PROT_READ | PROT_WRITE, (MAP_SHARED if shared else MAP_PRIVATE) | MAP_FIXED,
                    fd, offset)
    if got != addr:
        raise OSError(ctypes.get_errno(), "mmap of the executable failed")


def host_anon_fixed(addr: int, size: int) -> None:
    """Replace host pages at `addr` by fresh anonymous zero pages."""
    got = libc.mmap(addr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED | MAP_ANONYMOUS | MAP_NORESERVE,
                    -1, 0)
    if got != addr:
        raise MemoryError(f"host mmap of {size} bytes failed (errno {ctypes.get_errno()})")


def host_free(addr: int, size: int) -> None:
    libc.munmap(addr, size)


def host_zero(addr: int, size: int) -> None:
    """Give pages back to the host kernel; they read as zero afterwards (private anonymous)."""
    if libc.madvise(addr, size, MADV_DONTNEED) != 0:
        ctypes.memset(addr, 0, size)


def host_free_lazily(addr: int, size: int) -> None:
    """MADV_FREE: the host may take the pages back when it needs memory."""
    libc.madvise(addr, size, MADV_FREE)


def code_page(code: bytes) -> int:
    """Copy machine code into a fresh page, made read+execute (never writable and executable
    at once); return its address. The page lives as long as the process."""
    size = mmap.PAGESIZE
    addr = host_alloc(size)
    ctypes.memmove(addr, code, len(code))
    if libc.mprotect(addr, size, PROT_READ | PROT_EXEC) != 0:
        raise OSError(ctypes.get_errno(), "mprotect of a native hook page failed")
    return addr


_RDTSC = None


def rdtsc() -> int:
    """The host's time-stamp counter (what the guest's RDTSC returns: qemu's cpu_get_ticks)."""
    global _RDTSC
    if _RDTSC is None:
        # rdtsc ; shl rdx, 32 ; or rax, rdx ; ret
        _RDTSC = ctypes.CFUNCTYPE(ctypes.c_uint64)(code_page(bytes.fromhex("0f3148c1e2204809d0c3")))
    return _RDTSC()


def hook_add_native(uc, htype: int, code_addr: int, user_data: int, begin: int = 1, end: int = 0) -> int:
    """Register native code as a Unicorn hook callback; returns the hook handle."""
    handle = _ucmod.uc_hook_h()
    status = _ucmod.uclib.uc_hook_add(uc._uch, ctypes.byref(handle), htype, ctypes.c_void_p(code_addr),
                                      ctypes.c_void_p(user_data), ctypes.c_uint64(begin),
                                      ctypes.c_uint64(end))
    if status != 0:
        raise RuntimeError(f"uc_hook_add({htype:#x}) failed: {status}")
    return handle.value


def uc_address(uc) -> int:
    return ctypes.cast(uc._uch, ctypes.c_void_p).value


def uc_ctl_write(uc, ctl_type: int, *args) -> None:
    """uc_ctl(uc, UC_CTL_WRITE(type, len(args)), args...) without the binding's private helpers."""
    value = ctl_type | (len(args) << 26) | (1 << 30)
    status = _ucmod.uclib.uc_ctl(uc._uch, ctypes.c_int(value), *args)
    if status != 0:
        raise RuntimeError(f"uc_ctl({ctl_type}) failed: {status}")


# ---- offsets inside Unicorn's uc_struct, found by experiment -----------------------------
# A few fields goemu needs have no API (the instruction counter, the address of a refused TLB
# fill, the per-load/store exit-check switch). Each is found by an experiment on a scratch
# engine (the finders live beside their users); the result is fixed for a given libunicorn
# build, so it is remembered in memory and in a small cache file keyed by that library (the
# experiments cost ~10 ms of every start).
_OFFSETS: dict[str, int | None] = {}


def _cache_path() -> str:
    import os
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "goemu", "uc-offsets.txt")


def _library_key() -> str:
    import os
    path = getattr(_ucmod.uclib, "_name", "") or ""
    try:
        st = os.stat(path)
        return f"{os.path.realpath(path)}:{st.st_size}:{st.st_mtime_ns}"
    except OSError:
        return ""


def _read_cache(key: str) -> dict[str, int | None]:
    """The cache file: the library's key on the first line, then `name offset` (or `name -`)
    lines. Plain text: parsing it costs nothing at start-up (json's import cost 3 ms)."""
    try:
        with open(_cache_path()) as f:
            lines = f.read().splitlines()
    except OSError:
        return {}
    if not lines or lines[0] != key:
        return {}
    entry: dict[str, int | None] = {}
    for line in lines[1:]:
        parts = line.split()
        if len(parts) == 2:
            try:
                entry[parts[0]] = None if parts[1] == "-" else int(parts[1])
            except ValueError:
                pass
    return entry


def uc_struct_offset(name: str, finder) -> int | None:
    """The offset of uc_struct field `name`, from memory, the cache file, or `finder()`."""
    if name in _OFFSETS:
        return _OFFSETS[name]
    key = _library_key()
    entry = _read_cache(key) if key else {}
    if name in entry:
        _OFFSETS[name] = entry[name]
        return entry[name]
    value = finder()
    _OFFSETS[name] = value
    if key:
        try:
            import os
            os.makedirs(os.path.dirname(_cache_path()), exist_ok=True)
            entry[name] = value
            tmp = f"{_cache_path()}.{os.getpid()}"
            with open(tmp, "w") as f:
                f.write(key + "\n" + "".join(f"{n} {'-' if v is None else v}\n" for n, v in entry.items()))
            os.replace(tmp, _cache_path())
        except OSError:
            pass
    return value
