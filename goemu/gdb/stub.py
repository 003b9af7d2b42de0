"""The gdb remote stub: gdb's commands answered on goemu's engine (goemu/engine.py), all-stop
as Linux's gdbserver: every guest thread is a gdb thread, a stop stops them all, and a step
moves one thread while the others stay still.

Each command is one small method found in COMMANDS (the packet's leading letters); an unknown
command gets the empty reply (gdb's "not supported"), a malformed one ``E01``; nothing a client
sends can raise out of the loop."""
from __future__ import annotations

import os
import re
import socket
import stat
import sys

from ..engine import Engine, Stop
from ..errno import LinuxError
from . import target
from .packets import Connection, escape, unescape
from .reverse import ReplayError

FEATURES = ("PacketSize=4000;qXfer:features:read+;qXfer:threads:read+;qXfer:exec-file:read+;"
            "qXfer:auxv:read+;QPassSignals+;QStartNoAckMode+;vContSupported+;swbreak+;hwbreak+")
REVERSE_FEATURES = ";ReverseStep+;ReverseContinue+"      # only under --deterministic
MAX_MEM = 0x10000


class Malformed(Exception):
    pass


def _hex(s: bytes | str) -> int:
    try:
        return int(s, 16)
    except (ValueError, TypeError):
        raise Malformed(s) from None


def _split(s: bytes, sep: bytes, n: int) -> list[bytes]:
    parts = s.split(sep, n - 1)
    if len(parts) != n:
        raise Malformed(s)
    return parts


