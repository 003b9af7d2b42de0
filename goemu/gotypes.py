"""Layouts of the Go runtime's scheduler structures (g, m, p, schedt) and where its globals are.

``Layouts(symbols)`` gives, for the fields a G/M/P view needs, the byte offset and size inside
``runtime.g``, ``runtime.m``, ``runtime.p`` and ``runtime.schedt``, plus the addresses of the
runtime globals (``runtime.allgs``, ``runtime.allp``, ``runtime.sched``, ...).

Sources, in order:

* ``"dwarf"``: the binary's own DWARF. Go 1.14 writes zlib-compressed ``.zdebug_*`` sections
  ("ZLIB" + 8-byte big-endian size); Go 1.19 writes SHF_COMPRESSED ``.debug_*`` sections.
  pyelftools (0.33) decompresses both itself: ``ELFFile.get_dwarf_info`` switches to the
  ``.zdebug_*`` names when ``.zdebug_info`` exists and undoes either compression.
* ``"table"``: a built-in table, used when the DWARF is gone (a stripped binary) and the Go
  version is known. go1.14 was computed by hand from go1.14's ``runtime/runtime2.go``
  (amd64: 8-byte pointers, natural alignment) and go1.19 comes from the go1.19.8 fixtures' DWARF;
  tests/test_symbols.py checks both tables against DWARF field by field.
* ``"none"``: neither; ``offsets`` is empty and ``notes`` says why.

Offsets of nested fields use dotted paths: ``g.sched.pc`` is ``offsets["g"]["sched.pc"]``.
"""
from __future__ import annotations

import io
from typing import Callable, Optional

from .symbols import Symbols

__all__ = ["Layouts", "FIELDS", "GLOBALS", "TABLES", "table_for", "status_name",
           "pstatus_name", "waitreason_name", "G_STATUS", "P_STATUS", "WAIT_REASONS",
           "read_struct"]

# The fields we resolve, per struct. Absent ones (another Go version) are listed in
# Layouts.absent rather than failing.
FIELDS: dict[str, list[str]] = {
    "g": ["stack.lo", "stack.hi", "stackguard0", "stackguard1", "_panic", "_defer", "m",
          "sched.sp", "sched.pc", "sched.g", "sched.ctxt", "sched.bp", "syscallsp",
          "syscallpc", "param", "atomicstatus", "goid", "schedlink", "waitsince", "waitreason",
          "preempt", "preemptStop", "lockedm", "gopc", "startpc", "waiting"],
    "m": ["g0", "procid", "gsignal", "tls", "mstartfn", "curg", "caughtsig", "p", "nextp",
          "oldp", "id", "mallocing", "throwing", "preemptoff", "locks", "dying", "spinning",
          "blocked", "alllink", "schedlink", "lockedg", "vdsoSP", "vdsoPC"],
    "p": ["id", "status", "link", "schedtick", "syscalltick", "m", "mcache", "runqhead",
          "runqtail", "runq", "runnext", "preempt"],
    "schedt": ["goidgen", "lastpoll", "lock", "midle", "nmidle", "nmidlelocked", "mnext",
               "maxmcount", "nmsys", "nmfreed", "ngsys", "pidle", "npidle", "nmspinning",
               "runq.head", "runq.tail", "runqsize", "freem", "gcwaiting", "stopwait",
               "sysmonwait"],
}
STRUCTS = {"g": "runtime.g", "m": "runtime.m", "p": "runtime.p", "schedt": "runtime.schedt"}

# Runtime globals: (symbol, what it is). mcount() is sched.mnext - sched.nmfreed.
GLOBALS: dict[str, str] = {
    "runtime.allgs": "[]*g (slice header: ptr, len, cap)",
    "runtime.allglen": "uintptr",
    "runtime.allp": "[]*p (slice header)",
    "runtime.allm": "*m (linked through m.alllink)",
    "runtime.sched": "schedt",
    "runtime.gomaxprocs": "int32",
    "runtime.ncpu": "int32",
}

# ---------------------------------------------------------------------------------------------
# status and wait-reason names

