"""ABI corners on tiny hand-made ELFs, against native runs (the exit status carries the answer):
the 32-bit syscall ABI (`int 0x80`: Linux runs its ia32 table), `sysenter`, read/write's
access_ok (write(1, buf, 1<<62) is EFAULT) against /dev/null's write that never reads the
buffer, and the PC of an instruction-fetch fault on an instruction straddling a page boundary
(the instruction's address, not its translation block's).

Assembly sources are in the comments (GNU as, Intel syntax); the data segment holds "hi\\n" at
BASE + 0x1000."""
from __future__ import annotations

import pytest

from conftest import exit_status, run_goemu, run_native
from tinyelf import BASE, make_elf

CASES = {
    # mov eax, 1; mov ebx, 7; int 0x80                            -> exit(7)
    "int80_exit": "b801000000bb07000000cd80",
    # mov eax, 4; mov ebx, 1; mov ecx, 0x401000; mov edx, 3; int 0x80; mov ebx, eax; mov eax, 1;
    # int 0x80                                                    -> "hi\n", exit(3)
    "int80_write": "b804000000bb01000000b900104000ba03000000cd8089c3b801000000cd80",
    # mov eax, 1000; int 0x80; mov edi, eax; mov eax, 60; syscall -> exit(-ENOSYS & 0xff)
    "int80_enosys": "b8e8030000cd8089c7b83c0000000f05",
    # as int80_write, with rcx = 0x100401000: the 32-bit ABI sees ecx only
    "int80_highptr": "b804000000bb0100000048b90010400001000000ba03000000cd8089c7b83c0000000f05",
    # mov eax, 1; mov ebx, 9; sysenter; mov edi, 5; mov eax, 60; syscall
    "sysenter": "b801000000bb090000000f34bf05000000b83c0000000f05",
    # write(1, 0x401000, 1 << 62); exit(result)                  -> EFAULT (access_ok)
    "write_huge": "bf01000000be0010400048ba0000000000000040b8010000000f0589c7b83c0000000f05",
    # fd = open("/dev/null", O_WRONLY); write(fd, 0x10, 10); exit(result) -> 10: never read
    "devnull_badptr": "488d3d28000000be01000000b8020000000f0589c7be10000000ba0a000000b8010000000f05"
                      "89c7b83c0000000f052f6465762f6e756c6c00",
    # the same with buf = 0x7ffffffffff0, count 0x100 (past user space) -> EFAULT
    "devnull_highptr": "488d3d2d000000be01000000b8020000000f0589c748bef0ffffffff7f0000ba00010000b801"
                       "0000000f0589c7b83c0000000f052f6465762f6e756c6c00",
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_native(name, tmp_path):
    binary = make_elf(bytes.fromhex(CASES[name]), tmp_path / name, data=b"hi\n")
    native, emu = run_native(binary), run_goemu(binary)
    assert exit_status(emu) == exit_status(native), emu.stderr
    assert emu.stdout == native.stdout
    assert b"Traceback" not in emu.stderr


# A SIGSEGV handler exits with the low byte of the interrupted RIP (uc_mcontext.rip) or, if the
# byte `which` is set, with bits 8..15 of si_addr. Main: rt_sigaction(SIGSEGV, {handler,
# SA_SIGINFO|SA_RESTORER, restorer}); mov eax, START; jmp rax. From START, NOPs run to BASE+0xffc,
# where `movabs rax, imm64` (48 b8 ...) starts and runs into the unmapped page at BASE+0x1000.
#   lea rax,[rip+handler]; mov [rip+act],rax; mov qword ptr [rip+act+8],0x04000004
#   lea rax,[rip+restorer]; mov [rip+act+16],rax; mov eax,13; mov edi,11; lea rsi,[rip+act]
#   xor edx,edx; mov r10d,8; syscall; mov eax,START; jmp rax
#   handler: mov rdi,[rdx+168]; and edi,0xff; cmp byte ptr [rip+which],0; je 1f
#   mov rdi,[rsi+16]; shr rdi,8; and edi,0xff; 1: mov eax,60; syscall
#   restorer: mov eax,15; syscall;  which: .byte 0;  act: .zero 32
STRADDLE = bytes.fromhex(
    "488d05420000004889056e00000048c7056b00000004000004488d055400000048890565000000b80d000000bf0b"
    "000000488d354400000031d241ba080000000f05b8fc0f4000ffe0488bbaa800000081e7ff000000803d1e000000"
    "00740e488b7e1048c1ef0881e7ff000000b83c0000000f05b80f0000000f0500") + bytes(32)


def _straddle(start: int, which: int) -> bytes:
    code = bytearray(STRADDLE)
    code[-33] = which
    i = code.find(bytes.fromhex("b8fc0f4000"))
    code[i + 1:i + 5] = (BASE + start).to_bytes(4, "little")
    code += b"\x90" * (0xFFC - 0x78 - len(code)) + b"\x48\xb8\x11\x22"
    return bytes(code)


@pytest.mark.parametrize("start", [0xFFC, 0xFF0, 0xF00])
@pytest.mark.parametrize("which", [0, 1], ids=["pc", "addr"])
def test_fetch_fault_pc_of_a_straddling_instruction(tmp_path, start, which):
    """The block runs from START; the fault's PC is the movabs at BASE+0xffc (exit 0xfc), its
    address the next page (exit 0x10), natively; goemu used to report START."""
    binary = make_elf(_straddle(start, which), tmp_path / "straddle")   # one page: no data
    native, emu = run_native(binary), run_goemu(binary)
    assert native.returncode == (0xFC if which == 0 else 0x10)
    assert emu.returncode == native.returncode, emu.stderr