class Stub:
    def __init__(self, k, conn: Connection, syms=None, layouts=None, reverse=None):
        self.k = k
        self.conn = conn
        self.engine = Engine(k)
        self.engine.intercept_signals = True
        self.engine.interrupt_check = conn.poll_interrupt
        self.engine.poll_fds.append(conn.fileno())
        self.view = None
        if syms is not None and layouts is not None:
            from ..runtime_view import RuntimeView
            self.view = RuntimeView(k, syms, layouts)
        self.reverse = reverse
        if reverse is not None:
            reverse.bind(self)
        first = k.current
        self.g_thread = first.tid          # Hg: registers and memory
        self.last: Stop = Stop("start", first.tid)
        self.quit = False
        self.exited = False
        self.detached = False

    # ---- the loop -----------------------------------------------------------------------
    def serve(self) -> None:
        while not self.quit:
            pkt = self.conn.read_packet()
            if pkt is None:
                break
            if pkt == b"\x03":
                continue       # Ctrl-C while stopped: nothing to interrupt
            reply = self.handle(pkt)
            if reply is not None:
                self.conn.send(reply)
            if pkt == b"QStartNoAckMode" and reply == "OK":
                self.conn.ack = False

    def handle(self, pkt: bytes) -> str | bytes | None:
        try:
            for prefix, name in COMMANDS:
                if pkt.startswith(prefix):
                    return getattr(self, name)(pkt[len(prefix):])
            return ""
        except (Malformed, LinuxError, KeyError, IndexError, ValueError, OverflowError,
                UnicodeError, TypeError):
            return "E01"
        except ReplayError as e:  # going back failed or was interrupted: the present is kept
            print(f"goemu: gdb stub: {e}", file=sys.stderr)
            return "E02"
        except Exception as e:   # an emulator bug: keep the session
            if os.environ.get("GOEMU_DEBUG"):
                raise
            print(f"goemu: gdb stub: {type(e).__name__}: {e}", file=sys.stderr)
            return "E02"

    # ---- threads ------------------------------------------------------------------------
    def thread(self, tid: int | None = None):
        tid = self.g_thread if tid is None else tid
        t = self.k.threads.get(tid)
        if t is None or t.state == "dead":
            live = self.k.live_threads()
            if not live:
                raise Malformed("no threads")
            t = live[0]
            self.g_thread = t.tid
        return t

    def _tid(self, s: bytes) -> int | None:
        """A thread id: hex, or 0 / -1 (any / all): None."""
        if s.startswith(b"p"):
            s = s.split(b".", 1)[-1]
        if s in (b"-1", b"0", b""):
            return None
        return _hex(s)

    def cmd_H(self, arg: bytes) -> str:
        if not arg or arg[:1] not in b"gcs":
            raise Malformed(arg)
        tid = self._tid(arg[1:])
        if tid is not None:
            t = self.k.threads.get(tid)
            if t is None or t.state == "dead":
                return "E01"
            if arg[:1] == b"g":
                self.g_thread = tid
        return "OK"

    def cmd_T(self, arg: bytes) -> str:
        t = self.k.threads.get(self._tid(arg) or -1)
        return "OK" if t is not None and t.state != "dead" else "E01"

    def cmd_qC(self, arg: bytes) -> str:
        if arg:
            return ""       # qCRC and the like
        return f"QC{self.thread().tid:x}"

    def cmd_qfThreadInfo(self, arg: bytes) -> str:
        live = self.k.live_threads()
        return "m" + ",".join(f"{t.tid:x}" for t in live) if live else "l"

    def cmd_qsThreadInfo(self, arg: bytes) -> str:
        return "l"

    def _extra(self, t) -> str:
        if self.view is None:
            return t.state
        try:
            m, p, g = self.view.gmp(t)
        except Exception:
            return t.state
        parts = [f"M{m}" if m is not None else "M?", f"P{p}" if p is not None else "P-",
                 f"G{g}" if g is not None else "G-"]
        if t.state != "runnable":
            parts.append(t.wait.what if t.wait else t.state)
        return " ".join(parts)

    def cmd_qThreadExtraInfo(self, arg: bytes) -> str:
        t = self.k.threads.get(self._tid(arg.lstrip(b",")) or -1)
        if t is None:
            return "E01"
        return self._extra(t).encode().hex()

    def _threads_xml(self) -> bytes:
        name = os.path.basename(self.k.exe_path)[:15]
        rows = [f'<thread id="{t.tid:x}" core="0" name="{name}">{self._extra(t)}</thread>'
                for t in self.k.live_threads()]
        return ("<?xml version=\"1.0\"?>\n<threads>\n" + "\n".join(rows) + "\n</threads>\n").encode()

    # ---- queries --------------------------------------------------------------------------
    def cmd_qSupported(self, arg: bytes) -> str:
        return FEATURES + (REVERSE_FEATURES if self.reverse is not None else "")

    def cmd_qAttached(self, arg: bytes) -> str:
        return "0"        # goemu started the process: gdb kills it when it quits

    def cmd_qSymbol(self, arg: bytes) -> str:
        return "OK"

    def cmd_QStartNoAckMode(self, arg: bytes) -> str:
        return "OK"

    def cmd_QPassSignals(self, arg: bytes) -> str:
        sigs = {target.linux_signal(_hex(s)) for s in arg.lstrip(b":").split(b";") if s}
        self.engine.pass_signals = {s for s in sigs if s}
        return "OK"

    def cmd_QNonStop(self, arg: bytes) -> str:
        return "OK" if arg == b":0" else "E01"

    def cmd_ok(self, arg: bytes) -> str:
        return "OK"

    def cmd_qXfer(self, arg: bytes) -> bytes | str:
        obj, op, annex, span = _split(arg.lstrip(b":"), b":", 4)
        if op != b"read":
            return ""
        off, length = (_hex(x) for x in _split(span, b",", 2))
        if obj == b"features" and annex == b"target.xml":
            data = target.description().encode()
        elif obj == b"threads":
            data = self._threads_xml()
        elif obj == b"exec-file":
            data = self.k.exe_path.encode()
        elif obj == b"auxv":
            data = bytes(self.k.auxv) if isinstance(self.k.auxv, (bytes, bytearray)) else b""
        else:
            return "E00"
        chunk = data[off:off + length]
        return (b"l" if off + length >= len(data) else b"m") + escape(chunk)

    # ---- registers ----------------------------------------------------------------------
    def _load(self):
        t = self.thread()
        self.k.load(t)
        return t

    def cmd_g(self, arg: bytes) -> str:
        self._load()
        return "".join(target.read_reg(self.k.uc, n).hex() for n in range(len(target.REGS)))

    def cmd_G(self, arg: bytes) -> str:
        data = bytes.fromhex(arg.decode())
        self._load()
        off = 0
        for n, (_, size, _) in enumerate(target.REGS):
            if off + size > len(data):
                break
            target.write_reg(self.k.uc, n, data[off:off + size])
            off += size
        self._logged("G", self.g_thread, data)
        return "OK"

    def cmd_p(self, arg: bytes) -> str:
        n = _hex(arg)
        if not 0 <= n < len(target.REGS):
            return "E01"
        self._load()
        return target.read_reg(self.k.uc, n).hex()

    def cmd_P(self, arg: bytes) -> str:
        n, value = _split(arg, b"=", 2)
        n = _hex(n)
        if not 0 <= n < len(target.REGS):
            return "E01"
        t = self._load()
        data = bytes.fromhex(value.decode())
        target.write_reg(self.k.uc, n, data)
        self._logged("reg", t.tid, n, data)
        return "OK"

    # ---- memory ---------------------------------------------------------------------------
    def cmd_m(self, arg: bytes) -> str:
        addr, length = (_hex(x) for x in _split(arg, b",", 2))
        length = min(length, MAX_MEM)
        if length == 0:
            return ""
        mem = self.k.mem
        # as much as is readable from the start (gdb reads across the end of mappings)
        n = length
        while n > 0 and not mem.is_accessible(addr, n):
            n = n // 2 if n > 1 else 0
        if n == 0:
            return "E14"
        return mem.read(addr, n).hex()

    def _write(self, addr: int, data: bytes) -> str:
        if data and not self.k.mem.is_accessible(addr, len(data)):
            return "E14"
        self.k.mem.poke(addr, data)
        self._logged("mem", addr, data)
        return "OK"

    def cmd_M(self, arg: bytes) -> str:
        head, hexdata = _split(arg, b":", 2)
        addr, length = (_hex(x) for x in _split(head, b",", 2))
        data = bytes.fromhex(hexdata.decode())
        if len(data) != length:
            return "E01"
        return self._write(addr, data)

    def cmd_X(self, arg: bytes) -> str:
        head, raw = _split(arg, b":", 2)
        addr, length = (_hex(x) for x in _split(head, b",", 2))
        data = unescape(raw)
        if len(data) != length:
            return "E01"
        return self._write(addr, data)

    # ---- breakpoints and watchpoints -------------------------------------------------------
    def _z(self, arg: bytes, insert: bool) -> str:
        kind, addr, length = _split(arg.split(b";", 1)[0], b",", 3)
        kind, addr, length = _hex(kind), _hex(addr), _hex(length)
        e = self.engine
        if kind in (0, 1):
            if insert:
                e.add_breakpoint(addr)
            else:
                e.remove_breakpoint(addr)
        elif kind in (2, 3, 4):
            if not 0 < length <= 4096:
                return "E01"
            what = {2: "watch", 3: "rwatch", 4: "awatch"}[kind]
            if insert:
                e.add_watch(what, addr, length)
            else:
                e.remove_watch(what, addr, length)
        else:
            return ""
        self._logged("points", insert, kind, addr, length)
        return "OK"

    def cmd_Z(self, arg: bytes) -> str:
        return self._z(arg, True)

    def cmd_z(self, arg: bytes) -> str:
        return self._z(arg, False)

    # ---- running ----------------------------------------------------------------------------
    def stop_reply(self, stop: Stop) -> str:
        self.last = stop
        if stop.kind == "exited":
            self.exited = True
            if stop.killed_by:
                return f"X{target.gdb_signal(stop.killed_by):02x}"
            return f"W{stop.status & 0xFF:02x}"
        if stop.tid is not None and stop.tid in self.k.threads:
            self.g_thread = stop.tid
        tid = stop.tid if stop.tid is not None else self.thread().tid
        sig = {"signal": stop.sig, "interrupt": 2}.get(stop.kind, 5)
        reason = ""
        if stop.kind == "breakpoint":
            reason = "swbreak:;"
        elif stop.kind == "watch":
            reason = f"{stop.watch}:{stop.addr:x};"
        elif stop.kind == "replaylog":
            reason = "replaylog:begin;"
        return f"T{target.gdb_signal(sig):02x}thread:{tid:x};core:0;{reason}"

    def cmd_question(self, arg: bytes) -> str:
        return self.stop_reply(self.last)

    def _parse_actions(self, arg: bytes) -> list[tuple[str, int, int | None]]:
        acts = []
        for part in arg.split(b";")[1:]:
            a, _, tid = part.partition(b":")
            if not a:
                raise Malformed(arg)
            op = chr(a[0])
            if op not in "cCsSt" or (op in "CS" and len(a) != 3) or (op in "cst" and len(a) != 1):
                raise Malformed(arg)
            sig = target.linux_signal(_hex(a[1:])) if op in "CS" else 0
            acts.append((op.lower(), sig, self._tid(tid) if tid else None))
        if not acts:
            raise Malformed(arg)
        return acts

    def cmd_vCont(self, arg: bytes) -> str:
        if arg == b"?":
            return "vCont;c;C;s;S;t"
        acts = self._parse_actions(arg)
        return self._run(acts)

    def _run(self, acts) -> str:
        if self.exited:
            return "E01"
        k, e = self.k, self.engine
        # each thread takes the first action naming it or all threads
        plan = {}
        for t in k.live_threads():
            for op, sig, tid in acts:
                if tid is None or tid == t.tid:
                    plan[t.tid] = (op, sig)
                    break
        stepping = [tid for tid, (op, _) in plan.items() if op == "s"]
        shown = self.last.tid if self.last.kind == "signal" else None
        if shown in plan:
            e.resume_signal(k.threads[shown], plan[shown][1])
        for tid, (op, sig) in plan.items():
            if tid != shown and sig:
                e.resume_signal(k.threads[tid], sig)
        if self.reverse is not None:
            self.reverse.run_op(acts)
        if stepping:
            # all-stop: the stepped thread moves, the others stay where they are
            stop = e.step(k.threads[stepping[0]])
        elif any(op == "c" for op, _ in plan.values()):
            stop = e.resume()
        else:
            if self.reverse is not None:
                self.reverse.after_run(Stop("none", None))
            return "OK"
        if self.reverse is not None:
            self.reverse.after_run(stop)
        return self.stop_reply(stop)

    def cmd_c(self, arg: bytes) -> str:
        return self._run([("c", 0, None)])

    def cmd_C(self, arg: bytes) -> str:
        return self._run([("c", target.linux_signal(_hex(arg.split(b";")[0])), None)])

    def cmd_s(self, arg: bytes) -> str:
        return self._run([("s", 0, self.g_thread)])

    def cmd_S(self, arg: bytes) -> str:
        return self._run([("s", target.linux_signal(_hex(arg.split(b";")[0])), self.g_thread)])

    # ---- reverse ----------------------------------------------------------------------------
    def cmd_bs(self, arg: bytes) -> str:
        if self.reverse is None:
            return "E01"
        return self.stop_reply(self.reverse.step_back(self.thread().tid))

    def cmd_bc(self, arg: bytes) -> str:
        if self.reverse is None:
            return "E01"
        return self.stop_reply(self.reverse.continue_back())

    def _logged(self, *op) -> None:
        if self.reverse is not None:
            self.reverse.log(op)

    # ---- the end ------------------------------------------------------------------------------
    def cmd_k(self, arg: bytes) -> None:
        self._kill()
        self.quit = True
        return None

    def cmd_vKill(self, arg: bytes) -> str:
        self._kill()
        self.quit = True
        return "OK"

    def _kill(self) -> None:
        k = self.k
        if k.exit_status is None:
            k.killed_by = 9
            k.exit_status = 128 + 9

    def cmd_D(self, arg: bytes) -> str:
        e = self.engine
        for addr in list(e.bps):
            e.remove_breakpoint(addr)
        for w in list(e.watches):
            e.remove_watch(*w)
        e.intercept_signals = False
        e.interrupt_check = None
        self.quit = True
        self.detached = True
        return "OK"

    def cmd_vMustReplyEmpty(self, arg: bytes) -> str:
        return ""


