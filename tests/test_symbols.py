"""The symbol layer (goemu/symbols.py) and runtime struct layouts (goemu/gotypes.py).

Fixtures: both esbuild binaries (go1.14.2, pclntab layout 1.2, .zdebug DWARF) and our
go1.19.8 programs (pclntab layout 1.18, SHF_COMPRESSED DWARF). Stripped copies are made with
objcopy in a temporary directory; a copy without section headers is made by hand.
"""
from __future__ import annotations

import shutil
import struct
import subprocess

import capstone
import pytest

from conftest import GO119, esbuild, go119
from goemu.gotypes import (FIELDS, TABLES, Layouts, _Dwarf, pstatus_name, read_struct,
                           status_name, table_for, waitreason_name)
from goemu.symbols import STOP_FUNCS, PclnTab, Symbols, SymbolsError

ESBUILD = ["0.5.26", "0.4.14"]
BINARIES = [f"esbuild-{v}" for v in ESBUILD] + ["hello"]
NAMES = ["runtime.schedule", "runtime.newstack", "runtime.main"]


def binary(name: str):
    return esbuild(name.split("-", 1)[1]) if name.startswith("esbuild-") else go119(name)


def go119_version() -> str:
    f = GO119 / "VERSION"
    if not f.exists():
        pytest.fail(f"fixture {f} is missing: run `make fixtures`")
    return f.read_text().strip()


_cache: dict = {}


def syms(name: str) -> Symbols:
    if name not in _cache:
        _cache[name] = Symbols(binary(name))
    return _cache[name]


def stripped(name: str, tmp_path_factory) -> Symbols:
    key = ("stripped", name)
    if key not in _cache:
        objcopy = shutil.which("objcopy")
        if objcopy is None:
            pytest.fail("objcopy (binutils) is needed to make a stripped copy of the fixtures")
        out = tmp_path_factory.mktemp("stripped") / name
        subprocess.run([objcopy, "--strip-all", str(binary(name)), str(out)], check=True)
        _cache[key] = Symbols(out)
    return _cache[key]


def without_section_headers(name: str) -> bytes:
    """The stripped-to-the-bone case: e_shoff/e_shnum/e_shstrndx zeroed (no sections at all)."""
    d = bytearray(binary(name).read_bytes())
    struct.pack_into("<Q", d, 0x28, 0)
    struct.pack_into("<HHH", d, 0x3A, 0, 0, 0)
    return bytes(d)


# --- function lookup -----------------------------------------------------------------------


@pytest.mark.parametrize("name", BINARIES)
def test_symtab_and_pclntab_agree(name):
    s = syms(name)
    assert s.has_symtab and s.has_pclntab and s.has_dwarf
    assert s.missing() == []
    t = s.pclntab
    for fn in NAMES:
        addr = s.address_of(fn)
        assert addr is not None, fn
        i = t.func_index(addr)
        assert t.name(i) == fn and t.entries[i] == addr
        assert t.func_entry(i) == addr  # _func's own entry field agrees with the functab
        for pc in (addr, addr + 1, addr + s.size_of(fn) - 1):
            assert s.lookup(pc) == (fn, addr)          # .symtab
            assert t.lookup(pc) == (fn, addr)          # pclntab
        assert t.entries[i + 1] >= addr + s.size_of(fn)
    # Every .symtab function starts where a pclntab function starts.
    funcs = s.functions()
    assert all(t.lookup(f.entry)[1] == f.entry for f in funcs)


@pytest.mark.parametrize("name", BINARIES)
def test_function_table(name):
    t = syms(name).pclntab
    assert t.nfunc > 1000
    if name.startswith("esbuild"):
        assert t.version == "1.2" and t.nfunc > 5000
    else:
        assert t.version == "1.18"
    funcs = t.funcs()
    assert len(funcs) == t.nfunc
    assert all(f.entry < f.end for f in funcs)
    assert all(a.end == b.entry for a, b in zip(funcs, funcs[1:]))
    assert len({f.name for f in funcs}) > 0.95 * len(funcs)  # type..eq.[...]T repeats


