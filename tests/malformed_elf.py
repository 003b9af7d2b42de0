"""A corpus of malformed static x86-64 ELF executables, derived from one small valid program.

The valid program writes "ok\\n" and exits 42. It has two PT_LOAD segments, as a real static
binary does: text (R+X, file offset 0, at 0x400000) and data (R+W, at 0x401000, with a bss).
Each corpus entry is (name, bytes): truncations at every header boundary, a flip of one bit of
every header byte, and fields set to values a loader must reject (or accept, as Linux does).
The native execve of each file is the oracle (tests/test_malformed_elf.py).
"""
from __future__ import annotations

import struct

BASE = 0x400000
EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
PHDR = struct.Struct("<IIQQQQQQ")
PT_LOAD, PT_NOTE = 1, 4
PF_X, PF_W, PF_R = 1, 2, 4

# write(1, msg, 3); exit(42)
CODE = bytes.fromhex(
    "b801000000"        # mov eax, 1
    "bf01000000"        # mov edi, 1
    "488d3513000000"    # lea rsi, [rip+0x13]
    "ba03000000"        # mov edx, 3
    "0f05"              # syscall
    "b83c000000"        # mov eax, 60
    "bf2a000000"        # mov edi, 42
    "0f05"              # syscall
) + b"ok\n"

PHOFF = EHDR.size                  # 64
TEXT_OFF = PHOFF + 2 * PHDR.size   # 176: code follows the program headers
FILE_SIZE = 0x1000 + 0x100         # a page of text, then 256 bytes of data


def phdr(p_type=PT_LOAD, flags=PF_R | PF_X, offset=0, vaddr=BASE, filesz=0x1000, memsz=0x1000,
         align=0x1000) -> bytes:
    return PHDR.pack(p_type, flags, offset, vaddr, vaddr, filesz, memsz, align)


def build(entry=BASE + TEXT_OFF, phoff=PHOFF, phentsize=PHDR.size, phnum=2, e_type=2,
          phdrs: list[bytes] | None = None, size=FILE_SIZE) -> bytes:
    if phdrs is None:
        phdrs = [phdr(), phdr(flags=PF_R | PF_W, offset=0x1000, vaddr=BASE + 0x1000, filesz=0x100,
                          memsz=0x3000)]
    image = bytearray(max(size, TEXT_OFF + len(CODE)))
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + b"\0" * 8
    image[0:64] = EHDR.pack(ident, e_type, 62, 1, entry, phoff, 0, 0, 64, phentsize, phnum, 64, 0, 0)
    table = b"".join(phdrs)
    if phoff + len(table) <= len(image):
        image[phoff:phoff + len(table)] = table
    image[TEXT_OFF:TEXT_OFF + len(CODE)] = CODE
    return bytes(image[:size]) if size < len(image) else bytes(image)


def valid() -> bytes:
    return build()


def _text(**kw) -> bytes:
    return phdr(**kw)


def _data(**kw) -> bytes:
    d = dict(flags=PF_R | PF_W, offset=0x1000, vaddr=BASE + 0x1000, filesz=0x100, memsz=0x3000)
    d.update(kw)
    return phdr(**d)


def bad_fields() -> list[tuple[str, bytes]]:
    """Fields a loader must check, one per file (the valid program otherwise)."""
    T, D = _text, _data
    return [
        ("memsz_huge", build(phdrs=[T(), D(memsz=1 << 46)])),
        ("memsz_zero", build(phdrs=[T(), D(memsz=0)])),
        ("memsz_too_small", build(phdrs=[T(memsz=0x10)])),
        ("filesz_gt_memsz", build(phdrs=[T(), D(filesz=0x100, memsz=0x80)])),
        ("vaddr_above_user", build(phdrs=[T(), D(vaddr=1 << 47)])),
        ("vaddr_top", build(phdrs=[T(), D(vaddr=0xFFFF_FFFF_FFFF_F000)])),
        ("vaddr_wraps", build(phdrs=[T(), D(vaddr=0xFFFF_FFFF_FFFF_F000, memsz=0x3000)])),
        ("vaddr_zero", build(entry=TEXT_OFF, phdrs=[T(vaddr=0), D(vaddr=0x1000)])),
        ("vaddr_end_at_limit", build(phdrs=[T(), D(vaddr=(1 << 47) - 0x1000, memsz=0x2000)])),
        ("overlapping", build(phdrs=[T(), D(vaddr=BASE + 0x800, offset=0x800)])),
        ("overlapping_same", build(phdrs=[T(), D(vaddr=BASE, offset=0)])),
        ("unsorted", build(phdrs=[D(), T()])),
        ("offset_past_end", build(phdrs=[T(), D(offset=1 << 40)])),
        ("offset_huge", build(phdrs=[T(), D(offset=0xFFFF_FFFF_FFFF_F000)])),
        ("filesz_past_end", build(phdrs=[T(), D(filesz=0x10000, memsz=0x10000)])),
        ("filesz_huge", build(phdrs=[T(), D(filesz=1 << 62, memsz=1 << 62)])),
        ("offset_misaligned", build(phdrs=[T(), D(offset=0x1001)])),
        ("align_odd", build(phdrs=[T(align=3), D(align=0x1234)])),
        ("entry_outside", build(entry=0x10000000)),
        ("entry_zero", build(entry=0)),
        ("entry_in_data", build(entry=BASE + 0x1000)),
        ("entry_noncanonical", build(entry=1 << 63)),
        ("text_not_executable", build(phdrs=[T(flags=PF_R), D()])),
        ("no_flags", build(phdrs=[T(flags=0), D()])),
        ("phnum_zero", build(phnum=0)),
        ("phnum_huge", build(phnum=0xFFFF)),
        ("phnum_past_end", build(phnum=100)),
        ("phoff_past_end", build(phoff=1 << 20)),
        ("phoff_huge", build(phoff=0xFFFF_FFFF_FFFF_FFF0)),
        ("phentsize_small", build(phentsize=32)),
        ("phentsize_big", build(phentsize=64)),
        ("no_load_segments", build(phdrs=[T(p_type=PT_NOTE), D(p_type=PT_NOTE)])),
        ("e_type_rel", build(e_type=1)),
        ("e_type_core", build(e_type=4)),
    ]


def truncations() -> list[tuple[str, bytes]]:
    """The valid file cut at every header boundary (and one byte either side)."""
    image = valid()
    cuts = {0, 1, 4, 5, 16, 17, 18, 20, 24, 32, 40, 48, 52, 56, 58, 60, 62, 63, 64, 65}
    for i in range(3):
        b = PHOFF + i * PHDR.size
        cuts |= {b - 1, b, b + 1, b + 4, b + 8, b + 16, b + 32, b + 40, b + 48}
    cuts |= {TEXT_OFF + 10, 0x1000 - 1, 0x1000, 0x1000 + 1, FILE_SIZE - 1}
    return [(f"cut_{c}", image[:c]) for c in sorted(cuts) if 0 <= c < len(image)]


def bit_flips() -> list[tuple[str, bytes]]:
    """One bit flipped in every byte of the ELF and program headers (the bit is the byte's
    index mod 8, so every bit position is hit across the corpus)."""
    image = valid()
    out = []
    for i in range(TEXT_OFF):
        b = bytearray(image)
        b[i] ^= 1 << (i % 8)
        out.append((f"flip_{i}_{i % 8}", bytes(b)))
    return out


def corpus() -> list[tuple[str, bytes]]:
    return bad_fields() + truncations() + bit_flips()