G_STATUS = ["_Gidle", "_Grunnable", "_Grunning", "_Gsyscall", "_Gwaiting", "_Gmoribund_unused",
            "_Gdead", "_Genqueue_unused", "_Gcopystack", "_Gpreempted"]
GSCAN = 0x1000
P_STATUS = ["_Pidle", "_Prunning", "_Psyscall", "_Pgcstop", "_Pdead"]

# waitReasonStrings of go1.14 runtime/runtime2.go, index = waitReason value.
WAIT_REASONS_GO114 = [
    "", "GC assist marking", "IO wait", "chan receive (nil chan)", "chan send (nil chan)",
    "dumping heap", "garbage collection", "garbage collection scan", "panicwait", "select",
    "select (no cases)", "GC assist wait", "GC sweep wait", "GC scavenge wait", "chan receive",
    "chan send", "finalizer wait", "force gc (idle)", "semacquire", "sleep", "sync.Cond.Wait",
    "timer goroutine (idle)", "trace reader (blocked)", "wait for GC cycle", "GC worker (idle)",
    "preempted",
]
# go1.19 appends one.
WAIT_REASONS_GO119 = WAIT_REASONS_GO114 + ["debug call"]
WAIT_REASONS = {"go1.14": WAIT_REASONS_GO114, "go1.19": WAIT_REASONS_GO119}


def _major(version: Optional[str]) -> Optional[str]:
    if not version or not version.startswith("go1."):
        return None
    parts = version.split(".")
    digits = "".join(ch for ch in parts[1] if ch.isdigit())
    return f"go1.{digits}" if digits else None


def status_name(status: int) -> str:
    """g.atomicstatus as the runtime names it (_Grunning, _Gscanwaiting, ...)."""
    base = status & ~GSCAN
    name = G_STATUS[base] if 0 <= base < len(G_STATUS) else f"status({base})"
    if status & GSCAN:
        return "_Gscan" + name[2:] if name.startswith("_G") else "_Gscan|" + name
    return name


def pstatus_name(status: int) -> str:
    return P_STATUS[status] if 0 <= status < len(P_STATUS) else f"pstatus({status})"


def waitreason_name(reason: int, version: Optional[str] = "go1.14") -> str:
    table = WAIT_REASONS.get(_major(version) or "", WAIT_REASONS_GO114)
    if 0 <= reason < len(table):
        return table[reason]
    return "unknown wait reason"


# ---------------------------------------------------------------------------------------------
# built-in tables: struct -> {field: (offset, size)}, plus "__size__"