@pytest.mark.parametrize("name", BINARIES)
def test_file_line(name):
    s = syms(name)
    file, line = s.file_line(s.address_of("runtime.main"))
    assert file.endswith("proc.go") and line > 0
    file, line = s.file_line(s.address_of("runtime.newstack"))
    assert file.endswith("runtime/stack.go") and line > 0
    file, _ = s.file_line(s.address_of("runtime.goexit"))
    assert file.endswith("asm_amd64.s")


def test_glob_and_address_of():
    s = syms("esbuild-0.5.26")
    names = dict(s.glob("runtime.sched*"))
    assert names["runtime.schedule"] == s.address_of("runtime.schedule")
    assert "runtime.allgs" not in dict(s.glob("runtime.all*"))
    assert "runtime.allgs" in dict(s.glob("runtime.all*", data=True))
    assert s.glob("no.such.*") == []
    assert s.address_of("no.such.function") is None
    # go1.19's .symtab calls assembly functions "runtime.goexit.abi0"; both spellings work and
    # names come back as Go prints them.
    h = syms("hello")
    assert h.address_of("runtime.goexit") == h.address_of("runtime.goexit.abi0") is not None
    assert h.lookup(h.address_of("runtime.goexit"))[0] == "runtime.goexit"


# --- SP deltas and unwinding ---------------------------------------------------------------


@pytest.mark.parametrize("name", BINARIES)
def test_spdelta_newstack(name):
    s = syms(name)
    entry = s.address_of("runtime.newstack")
    assert s.spdelta(entry) == 0
    md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    insns = list(md.disasm(s.read(entry, 64), entry))
    sub = next(i for i in insns if i.mnemonic == "sub" and i.op_str.startswith("rsp, "))
    frame = int(sub.op_str.split(", ")[1], 0)
    # Up to and including the SUB the frame is not allocated yet; after it, it is.
    assert all(s.spdelta(pc) == 0 for pc in range(entry, sub.address + 1))
    after = sub.address + sub.size
    assert s.spdelta(after) == frame > 0
    assert s.spdelta(after + 8) == frame


def _call_in(s: Symbols, fn: str):
    """The first direct CALL in fn: (address of the call, its return address, target)."""
    entry = s.address_of(fn)
    md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    for i in md.disasm(s.read(entry, s.size_of(fn)), entry):
        if i.mnemonic == "call" and i.op_str.startswith("0x"):
            target = int(i.op_str, 16)
            name = s.lookup(target)[0]
            if name not in STOP_FUNCS and not name.startswith("runtime.morestack") \
                    and s.spdelta(i.address + i.size):
                return i.address, i.address + i.size, target
    raise AssertionError(f"no call in {fn}")


@pytest.mark.parametrize("name", BINARIES)
def test_unwind_synthetic_goroutine_stack(name):
    """A goroutine stack built by hand: callee (at its entry) <- runtime.main <- goexit."""
    s = syms(name)
    call, ret, target = _call_in(s, "runtime.main")
    goexit = s.address_of("runtime.goexit")
    sp0 = 0xC000_0100_00
    mem = {sp0: ret}                        # CALL pushed the return address into main
    main_sp = sp0 + 8
    main_delta = s.spdelta(ret)
    mem[main_sp + main_delta] = goexit + 1  # newproc1 makes main "return" into goexit
    frames = s.unwind(mem.__getitem__, target, sp0, inline=False)
    assert [f.func for f in frames] == [s.lookup(target)[0], "runtime.main", "runtime.goexit"]
    assert frames[0].pc == target and frames[1].pc == ret and frames[2].pc == goexit + 1
    # A caller's line is the line of its CALL instruction (looked up at pc-1).
    assert (frames[1].file, frames[1].line) == s.file_line(call)
    assert frames[2].file.endswith("asm_amd64.s")
    # The FrameInfo view carries each frame's SP.
    info = s.frames(mem.__getitem__, target, sp0, inline=False)
    assert [f.sp for f in info] == [sp0, main_sp, main_sp + main_delta + 8]
    # With inlined calls expanded, the physical frames stay the same and runtime.main's own
    # line is in proc.go (the CALL may sit in an inlined callee, e.g. nanotime in go1.19).
    full = s.frames(mem.__getitem__, target, sp0)
    assert [f.func for f in full if not f.inlined] == [f.func for f in frames]
    main_frame = next(f for f in full if f.func == "runtime.main")
    assert main_frame.file.endswith("proc.go") and not main_frame.inlined
    assert all(f.pc == ret for f in full if f.inlined)
    # A zero return address ends the walk; so does an unreadable stack; max_frames limits it.
    mem[main_sp + main_delta] = 0
    assert [f.func for f in s.unwind(mem.__getitem__, target, sp0, inline=False)] == \
        [s.lookup(target)[0], "runtime.main"]
    assert len(s.unwind({}.__getitem__, target, sp0)) == 1
    assert len(s.unwind(mem.__getitem__, target, sp0, max_frames=1)) == 1


