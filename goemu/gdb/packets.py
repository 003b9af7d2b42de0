"""gdb remote-protocol framing: ``$payload#xx`` packets with a modulo-256 checksum, ``+``/``-``
acknowledgements (until QStartNoAckMode), ``}``-escaped binary data and the out-of-band Ctrl-C
byte (0x03) that interrupts a running target.

Bad input never raises: a bad checksum gets ``-``, garbage between packets is skipped, an
oversized packet is dropped (``-``), and a closed connection reads as None."""
from __future__ import annotations

import select
import socket

MAX_PACKET = 1 << 20
INTERRUPT = 0x03


def checksum(data: bytes) -> int:
    return sum(data) & 0xFF


def escape(data: bytes) -> bytes:
    """Binary data in a reply: '#', '$', '}' and '*' become '}' + (byte ^ 0x20)."""
    out = bytearray()
    for b in data:
        if b in (0x23, 0x24, 0x7D, 0x2A):
            out += bytes((0x7D, b ^ 0x20))
        else:
            out.append(b)
    return bytes(out)


def unescape(data: bytes) -> bytes:
    out = bytearray()
    it = iter(data)
    for b in it:
        if b == 0x7D:
            nxt = next(it, None)
            if nxt is None:
                break
            out.append(nxt ^ 0x20)
        else:
            out.append(b)
    return bytes(out)


def expand_rle(data: bytes) -> bytes:
    """Run-length encoding ('X*n': repeat X n-29 more times), which gdb may send too."""
    if b"*" not in data:
        return data
    out = bytearray()
    i = 0
    while i < len(data):
        b = data[i]
        if b == 0x2A and out and i + 1 < len(data):
            out += bytes((out[-1],)) * max(0, data[i + 1] - 29)
            i += 2
            continue
        out.append(b)
        i += 1
    return bytes(out)


class Connection:
    def __init__(self, sock: socket.socket, log=None):
        self.sock = sock
        self.buf = bytearray()
        self.ack = True
        self.closed = False
        self.interrupted = False
        self.log = log

    def fileno(self) -> int:
        return self.sock.fileno()

    def _fill(self, timeout: float | None) -> bool:
        """Read what the socket has (waiting up to `timeout`); False when it is closed."""
        if self.closed:
            return False
        try:
            r, _, _ = select.select([self.sock], [], [], timeout)
            if not r:
                return True
            data = self.sock.recv(65536)
        except (OSError, ValueError):
            data = b""
        if not data:
            self.closed = True
            return False
        self.buf += data
        return True

    def _send_raw(self, data: bytes) -> None:
        if self.closed:
            return
        try:
            self.sock.sendall(data)
        except OSError:
            self.closed = True

    def send(self, payload: bytes | str) -> None:
        if isinstance(payload, str):
            payload = payload.encode("latin-1")
        if self.log:
            self.log(f"<- {payload[:200]!r}")
        self._send_raw(b"$" + payload + b"#%02x" % checksum(payload))
        # gdb acknowledges replies; the '+' is consumed by the next read

    def poll_interrupt(self) -> bool:
        """While the target runs: True once gdb sent Ctrl-C (0x03) or went away."""
        if not self.closed:
            self._fill(0)
        if INTERRUPT in self.buf:
            del self.buf[self.buf.index(INTERRUPT)]
            return True
        return self.closed

    def read_packet(self) -> bytes | None:
        """The next packet's payload (b"\\x03" for a Ctrl-C); None when the connection closed."""
        while True:
            # skip acknowledgements and garbage up to '$' or a Ctrl-C
            i = 0
            while i < len(self.buf) and self.buf[i] not in (0x24, INTERRUPT):
                i += 1
            del self.buf[:i]
            if self.buf and self.buf[0] == INTERRUPT:
                del self.buf[0]
                return b"\x03"
            if self.buf:
                end = self.buf.find(b"#")
                if end >= 0 and len(self.buf) >= end + 3:
                    body = bytes(self.buf[1:end])
                    given = bytes(self.buf[end + 1:end + 3])
                    del self.buf[:end + 3]
                    if b"$" in body:        # a packet cut short by a new one: drop the start
                        body = body[body.rindex(b"$") + 1:]
                        self._send_raw(b"-") if self.ack else None
                        continue
                    try:
                        ok = int(given, 16) == checksum(body)
                    except ValueError:
                        ok = False
                    if self.ack:
                        self._send_raw(b"+" if ok else b"-")
                    if not ok and self.ack:
                        continue
                    if self.log:
                        self.log(f"-> {body[:200]!r}")
                    return expand_rle(body)
                if len(self.buf) > MAX_PACKET:
                    self.buf.clear()
                    self._send_raw(b"-")
            if not self._fill(None):
                return None
