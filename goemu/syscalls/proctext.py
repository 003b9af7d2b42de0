"""The text of the guest's generated /proc files (``procfs`` nodes): status, stat, statm,
maps, comm, limits, cmdline, environ, auxv and fdinfo/N, from the guest's own tables (threads,
signal dispositions and masks, the VMA table, the fd table, the limits getrlimit reports). Formats follow Linux's fs/proc/array.c,
task_mmu.c and fd.c; the status field list (names, order) is the host kernel's, and the fields
goemu does not model (capabilities, seccomp, speculation, memory nodes) carry the host's values.
"""
from __future__ import annotations

import os

from .. import signals as sig
from ..errno import ENOENT, LinuxError
from ..fdtable import Fd
from ..memory import PROT_EXEC, PROT_READ, PROT_WRITE
from .fsbase import O_CLOEXEC
from .procfs import Node, guest_threads

PAGE_KB = 4


def content(k, node: Node) -> bytes:
    name = node.name
    t = k.threads.get(node.tid)
    if name == b"status":
        return _status(k, t, node.tid)
    if name == b"stat":
        return _stat(k, t, node.tid, node.thread)
    if name == b"statm":
        m = _mem_figures(k)
        return b"%d %d %d %d 0 %d 0\n" % (m["size"] // PAGE_KB, m["rss"] // PAGE_KB,
                                          m["file"] // PAGE_KB, m["exe"] // PAGE_KB,
                                          (m["data"] + m["stk"]) // PAGE_KB)
    if name == b"cmdline":
        return b"".join(a + b"\0" for a in k.argv)
    if name == b"environ":
        return b"".join(e + b"\0" for e in k.envp)
    if name == b"auxv":
        return k.auxv
    if name == b"maps":
        return maps(k)
    if name == b"comm":
        return comm(k, t) + b"\n"
    if name == b"limits":
        return _limits(k)
    if name.startswith(b"fdinfo/"):
        return _fdinfo(k, k.fds.fds[int(name[7:])])
    raise LinuxError(ENOENT)


def comm(k, t) -> bytes:
    name = getattr(t, "comm", None) if t is not None else None
    if name is None:
        name = os.fsencode(exe_names(k)[0])
    return name[:15]


def exe_names(k) -> tuple[str, str]:
    """(the name of the executable's VMAs, the path /proc/self/maps shows for them): under a
    sandbox its guest path, or only its name when it lies outside."""
    img = getattr(k, "image", None)
    base = os.path.basename(img.path if img is not None else k.exe_path)
    sandbox = getattr(k, "sandbox", None)
    if sandbox is None:
        return base, k.exe_path
    return base, os.fsdecode(sandbox.exe) if sandbox.exe is not None else base


def _exe_segments(k) -> list[tuple[int, int, int]]:
    """(start, end, file offset) of the page ranges mapped from the executable (bss excluded)."""
    img = getattr(k, "image", None)
    out = []
    for seg in (img.segments if img is not None else ()):
        start = seg.vaddr & ~0xFFF
        end = (seg.vaddr + seg.filesz + 0xFFF) & ~0xFFF
        if seg.filesz:
            out.append((start, end, seg.offset & ~0xFFF))
    return out


def _maps_rows(k):
    """(start, end, prot, offset, dev, inode, name) per mapping, as /proc/self/maps has them."""
    exe_base, exe_shown = exe_names(k)
    try:
        s = os.stat(k.exe_path)
        dev, ino = s.st_dev, s.st_ino
    except OSError:
        dev = ino = 0
    segs = _exe_segments(k)
    rows = []
    for v in k.mem.vmas:
        if v.name != exe_base:
            name = "" if v.name in ("[anon]", "[file]") else v.name
            rows.append((v.start, v.end, v.prot, 0, 0, 0, name))
            continue
        pos = v.start
        for start, end, off in segs:           # the file-backed part, then the bss (anonymous)
            lo, hi = max(start, v.start), min(end, v.end)
            if lo < hi and lo == pos:
                rows.append((lo, hi, v.prot, off + lo - start, dev, ino, exe_shown))
                pos = hi
        if pos < v.end:
            rows.append((pos, v.end, v.prot, 0, 0, 0, ""))
    # Linux merges adjacent anonymous mappings with the same protection into one VMA
    merged: list = []
    for row in rows:
        last = merged[-1] if merged else None
        if last is not None and last[1] == row[0] and last[2] == row[2] and \
                not last[5] and not row[5] and last[6] == row[6] == "":
            merged[-1] = (last[0], row[1]) + last[2:]
        else:
            merged.append(row)
    return merged


def maps(k) -> bytes:
    lines = []
    rows = _maps_rows(k) + [(0xFFFFFFFFFF600000, 0xFFFFFFFFFF601000, PROT_EXEC, 0, 0, 0, "[vsyscall]")]
    for start, end, prot, off, dev, ino, name in rows:
        perms = ("r" if prot & PROT_READ else "-") + ("w" if prot & PROT_WRITE else "-") + \
                ("x" if prot & PROT_EXEC else "-") + "p"
        line = f"{start:08x}-{end:08x} {perms} {off:08x} {os.major(dev):02x}:{os.minor(dev):02x} {ino} "
        if name:
            line = line.ljust(72) + " " + name     # seq_pad: the name starts in column 74
        lines.append(line + "\n")
    return "".join(lines).encode()


def _mem_figures(k) -> dict[str, int]:
    """kB figures of task_mem (fs/proc/task_mmu.c) from the VMA table. Resident means
    accessible here (goemu does not track which pages were touched)."""
    exe_base = exe_names(k)[0]
    f = dict(size=0, rss=0, file=0, data=0, stk=0, exe=0, lib=0)
    for v in k.mem.vmas:
        kb = (v.end - v.start) >> 10
        f["size"] += kb
        if v.prot:
            f["rss"] += kb
        if v.name == "[stack]":
            f["stk"] += kb
        elif v.prot & PROT_WRITE:
            f["data"] += kb
        elif v.prot & PROT_EXEC:
            f["exe" if v.name == exe_base else "lib"] += kb
        if v.name == exe_base and v.prot and not v.prot & PROT_WRITE:
            f["file"] += kb
    peak = getattr(k, "proc_vm_peak", (0, 0))
    k.proc_vm_peak = (max(peak[0], f["size"]), max(peak[1], f["rss"]))
    f["peak"], f["hwm"] = k.proc_vm_peak
    return f


def _sigsets(k, t) -> tuple[int, int, int, int]:
    """(pending, blocked, ignored, caught) of thread t, as masks."""
    actions = k.main_proc.signals.actions
    ign = cgt = 0
    for s in range(1, sig.NSIG + 1):
        h = actions[s].handler
        if h == sig.SIG_IGN:
            ign |= sig.bit(s)
        elif h != sig.SIG_DFL:
            cgt |= sig.bit(s)
    pend = sum(sig.bit(s) for s in (t.pending if t is not None else ()))
    return pend, (t.sigmask if t is not None else 0), ign, cgt


def _state(k, t) -> tuple[str, str]:
    if t is None or t.state == "dead":
        return "Z", "zombie"
    if t is getattr(k, "current", None) or t.state == "runnable":
        return "R", "running"
    return "S", "sleeping"


def _ppid(k) -> int:
    return 1 if k.deterministic else os.getppid()


def _host_status() -> list[tuple[str, str]]:
    """The host kernel's status fields (names, order) with goemu's own values."""
    try:
        with open("/proc/self/status", "rb") as f:
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return []
    return [tuple(line.split(":\t", 1)) if ":\t" in line else (line.rstrip(":"), "")
            for line in text.splitlines()]


def _cpus(n: int) -> tuple[str, str]:
    """Cpus_allowed (%*pb: 32-bit hex words, comma-separated) and Cpus_allowed_list."""
    mask, words = (1 << n) - 1, []
    for i in range(max(1, (n + 31) // 32)):
        words.append((mask >> (32 * i)) & 0xFFFFFFFF)
    words.reverse()
    first = f"{words[0]:0{max(1, ((n - 1) % 32) // 4 + 1)}x}"
    return ",".join([first] + [f"{w:08x}" for w in words[1:]]), ("0" if n == 1 else f"0-{n - 1}")


def _status(k, t, tid: int) -> bytes:
    from .proc import get_rlimit
    m = _mem_figures(k)
    pend, blk, ign, cgt = _sigsets(k, t)
    state, word = _state(k, t)
    uid, gid = os.getresuid(), os.getresgid()
    umask = os.umask(0)
    os.umask(umask)
    top = max(k.fds.fds, default=0)
    fdsize = 64 if top < 64 else 128 * (1 << ((top // 128).bit_length()))
    cpus, cpu_list = _cpus(k.ncpus)
    threads = guest_threads(k)
    queued = sum(len(x.pending) for x in threads.values())
    kb = lambda v: f"{v:8d} kB"    # noqa: E731
    ours = {
        "Name": comm(k, t).decode("utf-8", "replace"), "Umask": f"{umask:04o}",
        "State": f"{state} ({word})", "Tgid": str(k.pid), "Ngid": "0", "Pid": str(tid),
        "PPid": str(_ppid(k)), "TracerPid": "0",
        "Uid": "\t".join(str(u) for u in (*uid, uid[1])), "Gid": "\t".join(str(g) for g in (*gid, gid[1])),
        "FDSize": str(fdsize), "Groups": "".join(f"{g} " for g in os.getgroups()) or " ",
        "NStgid": str(k.pid), "NSpid": str(tid), "NSpgid": str(k.pid), "NSsid": str(k.pid),
        "Kthread": "0",
        "VmPeak": kb(m["peak"]), "VmSize": kb(m["size"]), "VmLck": kb(0), "VmPin": kb(0),
        "VmHWM": kb(m["hwm"]), "VmRSS": kb(m["rss"]), "RssAnon": kb(m["rss"] - m["file"]),
        "RssFile": kb(m["file"]), "RssShmem": kb(0), "VmData": kb(m["data"]),
        "VmStk": kb(m["stk"]), "VmExe": kb(m["exe"]), "VmLib": kb(m["lib"]),
        "VmPTE": kb(4 * len({v.start >> 21 for v in k.mem.vmas if v.prot})), "VmSwap": kb(0),
        "HugetlbPages": kb(0), "CoreDumping": "0", "Threads": str(len(threads)),
        "SigQ": f"{queued}/{get_rlimit(k, 11)[0]}",
        "SigPnd": f"{pend:016x}", "ShdPnd": f"{0:016x}", "SigBlk": f"{blk:016x}",
        "SigIgn": f"{ign:016x}", "SigCgt": f"{cgt:016x}",
        "NoNewPrivs": str(getattr(k, "no_new_privs", 0)),
        "Cpus_allowed": cpus, "Cpus_allowed_list": cpu_list,
        "voluntary_ctxt_switches": "0", "nonvoluntary_ctxt_switches": "0",
    }
    rows = _host_status() or [(name, "") for name in ours]
    # fields goemu does not model (capabilities, seccomp, speculation, memory nodes, ...) are
    # the host's: the guest runs with goemu's credentials on this machine
    return "".join(f"{name}:\t{ours.get(name, host)}\n" for name, host in rows).encode()


def _stack_info(k) -> tuple[int, int, int, int, int]:
    """(start_stack, arg_start, arg_end, env_start, env_end) from the initial stack."""
    info = getattr(k, "proc_stack_info", None)
    if info is not None:
        return info
    info = (0, 0, 0, 0, 0)
    stack = next((v for v in k.mem.vmas if v.name == "[stack]"), None)
    if stack is not None and k.auxv:
        span = min(stack.end - stack.start, 1 << 20)
        try:
            data = k.mem.read(stack.end - span, span)
            at = data.rfind(k.auxv)
            if at >= 0:
                argc, envc = len(k.argv), len(k.envp)
                rsp = stack.end - span + at - 8 * (argc + envc + 3)
                ptrs = [k.mem.read_u64(rsp + 8 * (1 + i)) for i in range(argc)]
                envs = [k.mem.read_u64(rsp + 8 * (2 + argc + i)) for i in range(envc)]
                arg_end = ptrs[-1] + len(k.argv[-1]) + 1 if ptrs else 0
                env_end = envs[-1] + len(k.envp[-1]) + 1 if envs else arg_end
                info = (rsp, ptrs[0] if ptrs else 0, arg_end, envs[0] if envs else arg_end, env_end)
        except LinuxError:
            pass
    k.proc_stack_info = info
    return info


def _stat(k, t, tid: int, thread: bool) -> bytes:
    from .proc import get_rlimit
    m = _mem_figures(k)
    pend, blk, ign, cgt = _sigsets(k, t)
    state, _ = _state(k, t)
    segs = sorted(_exe_segments(k))
    img = getattr(k, "image", None)
    code = [s for s in (img.segments if img else ()) if s.flags & 1]
    data = [s for s in (img.segments if img else ()) if s.flags & 2]
    start_code = code[0].vaddr & ~0xFFF if code else (segs[0][0] if segs else 0)
    end_code = code[0].vaddr + code[0].filesz if code else 0
    start_data = data[0].vaddr if data else 0
    end_data = data[0].vaddr + data[0].filesz if data else 0
    start_stack, arg_start, arg_end, env_start, env_end = _stack_info(k)
    if k.deterministic:
        utime = stime = start = 0
    else:
        tm = os.times()
        main = tid == k.pid or not thread
        utime, stime = (int(tm.user * 100), int(tm.system * 100)) if main else (0, 0)
        try:
            with open("/proc/self/stat", "rb") as f:
                start = int(f.read().rsplit(b")", 1)[1].split()[19])
        except (OSError, ValueError, IndexError):
            start = 0
    nice = getattr(k, "nice", 0)
    flags = 0x400000 | (0 if tid == k.pid else 0x40)        # PF_RANDOMIZE, PF_FORKNOEXEC
    fields = [
        tid, f"({comm(k, t).decode('utf-8', 'replace')})", state, _ppid(k), k.pid, k.pid, 0, -1,
        flags, 0, 0, 0, 0, utime, stime, 0, 0, 20 + nice, nice, len(guest_threads(k)), 0, start,
        m["size"] << 10, m["rss"] // PAGE_KB, get_rlimit(k, 5)[0], start_code, end_code,
        start_stack, 0, 0, pend & 0x7FFFFFFF, blk & 0x7FFFFFFF, ign & 0x7FFFFFFF,
        cgt & 0x7FFFFFFF, 0 if state == "R" else 1, 0, 0, 17 if tid == k.pid else -1, 0, 0, 0,
        0, 0, 0, start_data, end_data, getattr(k.mem, "brk_start", 0), arg_start, arg_end,
        env_start, env_end, 0]
    return (" ".join(str(f) for f in fields) + "\n").encode()


def _fdinfo(k, entry: Fd) -> bytes:
    """pos, flags (FD_CLOEXEC is the guest's), mnt_id, ino, then the host's kind-specific lines
    with host fd numbers turned into the guest's."""
    try:
        with open(b"/proc/self/fdinfo/%d" % entry.host, "rb") as f:
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        raise LinuxError(ENOENT) from None
    to_guest = {e.host: n for n, e in k.fds.fds.items()}
    out = []
    for line in lines:
        key, _, value = line.partition(":")
        if key == "flags" and value.strip().isdigit():
            flags = int(value.strip(), 8) & ~O_CLOEXEC | (O_CLOEXEC if entry.cloexec else 0)
            line = f"flags:\t0{flags:o}"
        elif key == "tfd":
            num, _, tail = value.strip().partition(" ")
            if num.isdigit() and int(num) in to_guest:
                line = f"tfd: {to_guest[int(num)]:8d} {tail.lstrip()}"
        out.append(line + "\n")
    return "".join(out).encode()



_LIMITS = (("Max cpu time", "seconds"), ("Max file size", "bytes"), ("Max data size", "bytes"),
           ("Max stack size", "bytes"), ("Max core file size", "bytes"),
           ("Max resident set", "bytes"), ("Max processes", "processes"),
           ("Max open files", "files"), ("Max locked memory", "bytes"),
           ("Max address space", "bytes"), ("Max file locks", "locks"),
           ("Max pending signals", "signals"), ("Max msgqueue size", "bytes"),
           ("Max nice priority", ""), ("Max realtime priority", ""),
           ("Max realtime timeout", "us"))


def _limits(k) -> bytes:
    """proc_pid_limits (fs/proc/base.c): the limits the guest's getrlimit reports."""
    from .proc import RLIM_INFINITY, get_rlimit

    def value(v: int) -> str:
        return "unlimited" if v == RLIM_INFINITY else str(v)
    out = [f"{'Limit':<25} {'Soft Limit':<20} {'Hard Limit':<20} {'Units':<10}\n"]
    for res, (name, unit) in enumerate(_LIMITS):
        soft, hard = get_rlimit(k, res)
        line = f"{name:<25} {value(soft):<20} {value(hard):<20} "
        out.append(line + (f"{unit:<10}\n" if unit else "\n"))
    return "".join(out).encode()