# go1.14 (amd64), from go1.14 runtime/runtime2.go. Offsets computed field by field:
#   g: stack{lo,hi} 0/8, stackguard0 16, stackguard1 24, _panic 32, _defer 40, m 48,
#      sched gobuf{sp,pc,g,ctxt,ret,lr,bp} 56..112, syscallsp 112, syscallpc 120, stktopsp 128,
#      param 136, atomicstatus u32 144, stackLock u32 148, goid 152, schedlink 160,
#      waitsince 168, waitreason u8 176, preempt 177, preemptStop 178, preemptShrink 179,
#      asyncSafePoint 180, paniconfault 181, gcscandone 182, throwsplit 183,
#      activeStackChans 184, raceignore 185, sysblocktraced 186, sysexitticks 192,
#      traceseq 200, tracelastp 208, lockedm 216, sig u32 224, writebuf 232 (24),
#      sigcode0 256, sigcode1 264, sigpc 272, gopc 280, ancestors 288, startpc 296,
#      racectx 304, waiting 312, cgoCtxt 320 (24), labels 344, timer 352, selectDone u32 360,
#      gcAssistBytes 368 -> size 376
#   m: g0 0, morebuf gobuf 8..64, divmod u32 64, procid 72, gsignal 80,
#      goSigStack gsignalStack{stack,stackguard0,stackguard1,stktopsp} 88..128,
#      sigmask [2]u32 128, tls [6]uintptr 136..184, mstartfn 184, curg 192, caughtsig 200,
#      p 208, nextp 216, oldp 224, id 232, mallocing i32 240, throwing 244,
#      preemptoff string 248, locks i32 264, dying 268, profilehz 272, spinning 276,
#      blocked 277, newSigstack 278, printlock 279, incgo 280, freeWait u32 284,
#      fastrand [2]u32 288, needextram 296, traceback 297, ncgocall 304, ncgo 312,
#      cgoCallersUse 316, cgoCallers 320, park 328, alllink 336, schedlink 344, mcache 352,
#      lockedg 360, createstack [32]uintptr 368..624, lockedExt 624, lockedInt 628,
#      nextwaitm 632, waitunlockf 640, waitlock 648, waittraceev 656, waittraceskip 664,
#      startingtrace 672, syscalltick 676, freelink 680, libcall 688..736, libcallpc 736,
#      libcallsp 744, libcallg 752, syscall libcall 760..808, vdsoSP 808, vdsoPC 816,
#      preemptGen 824, signalPending 828, dlogPerM{} and mOS{} (both empty) at 832; the
#      compiler pads a struct whose last field has size 0 (so &m.mOS stays inside the
#      object): 832 + 1 rounded up to 8 -> size 840
#   p: id i32 0, status u32 4, link 8, schedtick u32 16, syscalltick u32 20,
#      sysmontick{u32,i64,u32,i64} 24..56, m 56, mcache 64, pcache pageCache (24) 72,
#      raceprocctx 96, deferpool [5][]*_defer 104..224, deferpoolbuf [5][32]*_defer
#      224..1504, goidcache 1504, goidcacheend 1512, runqhead u32 1520, runqtail u32 1524,
#      runq [256]guintptr 1528..3576, runnext 3576, ... preempt (bool, last before the
#      cache-line pad) and the total size come from the tail of the struct:
#      gFree{gList,n} 3584..3600, sudogcache 3600 (24), sudogbuf [128] 3624..4648,
#      mspancache{len,buf[128]} 4648..5680, tracebuf 5680, traceSweep 5688,
#      traceSwept 5696, traceReclaimed 5704, palloc persistentAlloc{base,off} 5712..5728,
#      _ u32 5728, timer0When 5736, gcAssistTime 5744, gcFractionalMarkTime 5752,
#      gcBgMarkWorker 5760, gcMarkWorkerMode 5768, gcMarkWorkerStartTime 5776,
#      gcw gcWork{wbuf1,wbuf2,bytesMarked u64,scanWork i64,flushedWork bool,pauseGen u32,
#      putGen u32,pauseStack [16]uintptr} 5784..5960, wbBuf{next,end,buf [512]uintptr,
#      debugGen u32 (mwbbuf.go)} 5960..10080, runSafePointFn u32 10080, timersLock 10088,
#      timers 10096 (24), numTimers u32 10120, adjustTimers 10124, deletedTimers 10128,
#      timerRaceCtx 10136, preempt 10144, pad cpu.CacheLinePad [64]byte 10145..10209
#      -> size 10216
#   schedt: goidgen 0, lastpoll 8, pollUntil 16, lock 24, midle 32, nmidle i32 40,
#      nmidlelocked 44, mnext i64 48, maxmcount 56, nmsys 60, nmfreed i64 64, ngsys u32 72,
#      pidle 80, npidle u32 88, nmspinning u32 92, runq gQueue{head,tail} 96..112,
#      runqsize i32 112, disable{user,runnable gQueue,n} 120..152,
#      gFree{lock,stack,noStack,n} 152..184, sudoglock 184, sudogcache 192, deferlock 200,
#      deferpool [5] 208..248, freem 248, gcwaiting u32 256, stopwait 260, stopnote 264,
#      sysmonwait u32 272, sysmonnote 280, safePointFn 288, safePointWait 296,
#      safePointNote 304, profilehz 312, procresizetime 320, totaltime 328 -> size 336
_GO114 = {
    "g": {
        "__size__": (0, 376),
        "stack.lo": (0, 8), "stack.hi": (8, 8), "stackguard0": (16, 8), "stackguard1": (24, 8),
        "_panic": (32, 8), "_defer": (40, 8), "m": (48, 8),
        "sched.sp": (56, 8), "sched.pc": (64, 8), "sched.g": (72, 8), "sched.ctxt": (80, 8),
        "sched.bp": (104, 8), "syscallsp": (112, 8), "syscallpc": (120, 8), "param": (136, 8),
        "atomicstatus": (144, 4), "goid": (152, 8), "schedlink": (160, 8),
        "waitsince": (168, 8), "waitreason": (176, 1), "preempt": (177, 1),
        "preemptStop": (178, 1), "lockedm": (216, 8), "gopc": (280, 8), "startpc": (296, 8),
        "waiting": (312, 8),
    },
    "m": {
        "__size__": (0, 840),
        "g0": (0, 8), "procid": (72, 8), "gsignal": (80, 8), "tls": (136, 48),
        "mstartfn": (184, 8), "curg": (192, 8), "caughtsig": (200, 8), "p": (208, 8),
        "nextp": (216, 8), "oldp": (224, 8), "id": (232, 8), "mallocing": (240, 4),
        "throwing": (244, 4), "preemptoff": (248, 16), "locks": (264, 4), "dying": (268, 4),
        "spinning": (276, 1), "blocked": (277, 1), "alllink": (336, 8), "schedlink": (344, 8),
        "lockedg": (360, 8), "vdsoSP": (808, 8), "vdsoPC": (816, 8),
    },
    "p": {
        "__size__": (0, 10216),
        "id": (0, 4), "status": (4, 4), "link": (8, 8), "schedtick": (16, 4),
        "syscalltick": (20, 4), "m": (56, 8), "mcache": (64, 8), "runqhead": (1520, 4),
        "runqtail": (1524, 4), "runq": (1528, 2048), "runnext": (3576, 8),
        "preempt": (10144, 1),
    },
    "schedt": {
        "__size__": (0, 336),
        "goidgen": (0, 8), "lastpoll": (8, 8), "lock": (24, 8), "midle": (32, 8),
        "nmidle": (40, 4), "nmidlelocked": (44, 4), "mnext": (48, 8), "maxmcount": (56, 4),
        "nmsys": (60, 4), "nmfreed": (64, 8), "ngsys": (72, 4), "pidle": (80, 8),
        "npidle": (88, 4), "nmspinning": (92, 4), "runq.head": (96, 8), "runq.tail": (104, 8),
        "runqsize": (112, 4), "freem": (248, 8), "gcwaiting": (256, 4), "stopwait": (260, 4),
        "sysmonwait": (272, 4),
    },
}