def test_unwind_stops_at_mstart_and_rt0_go():
    s = syms("hello")
    for fn in ("runtime.mstart", "runtime.rt0_go", "runtime.systemstack", "runtime.mcall"):
        frames = s.unwind(lambda a: 0x401000, s.address_of(fn), 0x1000)
        assert [f.func for f in frames] == [fn]
    assert s.unwind(lambda a: 0, 0, 0) == []


def _inlined_pcs(s: Symbols, limit: int = 300) -> list[int]:
    """PCs of runtime.main and the scheduler where some call was inlined."""
    out = []
    for fn in ("runtime.main", "runtime.schedule", "runtime.newstack"):
        entry = s.address_of(fn)
        for pc in range(entry, entry + s.size_of(fn)):
            if s.inlined_calls(pc)[0]:
                out.append(pc)
    assert len(out) > 20
    return out[:limit]


@pytest.mark.parametrize("name", BINARIES)
def test_inlined_calls(name, tmp_path_factory):
    s = syms(name)
    assert s.inline_supported
    if name == "hello":  # go1.18+ FUNCDATA are offsets from moduledata.gofunc
        assert s._gofunc() == s.address_of("go.func.*") == s._gofunc_from_moduledata()
    pcs = _inlined_pcs(s)
    for pc in pcs:
        calls, outer = s.inlined_calls(pc)
        entry = s.lookup(pc)[1]
        assert calls[0][1] == pc and entry <= outer < pc + 1 + 4096
        assert all(n for n, _ in calls)
        # The outermost call site lies in the physical function's own source file
        # (runtime/proc.go or runtime/stack.go here).
        assert s.file_line(outer)[0] == s.file_line(entry)[0], (hex(pc), calls)
    # A stripped binary gives the same answers (go1.19: gofunc found through moduledata).
    st = stripped(name, tmp_path_factory)
    assert st.address_of("go.func.*") is None
    assert [st.inlined_calls(pc) for pc in pcs] == [s.inlined_calls(pc) for pc in pcs]
    # The inline tree can be switched off; then only physical frames are reported.
    assert s.unwind(lambda a: 0, pcs[0], 0x1000, inline=False)[0].func == s.lookup(pcs[0])[0]
    assert s.unwind(lambda a: 0, pcs[0], 0x1000)[0].func == s.inlined_calls(pcs[0])[0][0][0]


# --- stripped binaries ---------------------------------------------------------------------


@pytest.mark.parametrize("name", BINARIES)
def test_stripped_binary(name, tmp_path_factory):
    full, s = syms(name), stripped(name, tmp_path_factory)
    assert not s.has_symtab and not s.has_dwarf and s.has_pclntab
    for fn in NAMES:
        addr = full.address_of(fn)
        assert s.address_of(fn) == addr
        assert s.lookup(addr + 3) == (fn, addr)
        assert s.file_line(addr) == full.file_line(addr)
    assert s.address_of("runtime.allgs") is None
    assert s.go_version == full.go_version and s.go_version_source == ".go.buildinfo"
    major = "go1.14" if name.startswith("esbuild") else "go1.19"
    missing = s.missing()
    assert any(m.startswith("no .symtab: function names come from pclntab") for m in missing)
    assert f"no DWARF: runtime struct layouts from the built-in table for {major}" in missing
    lay = Layouts(s)
    assert lay.source == "table"
    assert lay.as_table() == Layouts(full).as_table()
    assert lay.globals == {}
    assert any("runtime.allgs" in n for n in lay.notes)