COMMANDS = [(b"qSupported", "cmd_qSupported"), (b"qXfer", "cmd_qXfer"),
            (b"qfThreadInfo", "cmd_qfThreadInfo"), (b"qsThreadInfo", "cmd_qsThreadInfo"),
            (b"qThreadExtraInfo", "cmd_qThreadExtraInfo"), (b"qAttached", "cmd_qAttached"),
            (b"qC", "cmd_qC"), (b"qSymbol", "cmd_qSymbol"), (b"QStartNoAckMode", "cmd_QStartNoAckMode"),
            (b"QPassSignals", "cmd_QPassSignals"), (b"QProgramSignals", "cmd_ok"),
            (b"QNonStop", "cmd_QNonStop"), (b"vMustReplyEmpty", "cmd_vMustReplyEmpty"),
            (b"vCont", "cmd_vCont"), (b"vKill", "cmd_vKill"), (b"bs", "cmd_bs"), (b"bc", "cmd_bc"),
            (b"?", "cmd_question"), (b"g", "cmd_g"), (b"G", "cmd_G"), (b"p", "cmd_p"), (b"P", "cmd_P"),
            (b"m", "cmd_m"), (b"M", "cmd_M"), (b"X", "cmd_X"), (b"Z", "cmd_Z"), (b"z", "cmd_z"),
            (b"H", "cmd_H"), (b"T", "cmd_T"), (b"c", "cmd_c"), (b"C", "cmd_C"), (b"s", "cmd_s"),
            (b"S", "cmd_S"), (b"k", "cmd_k"), (b"D", "cmd_D")]