# go1.19 (amd64): extracted from the DWARF of the go1.19.8 fixtures (fixtures/go1.19-binaries)
# with this module's DWARF reader; tests check it against that DWARF again.
_GO119 = {
    "g": {
        "__size__": (0, 392), "stack.lo": (0, 8), "stack.hi": (8, 8), "stackguard0": (16, 8),
        "stackguard1": (24, 8), "_panic": (32, 8), "_defer": (40, 8), "m": (48, 8),
        "sched.sp": (56, 8), "sched.pc": (64, 8), "sched.g": (72, 8), "sched.ctxt": (80, 8),
        "sched.bp": (104, 8), "syscallsp": (112, 8), "syscallpc": (120, 8), "param": (136, 8),
        "atomicstatus": (144, 4), "goid": (152, 8), "schedlink": (160, 8),
        "waitsince": (168, 8), "waitreason": (176, 1), "preempt": (177, 1),
        "preemptStop": (178, 1), "lockedm": (232, 8), "gopc": (296, 8), "startpc": (312, 8),
        "waiting": (328, 8),
    },
    "m": {
        "__size__": (0, 1008), "g0": (0, 8), "procid": (72, 8), "gsignal": (80, 8),
        "tls": (136, 48), "mstartfn": (184, 8), "curg": (192, 8), "caughtsig": (200, 8),
        "p": (208, 8), "nextp": (216, 8), "oldp": (224, 8), "id": (232, 8),
        "mallocing": (240, 4), "throwing": (244, 4), "preemptoff": (248, 16), "locks": (264, 4),
        "dying": (268, 4), "spinning": (276, 1), "blocked": (277, 1), "alllink": (336, 8),
        "schedlink": (344, 8), "lockedg": (352, 8), "vdsoSP": (800, 8), "vdsoPC": (808, 8),
    },
    "p": {
        "__size__": (0, 8912), "id": (0, 4), "status": (4, 4), "link": (8, 8),
        "schedtick": (16, 4), "syscalltick": (20, 4), "m": (56, 8), "mcache": (64, 8),
        "runqhead": (400, 4), "runqtail": (404, 4), "runq": (408, 2048), "runnext": (2456, 8),
        "preempt": (8904, 1),
    },
    "schedt": {
        "__size__": (0, 6080), "goidgen": (0, 8), "lastpoll": (8, 8), "lock": (24, 8),
        "midle": (32, 8), "nmidle": (40, 4), "nmidlelocked": (44, 4), "mnext": (48, 8),
        "maxmcount": (56, 4), "nmsys": (60, 4), "nmfreed": (64, 8), "ngsys": (72, 4),
        "pidle": (80, 8), "npidle": (88, 4), "nmspinning": (92, 4), "runq.head": (96, 8),
        "runq.tail": (104, 8), "runqsize": (112, 4), "freem": (216, 8), "gcwaiting": (224, 4),
        "stopwait": (228, 4), "sysmonwait": (240, 4),
    },
}
TABLES: dict[str, dict] = {"go1.14": _GO114, "go1.19": _GO119}