@pytest.mark.parametrize("name", ["esbuild-0.5.26", "hello"])
def test_no_section_headers(name):
    full = syms(name)
    s = Symbols(without_section_headers(name))
    assert not s.has_sections and s.has_pclntab and not s.has_symtab and not s.has_dwarf
    assert s.pclntab_found_by.startswith("magic scan")
    assert s.pclntab_addr == full.sections[".gopclntab"].addr
    for fn in NAMES:
        addr = full.address_of(fn)
        assert s.lookup(addr) == (fn, addr)
    assert s.go_version == full.go_version
    assert any(m.startswith("no ELF section headers") for m in s.missing())


def test_not_elf():
    with pytest.raises(SymbolsError):
        Symbols(b"#!/bin/sh\necho hi\n" + bytes(64))


# --- pclntab layouts we have no binary for --------------------------------------------------


def _as_go116(t: PclnTab) -> bytes:
    """Rewrite a Go 1.18 pclntab in the Go 1.16 layout: no textStart word in the header,
    uintptr functab entries with absolute PCs, _func.entry a uintptr."""
    assert t.version == "1.18"
    d = t.data
    ps = 8
    words = struct.unpack_from("<8Q", d, 8)  # nfunc nfiles text funcname cu filetab pctab pcln
    nfunc, nfiles, _text, *offs = words
    shift = -8  # the header loses one word
    blob = bytearray(d[:8]) + struct.pack("<7Q", nfunc, nfiles, *[o + shift for o in offs])
    blob[0:4] = struct.pack("<I", 0xFFFFFFFA)
    blob += d[72:offs[4]]  # funcnametab, cutab, filetab, pctab unchanged
    functab_size = (2 * nfunc + 1) * ps
    funcs = bytearray()
    table = []
    for i in range(nfunc):
        table += [t.entries[i], functab_size + len(funcs)]
        fields = d[t._funcdata + t._funcoffs[i] + 4:t._funcdata + t._funcoffs[i] + 4 + 8 * 4]
        funcs += struct.pack("<Q", t.entries[i]) + fields
    table.append(t.entries[-1])
    return bytes(blob + struct.pack("<%dQ" % len(table), *table) + funcs)


def test_pclntab_go116_and_go120_layouts():
    t18 = syms("hello").pclntab
    t16 = PclnTab(_as_go116(t18))
    d20 = bytearray(t18.data)
    d20[0:4] = struct.pack("<I", 0xFFFFFFF1)  # 1.20 reads like 1.18 for everything we use
    t20 = PclnTab(bytes(d20))
    assert (t16.version, t20.version) == ("1.16", "1.20")
    for t in (t16, t20):
        assert t.entries == t18.entries
        for i in range(0, t18.nfunc, 7):
            assert t.name(i) == t18.name(i)
            e = t18.entries[i]
            for pc in (e, e + 5, t18.entries[i + 1] - 1):
                assert t.file_line(pc) == t18.file_line(pc)
                assert t.spdelta(pc) == t18.spdelta(pc)


# --- Go version ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", BINARIES)
def test_build_version(name):
    s = syms(name)
    want = "go1.14.2" if name.startswith("esbuild") else go119_version()
    assert want == ("go1.14.2" if name.startswith("esbuild") else "go1.19.8")
    assert s.go_version == want
    assert s.go_version_source == "runtime.buildVersion"
    # The fallbacks find the same string.
    assert s._version_from_buildinfo() == want
    assert s._version_from_strings() == want


# --- runtime struct layouts ----------------------------------------------------------------


