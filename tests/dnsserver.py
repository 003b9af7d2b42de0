"""A tiny DNS server on 127.0.0.1 for the resolver test: answers every A query for
example.goemu.test with 10.1.2.3 (the address is only data: nothing is sent to it), and
everything else (AAAA, other names) with an empty answer."""
from __future__ import annotations

import socket
import struct
import threading


class DnsServer:
    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.address = "%s:%d" % self.sock.getsockname()
        self.queries = 0
        self.done = False
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> "DnsServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.done = True
        self.thread.join()
        self.sock.close()

    def _serve(self) -> None:
        while not self.done:
            try:
                data, peer = self.sock.recvfrom(512)
            except socket.timeout:
                continue
            self.queries += 1
            qid, _flags, qd = struct.unpack(">HHH", data[:6])
            end = 12
            while data[end]:
                end += data[end] + 1
            qname = data[12:end + 1]
            qtype, qclass = struct.unpack(">HH", data[end + 1:end + 5])
            question = data[12:end + 5]
            answers = b""
            count = 0
            if qtype == 1 and qname == b"\x07example\x05goemu\x04test\x00":
                answers = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + bytes([10, 1, 2, 3])
                count = 1
            header = struct.pack(">HHHHHH", qid, 0x8180, 1, count, 0, 0)
            self.sock.sendto(header + question + answers, peer)