def table_for(version: Optional[str]) -> Optional[dict]:
    """The built-in layout table for a Go version string (any patch release), or None."""
    return TABLES.get(_major(version) or "")


# ---------------------------------------------------------------------------------------------
# DWARF


class _Dwarf:
    """Just enough of the binary's DWARF to find Go's runtime struct types and their members."""

    def __init__(self, symbols: Symbols):
        from elftools.elf.elffile import ELFFile  # pyelftools: only needed for DWARF

        self._elf = ELFFile(io.BytesIO(symbols.data))
        self.info = self._elf.get_dwarf_info(relocate_dwarf_sections=False)
        sec = self.info.debug_info_sec
        sec.stream.seek(0)
        self.raw = sec.stream.read(sec.size)  # decompressed .debug_info
        self._cache: dict[str, object] = {}

    def struct(self, name: str):
        """The DW_TAG_structure_type DIE named `name` (e.g. "runtime.g"), or None."""
        if name in self._cache:
            return self._cache[name]
        die = self._find_fast(name) or self._find_slow(name)
        self._cache[name] = die
        return die

    def subprogram(self, name: str):
        """The DW_TAG_subprogram DIE of function `name` (its parameters are its children)."""
        key = "func " + name
        if key not in self._cache:
            self._cache[key] = self._find_fast(name, "DW_TAG_subprogram")
        return self._cache[key]

    def _find_fast(self, name: str, tag: str = "DW_TAG_structure_type"):
        # Go puts DW_AT_name (DW_FORM_string) first in its structure-type abbrev, so the DIE
        # starts at the abbrev code just before the inline name. Check every candidate against
        # the abbrev table before letting pyelftools parse it.
        needle = name.encode() + b"\0"
        pos = self.raw.find(needle)
        while pos != -1:
            for back in (1, 2):
                off = pos - back
                if off < 0:
                    continue
                code, n = _uleb(self.raw, off)
                if n != back or code == 0:
                    continue
                try:
                    cu = self.info.get_CU_containing(off)
                    decl = cu.get_abbrev_table().get_abbrev(code)
                except Exception:
                    continue
                if decl is None or decl["tag"] != tag:
                    continue
                specs = decl["attr_spec"]
                if not specs or specs[0].name != "DW_AT_name" or specs[0].form != "DW_FORM_string":
                    continue
                die = self.info.get_DIE_from_refaddr(off, cu)
                if _name(die) == name:
                    return die
            pos = self.raw.find(needle, pos + 1)
        return None

    def _find_slow(self, name: str):
        want = name.encode()
        for cu in self.info.iter_CUs():
            for die in cu.get_top_DIE().iter_children():
                if die.tag == "DW_TAG_structure_type" and \
                        die.attributes.get("DW_AT_name") is not None and \
                        die.attributes["DW_AT_name"].value == want:
                    return die
        return None

    @staticmethod
    def _type(die):
        if "DW_AT_type" not in die.attributes:
            return None
        t = die.get_DIE_from_attribute("DW_AT_type")
        while t is not None and t.tag in ("DW_TAG_typedef", "DW_TAG_const_type",
                                          "DW_TAG_volatile_type"):
            if "DW_AT_type" not in t.attributes:
                break
            t = t.get_DIE_from_attribute("DW_AT_type")
        return t

    @staticmethod
    def _size(t) -> Optional[int]:
        if t is None:
            return None
        a = t.attributes.get("DW_AT_byte_size")
        if a is not None:
            return a.value
        if t.tag == "DW_TAG_pointer_type":
            return 8
        return None

    def members(self, die) -> dict[str, tuple[int, Optional[int], object]]:
        out = {}
        for c in die.iter_children():
            if c.tag != "DW_TAG_member":
                continue
            loc = c.attributes.get("DW_AT_data_member_location")
            if loc is None:
                continue
            off = loc.value
            if isinstance(off, list):  # a location block: DW_OP_plus_uconst N
                if not off or off[0] != 0x23:
                    continue
                off = _uleb(bytes(off), 1)[0]
            t = self._type(c)
            out[_name(c)] = (off, self._size(t), t)
        return out

    def resolve(self, struct_name: str, paths: list[str]):
        """({path: (offset, size)}, struct size, [absent paths])."""
        die = self.struct(struct_name)
        if die is None:
            return None
        top = self.members(die)
        got: dict[str, tuple[int, int]] = {}
        absent = []
        for path in paths:
            parts = path.split(".")
            mem = top
            off = 0
            ok = True
            for k, part in enumerate(parts):
                if part not in mem:
                    ok = False
                    break
                o, size, t = mem[part]
                off += o
                if k + 1 < len(parts):
                    if t is None or t.tag != "DW_TAG_structure_type":
                        ok = False
                        break
                    mem = self.members(t)
            if ok:
                got[path] = (off, size)
            else:
                absent.append(path)
        got["__size__"] = (0, self._size(die))
        return got, absent