@pytest.mark.parametrize("version", ESBUILD)
def test_go114_dwarf_equals_builtin_table(version):
    s = syms(f"esbuild-{version}")
    lay = Layouts(s)
    assert lay.source == "dwarf"
    assert lay.absent == {k: [] for k in FIELDS}
    assert lay.as_table() == TABLES["go1.14"]
    tab = Layouts(s, prefer="table")
    assert tab.source == "table" and tab.as_table() == TABLES["go1.14"]
    assert table_for("go1.14.2") is TABLES["go1.14"]
    # Spot checks that tie the table to the Go source and to the machine code.
    assert lay["g"]["goid"] == 152 and lay["g"]["m"] == 48 and lay["g"]["sched.pc"] == 64
    assert lay.struct_sizes == {"g": 376, "m": 840, "p": 10216, "schedt": 336}
    assert lay.struct_sizes["schedt"] == s.size_of("runtime.sched")


def test_go119_layouts_from_dwarf():
    s = syms("hello")
    lay = Layouts(s)
    assert lay.source == "dwarf" and lay.go_version == go119_version()
    assert lay.absent == {k: [] for k in FIELDS}
    for key, fields in {"g": ["goid", "atomicstatus", "waitreason", "m", "sched.pc", "sched.sp",
                              "startpc", "gopc", "stack.lo", "stack.hi", "stackguard0"],
                        "m": ["id", "procid", "curg", "p", "g0", "spinning", "locks"],
                        "p": ["id", "status", "runqhead", "runqtail", "runnext", "m",
                              "schedtick"],
                        "schedt": ["runqsize", "npidle", "nmspinning", "nmidle", "nmsys",
                                   "mnext", "nmfreed", "midle", "pidle"]}.items():
        for f in fields:
            assert f in lay.offsets[key], f"{key}.{f}"
    assert lay["g"]["goid"] == 152 and lay.sizes["g"]["atomicstatus"] == 4
    assert lay.as_table() == TABLES["go1.19"]
    assert lay.struct_sizes["schedt"] == s.size_of("runtime.sched")
    for g, sym in (("runtime.allgs", 24), ("runtime.allp", 24), ("runtime.allm", 8),
                   ("runtime.gomaxprocs", 4), ("runtime.ncpu", 4)):
        assert lay.globals[g] == s.address_of(g) and s.size_of(g) == sym


def test_dwarf_fast_lookup_matches_full_walk():
    dw = _Dwarf(syms("hello"))
    for name in ("runtime.g", "runtime.m", "runtime.p", "runtime.schedt"):
        fast = dw._find_fast(name)
        assert fast is not None and fast.offset == dw._find_slow(name).offset


def test_layouts_without_anything():
    s = Symbols(without_section_headers("hello"))
    s._go_version_done, s._go_version = True, "go1.99.1"
    lay = Layouts(s)
    assert lay.source == "none" and lay.offsets == {}
    assert "no built-in table for go1.99.1" in lay.notes[0]
    assert any("no built-in table for go1.99.1" in m for m in s.missing())


def test_names_and_read_struct():
    assert status_name(2) == "_Grunning" and status_name(9) == "_Gpreempted"
    assert status_name(0x1004) == "_Gscanwaiting"
    assert pstatus_name(1) == "_Prunning"
    assert waitreason_name(14) == "chan receive"
    assert waitreason_name(25, "go1.14.2") == "preempted"
    assert waitreason_name(26, "go1.14.2") == "unknown wait reason"
    assert waitreason_name(26, "go1.19.8") == "debug call"
    lay = Layouts(syms("esbuild-0.5.26"))
    g = bytearray(376)
    struct.pack_into("<I", g, 144, 4)
    struct.pack_into("<q", g, 152, 7)
    g[176] = 19
    base = 0xC000000180
    v = read_struct(lay, "g", lambda a, n: bytes(g[a - base:a - base + n]), base,
                    ["atomicstatus", "goid", "waitreason", "runq"])
    assert v == {"atomicstatus": 4, "goid": 7, "waitreason": 19}
    assert lay.waitreason_name(v["waitreason"]) == "sleep"