def listen(addr: str) -> socket.socket:
    """A listening socket: a TCP port on 127.0.0.1 (a number, or HOST:PORT), else a Unix
    socket path."""
    m = re.fullmatch(r"(?:(.*):)?(\d+)", addr)
    if m:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((m.group(1) or "127.0.0.1", int(m.group(2))))
    else:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            if stat.S_ISSOCK(os.stat(addr).st_mode):
                os.unlink(addr)         # a stale socket (never another kind of file)
        except FileNotFoundError:
            pass
        s.bind(addr)
    s.listen(1)
    return s


def serve(k, addr: str, syms=None, layouts=None, make_kernel=None) -> int:
    """`goemu run -g ADDR`: wait for gdb, then let it drive the guest; goemu's exit status is
    the guest's."""
    try:
        server = listen(addr)
    except (OSError, OverflowError, ValueError) as e:
        print(f"goemu: -g {addr}: {getattr(e, 'strerror', None) or e}", file=sys.stderr)
        return 2
    where = server.getsockname()
    shown = f"{where[0]}:{where[1]}" if isinstance(where, tuple) else where
    print(f"goemu: {k.exe_path}: waiting for gdb on {shown}", file=sys.stderr, flush=True)
    sock, _ = server.accept()
    server.close()
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1) if sock.family == socket.AF_INET else None
    reverse = None
    if make_kernel is not None:
        from .reverse import Reverse
        reverse = Reverse(make_kernel)
    k.start()
    log = (lambda text: print(f"goemu: gdb {text}", file=sys.stderr, flush=True)) \
        if os.environ.get("GOEMU_GDB_LOG") else None
    stub = Stub(k, Connection(sock, log), syms, layouts, reverse)
    try:
        stub.serve()
        if not stub.detached and not stub.quit and stub.k.exit_status is None:
            # as gdbserver: gdb went away without detaching, so the process it started is killed
            print("goemu: gdb closed the connection: the guest is killed", file=sys.stderr)
            stub._kill()
        if stub.detached and stub.k.exit_status is None:
            stub.k.debug_poll = None
            stub.k.signal_stop = None
            while stub.k.run_until_break() == "break":
                pass
    finally:
        try:
            sock.close()
        except OSError:
            pass
        stub.k.finish()
    return stub.k.exit_status or 0