def _uleb(data: bytes, off: int) -> tuple[int, int]:
    """(value, number of bytes) of the ULEB128 at off."""
    v = shift = 0
    n = 0
    while True:
        b = data[off + n]
        n += 1
        v |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return v, n


def _name(die) -> Optional[str]:
    a = die.attributes.get("DW_AT_name")
    if a is None:
        return None
    v = a.value
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else v


# ---------------------------------------------------------------------------------------------


class Layouts:
    """Runtime struct layouts and global addresses for one binary.

    Attributes: ``source`` ("dwarf", "table" or "none"), ``go_version``, ``offsets``
    (struct -> field path -> offset), ``sizes`` (struct -> field path -> size in bytes),
    ``struct_sizes`` (struct -> size), ``globals`` (symbol -> address, for the ones found),
    ``absent`` (struct -> field paths this Go version does not have), ``notes``.
    """

    def __init__(self, symbols: Symbols, prefer: Optional[str] = None):
        """prefer="table" skips DWARF (used to compare the two); default: DWARF first."""
        self.symbols = symbols
        self.go_version = symbols.go_version
        self.offsets: dict[str, dict[str, int]] = {}
        self.sizes: dict[str, dict[str, int]] = {}
        self.struct_sizes: dict[str, int] = {}
        self.absent: dict[str, list[str]] = {}
        self.notes: list[str] = []
        self.source = "none"
        if prefer != "table" and symbols.has_dwarf:
            try:
                self._from_dwarf()
                self.source = "dwarf"
            except Exception as e:  # a DWARF we cannot read: say so, fall back below
                self.notes.append(f"DWARF unreadable ({type(e).__name__}: {e})")
                self._clear()
        if self.source == "none":
            table = table_for(self.go_version)
            if table is not None:
                self._from_table(table)
                self.source = "table"
                self.notes.append(f"runtime struct layouts from the built-in table for "
                                  f"{_major(self.go_version)}")
            else:
                self.notes.append("no runtime struct layouts: no DWARF and no built-in table "
                                  f"for {self.go_version or 'an unknown Go version'}")
        self.globals: dict[str, int] = {}
        for name in GLOBALS:
            addr = symbols.address_of(name)
            if addr is not None:
                self.globals[name] = addr
        lost = [n for n in GLOBALS if n not in self.globals]
        if lost:
            self.notes.append("runtime globals without an address (no .symtab?): "
                              + ", ".join(lost))

    def _clear(self) -> None:
        self.offsets, self.sizes, self.struct_sizes, self.absent = {}, {}, {}, {}

    def _from_dwarf(self) -> None:
        dw = _Dwarf(self.symbols)
        for key, paths in FIELDS.items():
            res = dw.resolve(STRUCTS[key], paths)
            if res is None:
                raise LookupError(f"no {STRUCTS[key]} in DWARF")
            got, absent = res
            self._store(key, got)
            self.absent[key] = absent

    def _from_table(self, table: dict) -> None:
        for key, paths in FIELDS.items():
            got = table.get(key)
            if got is None:
                self.absent[key] = list(paths)
                continue
            self._store(key, got)
            self.absent[key] = [p for p in paths if p not in got]

    def _store(self, key: str, got: dict) -> None:
        self.struct_sizes[key] = got["__size__"][1]
        self.offsets[key] = {p: v[0] for p, v in got.items() if p != "__size__"}
        self.sizes[key] = {p: v[1] for p, v in got.items() if p != "__size__"}

    def __getitem__(self, struct_key: str) -> dict[str, int]:
        return self.offsets[struct_key]

    def offset(self, struct_key: str, path: str) -> int:
        try:
            return self.offsets[struct_key][path]
        except KeyError:
            raise KeyError(f"{struct_key}.{path}: not known for {self.go_version} "
                           f"(layout source: {self.source})") from None

    def as_table(self) -> dict:
        """The layouts in the built-in table format ({struct: {path: (off, size)}})."""
        out = {}
        for key, offs in self.offsets.items():
            d = {"__size__": (0, self.struct_sizes[key])}
            d.update({p: (o, self.sizes[key][p]) for p, o in offs.items()})
            out[key] = d
        return out

    def waitreason_name(self, reason: int) -> str:
        return waitreason_name(reason, self.go_version)

    def mcount(self, read_bytes: Callable[[int, int], bytes]) -> Optional[int]:
        """The runtime's mcount(): sched.mnext - sched.nmfreed, read through read_bytes."""
        base = self.globals.get("runtime.sched")
        if base is None or "schedt" not in self.offsets:
            return None
        v = read_struct(self, "schedt", read_bytes, base, ["mnext", "nmfreed"])
        return v["mnext"] - v["nmfreed"]


