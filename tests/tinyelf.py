"""Hand-made static x86-64 ELF executables for CPU, fault and signal paths (no toolchain needed)."""
from __future__ import annotations

import struct
from pathlib import Path

BASE = 0x400000


def make_elf(code: bytes, path: Path, data: bytes = b"") -> Path:
    """One R+X segment holding `code` (entry) followed by `data` (at BASE + 0x1000)."""
    ehdr_size, phdr_size = 64, 56
    text_off = 0x78
    image = bytearray(0x1000 + len(data))
    image[text_off:text_off + len(code)] = code
    image[0x1000:] = data
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + b"\0" * 8
    image[0:64] = ident + struct.pack("<HHIQQQIHHHHHH", 2, 62, 1, BASE + text_off, ehdr_size, 0, 0,
                                      ehdr_size, phdr_size, 1, 64, 0, 0)
    image[64:120] = struct.pack("<IIQQQQQQ", 1, 7, 0, BASE, BASE, len(image), len(image), 0x1000)
    path.write_bytes(bytes(image))
    path.chmod(0o755)
    return path


def exit_with_rax() -> bytes:
    """mov edi, eax ; mov eax, 60 ; syscall"""
    return b"\x89\xc7\xb8\x3c\x00\x00\x00\x0f\x05"