# --- real stacks: unwind at the program's own write(2) while it runs under goemu ----------


@pytest.mark.parametrize("name,args", [("hello", []), ("esbuild-0.5.26", ["--version"])])
def test_unwind_real_stack_under_goemu(name, args, monkeypatch):
    """At the write() that prints the program's output: the stack unwinds from the syscall
    through main.main to runtime.goexit, and g/m/p read with the layouts are consistent
    (g.m.curg == g, m.procid == the thread id, the P's status and back-link)."""
    import goemu.syscalls
    from goemu.kernel import Kernel, Options
    from unicorn.x86_const import UC_X86_REG_FS_BASE, UC_X86_REG_RAX, UC_X86_REG_RDI, \
        UC_X86_REG_RIP, UC_X86_REG_RSP

    path = str(binary(name))
    s = syms(name)
    lay = Layouts(s)
    seen = []
    original = goemu.syscalls.dispatch

    def spy(k, t):
        uc = k.uc
        if uc.reg_read(UC_X86_REG_RAX) == 1 and uc.reg_read(UC_X86_REG_RDI) in (1, 2):
            try:
                read = lambda a, n: bytes(uc.mem_read(a, n))  # noqa: E731
                u64 = lambda a: struct.unpack("<Q", read(a, 8))[0]  # noqa: E731
                sp = uc.reg_read(UC_X86_REG_RSP)
                frames = s.frames(u64, uc.reg_read(UC_X86_REG_RIP), sp)
                g = u64(uc.reg_read(UC_X86_REG_FS_BASE) - 8)
                gv = read_struct(lay, "g", read, g)
                mv = read_struct(lay, "m", read, gv["m"])
                pv = read_struct(lay, "p", read, mv["p"] or mv["oldp"])
                seen.append((frames, sp, g, gv, mv, pv, t.tid))
            except Exception as e:  # an exception must not escape into the emulator
                seen.append(e)
        return original(k, t)

    monkeypatch.setattr(goemu.syscalls, "dispatch", spy)  # Kernel binds it at construction
    k = Kernel(path, [path, *args], [], Options())
    assert k.run() == 0
    assert seen, "no write to stdout/stderr seen"
    assert not isinstance(seen[0], Exception), repr(seen[0])
    frames, sp, g, gv, mv, pv, tid = seen[0]
    funcs = [f.func for f in frames]
    assert "main.main" in funcs and "runtime.main" in funcs, funcs
    # Calls the compiler inlined show up as Go's own tracebacks show them.
    inlined = {f.func for f in frames if f.inlined}
    if name == "hello":        # fmt.Println -> Fprintln; FD.Write -> syscall.Write
        assert {"fmt.Println", "syscall.Write", "os.(*File).write"} <= inlined, frames
        assert frames[funcs.index("main.main")].file.endswith("hello/main.go")
    else:                      # go1.14: fmt.Fprintf; FD.Write inlines syscall.Write
        assert {"syscall.Write", "os.(*File).write"} <= inlined, frames
        fd_write = frames[funcs.index("internal/poll.(*FD).Write")]
        assert fd_write.file.endswith("internal/poll/fd_unix.go") and not fd_write.inlined
    assert funcs[-1] == "runtime.goexit", funcs
    assert all(f.file and f.line for f in frames), frames
    assert gv["goid"] == 1 and status_name(gv["atomicstatus"]) in ("_Gsyscall", "_Grunning")
    assert gv["stack.lo"] <= sp < gv["stack.hi"]  # the write runs on the goroutine's stack
    assert mv["curg"] == g and mv["procid"] == tid
    if mv["p"]:   # still holding its P
        assert pv["m"] == gv["m"] and pstatus_name(pv["status"]) == "_Prunning"
    else:         # entersyscall released it: m.oldp, p.m cleared, _Psyscall
        assert pv["m"] == 0 and pstatus_name(pv["status"]) == "_Psyscall"
        assert status_name(gv["atomicstatus"]) == "_Gsyscall"
    assert gv["startpc"] == s.address_of("runtime.main")