_SIGNED = {("g", "goid"), ("g", "waitsince"), ("m", "id"), ("m", "mallocing"),
           ("m", "throwing"), ("m", "locks"), ("m", "dying"), ("p", "id"),
           ("schedt", "nmidle"), ("schedt", "nmidlelocked"), ("schedt", "mnext"),
           ("schedt", "maxmcount"), ("schedt", "nmsys"), ("schedt", "nmfreed"),
           ("schedt", "runqsize"), ("schedt", "stopwait")}


def read_struct(layouts: Layouts, struct_key: str, read_bytes: Callable[[int, int], bytes],
                addr: int, fields: Optional[list[str]] = None) -> dict[str, int]:
    """Read integer fields (1/2/4/8 bytes, little-endian) of a struct at addr.

    read_bytes(addr, n) -> bytes. Fields of other sizes (arrays, strings) are skipped; signed
    Go fields (goid, m.id, locks, ...) are returned signed.
    """
    offs, sizes = layouts.offsets[struct_key], layouts.sizes[struct_key]
    out: dict[str, int] = {}
    for f in fields if fields is not None else list(offs):
        size = sizes.get(f)
        if f not in offs or size not in (1, 2, 4, 8):
            continue
        raw = read_bytes(addr + offs[f], size)
        out[f] = int.from_bytes(raw, "little", signed=(struct_key, f) in _SIGNED)
    return out
