"""Faults, default signal actions and raw syscalls on tiny hand-made static ELFs, against native."""
from __future__ import annotations

import pytest

from conftest import exit_status, goemu_cli, run_goemu, run_native
from tinyelf import BASE, exit_with_rax, make_elf

CASES = {
    # name: machine code
    "exit42": b"\xbf\x2a\x00\x00\x00\xb8\xe7\x00\x00\x00\x0f\x05",              # exit_group(42)
    "nil_load": b"\x48\x8b\x04\x25\x00\x00\x00\x00",                             # mov rax, [0]
    # the RWX segment takes the store; then execution runs into zeros (add [rax], al; rax=0)
    "store_to_text": b"\xc6\x05\x00\x00\x00\x00\x01",                            # mov byte [rip], 1
    "int3": b"\xcc",
    "ud2": b"\x0f\x0b",
    "div_zero": b"\x31\xc9\x48\xf7\xf1",                                         # xor ecx,ecx; div rcx
    "call_nil": b"\x31\xc0\xff\xd0",                                             # xor eax,eax; call rax
    # unknown syscall number 1000: RAX must become -ENOSYS, so the exit status is (-38) & 0xff
    "enosys": b"\xb8\xe8\x03\x00\x00\x0f\x05" + exit_with_rax(),
    # A SIGUSR1 handler finds uc_mcontext.fpstate (64-byte aligned, FXSAVE layout) holding the
    # interrupted xmm1, changes it there and clobbers the live xmm1; after rt_sigreturn xmm1 is
    # what the handler wrote (Go's debug-call injection reads fpstate). Exit 42, else 3 or 4.
    # Source: rt_sigaction(SIGUSR1, {handler, SA_SIGINFO|SA_RESTORER, restorer}); movq xmm1,
    # 0x1122334455667788; kill(getpid(), SIGUSR1); exit(xmm1 == 0x55 ? 42 : 4). handler: rax =
    # [rdx+40+184]; exit(3) unless rax && !(rax & 63) && [rax+176] == 0x1122334455667788;
    # mov qword [rax+176], 0x55; pxor xmm1, xmm1; ret. restorer: rt_sigreturn.
    "fpstate": bytes.fromhex(
        "488d0572000000488905b2000000488d05a3000000488905b4000000b80d000000bf0a000000488d35930000"
        "0031d241ba080000000f0548b8887766554433221166480f6ec8b8270000000f0589c7be0a000000b83e0000"
        "000f0566480f7ec84883f8557507bf2a000000eb05bf04000000b83c0000000f05488b82e00000004885c074"
        "27a83f752348b98877665544332211483988b0000000751048c780b000000055000000660fefc9c3bf030000"
        "00b83c0000000f05b80f0000000f059000000000000000000400000400000000000000000000000000000000"
        "00000000"),
    # write(1, msg, 3) then exit(0)
    "write": b"\xbf\x01\x00\x00\x00\x48\xbe" + (BASE + 0x1000).to_bytes(8, "little")
             + b"\xba\x03\x00\x00\x00\xb8\x01\x00\x00\x00\x0f\x05"
             + b"\x31\xff\xb8\x3c\x00\x00\x00\x0f\x05",
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_tiny_matches_native(name, tmp_path):
    binary = make_elf(CASES[name], tmp_path / name, data=b"hi\n")
    native = run_native(binary)
    emu = run_goemu(binary)
    assert exit_status(emu) == exit_status(native), emu.stderr
    assert emu.stdout == native.stdout
    assert b"Traceback" not in emu.stderr


def test_expected_native_statuses(tmp_path):
    """The oracle: each case really ends the way the comparison above relies on."""
    want = {"exit42": 42, "nil_load": 139, "int3": 133, "ud2": 132, "div_zero": 136,
            "enosys": 256 - 38, "write": 0, "call_nil": 139, "store_to_text": 139, "fpstate": 42}
    for name, status in want.items():
        got = exit_status(run_native(make_elf(CASES[name], tmp_path / name, data=b"hi\n")))
        assert got == status, name


def test_fault_message_and_verbose_note(tmp_path):
    binary = make_elf(CASES["nil_load"], tmp_path / "segv")
    p = goemu_cli("run", binary)
    assert p.returncode == -11          # goemu dies of the guest's signal (test_signal_death.py)
    assert p.stderr.decode().strip() == "goemu: guest terminated by SIGSEGV: Segmentation fault"
    binary = make_elf(CASES["enosys"], tmp_path / "enosys")
    p = goemu_cli("run", "-v", binary)
    assert p.returncode == 256 - 38
    assert "syscall 1000" in p.stderr.decode() and "ENOSYS" in p.stderr.decode()
