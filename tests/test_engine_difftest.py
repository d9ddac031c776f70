"""Cross-engine differential test on random integer code.

Each seed assembles a straight-line riscv64 program: random register values
(``lui`` + ``addi``), then a few hundred random RV64IM register-register and
register-immediate operations (division by zero and overflow included), then
it stores x3..x31 on the stack and ``write``s them to stdout.  A second
variant mixes in loads and stores of every width at misaligned offsets of a
scratch buffer and conditional branches over the next instruction.  The AOT image,
the JIT engine and the interpreter engine must print the same bytes — and the
same as qemu-riscv64, an independent implementation, when it is installed.
"""

from __future__ import annotations

import random
import shutil
import subprocess

import pytest

from conftest import aotc_cmd, aotrun_cmd, run_tool
from test_guest_exits import ECALL, addi, tiny_elf

# (funct7, funct3) for OP (0x33) and OP-32 (0x3b)
OP = {"add": (0, 0), "sub": (0x20, 0), "sll": (0, 1), "slt": (0, 2), "sltu": (0, 3), "xor": (0, 4),
      "srl": (0, 5), "sra": (0x20, 5), "or": (0, 6), "and": (0, 7), "mul": (1, 0), "mulh": (1, 1),
      "mulhsu": (1, 2), "mulhu": (1, 3), "div": (1, 4), "divu": (1, 5), "rem": (1, 6), "remu": (1, 7)}
OP32 = {"addw": (0, 0), "subw": (0x20, 0), "sllw": (0, 1), "srlw": (0, 5), "sraw": (0x20, 5),
        "mulw": (1, 0), "divw": (1, 4), "divuw": (1, 5), "remw": (1, 6), "remuw": (1, 7)}
OPIMM = {"addi": 0, "slti": 2, "sltiu": 3, "xori": 4, "ori": 6, "andi": 7}
REGS = range(5, 32)


def rtype(f7: int, f3: int, opcode: int, rd: int, rs1: int, rs2: int) -> int:
    return (f7 << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | opcode


def itype(f3: int, rd: int, rs1: int, imm: int) -> int:
    return ((imm & 0xFFF) << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | 0x13


def lui(rd: int, imm20: int) -> int:
    return ((imm20 & 0xFFFFF) << 12) | (rd << 7) | 0x37


def sd(rs2: int, rs1: int, off: int) -> int:
    return (((off >> 5) & 0x7F) << 25) | (rs2 << 20) | (rs1 << 15) | (3 << 12) | ((off & 0x1F) << 7) | 0x23


LOADS = {"lb": 0, "lh": 1, "lw": 2, "ld": 3, "lbu": 4, "lhu": 5, "lwu": 6}
STORES = {"sb": 0, "sh": 1, "sw": 2, "sd": 3}
BRANCHES = {"beq": 0, "bne": 1, "blt": 4, "bge": 5, "bltu": 6, "bgeu": 7}
SCRATCH = 4      # x4 = scratch buffer, 1 KiB below the stack pointer


def load(f3: int, rd: int, rs1: int, off: int) -> int:
    return ((off & 0xFFF) << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | 0x03


def store(f3: int, rs2: int, rs1: int, off: int) -> int:
    return (((off >> 5) & 0x7F) << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | ((off & 0x1F) << 7) | 0x23


def skip_next_if(f3: int, rs1: int, rs2: int) -> int:
    return (rs2 << 20) | (rs1 << 15) | (f3 << 12) | (4 << 8) | 0x63   # offset +8


def program(seed: int, n_ops: int = 300, memory_and_branches: bool = False) -> list[int]:
    rnd = random.Random(seed)
    words = [addi(SCRATCH, 2, -1024)]
    for r in REGS:
        words += [lui(r, rnd.getrandbits(20)), addi(r, r, rnd.getrandbits(12))]
    words.append(addi(7, 0, 0))           # some zeros and minus ones for the corner cases
    words.append(addi(8, 0, -1))
    for _ in range(n_ops):
        rd, rs1, rs2 = rnd.choice(REGS), rnd.choice(REGS), rnd.choice(REGS)
        kind = rnd.random()
        if memory_and_branches and kind < 0.3:
            # misaligned offsets on purpose; branches skip the next instruction
            off = rnd.randrange(0, 248)
            pick = rnd.random()
            if pick < 0.4:
                words.append(store(STORES[rnd.choice(sorted(STORES))], rs2, SCRATCH, off))
            elif pick < 0.8:
                words.append(load(LOADS[rnd.choice(sorted(LOADS))], rd, SCRATCH, off))
            else:
                words.append(skip_next_if(BRANCHES[rnd.choice(sorted(BRANCHES))], rs1, rs2))
        elif kind < 0.5:
            f7, f3 = OP[rnd.choice(sorted(OP))]
            words.append(rtype(f7, f3, 0x33, rd, rs1, rs2))
        elif kind < 0.75:
            f7, f3 = OP32[rnd.choice(sorted(OP32))]
            words.append(rtype(f7, f3, 0x3B, rd, rs1, rs2))
        else:
            words.append(itype(OPIMM[rnd.choice(sorted(OPIMM))], rd, rs1, rnd.getrandbits(12)))
    words.append(addi(SCRATCH, 0, 0))
    words.append(addi(2, 2, -256))
    words += [sd(r, 2, 8 * r) for r in range(3, 32)]
    words += [addi(10, 0, 1), addi(11, 2, 24), addi(12, 0, 8 * 29), addi(17, 0, 64), ECALL,
              addi(10, 0, 0), addi(17, 0, 93), ECALL]
    return words


@pytest.mark.parametrize("mixed", [False, True], ids=["alu", "alu-mem-branch"])
@pytest.mark.parametrize("seed", range(4))
def test_engines_agree_on_random_integer_code(seed, mixed, tmp_path, config_dir):
    guest = tmp_path / f"rand{seed}"
    guest.write_bytes(tiny_elf(program(seed, memory_and_branches=mixed)))
    image = tmp_path / f"rand{seed}.so"
    proc = run_tool([*aotc_cmd(), "build", "-q", str(guest), "-o", str(image)])
    assert proc.returncode == 0, proc.stderr
    outputs = {}
    for name, cmd in (("aot", [str(image)]), ("jit", ["--engine=jit", str(guest)]),
                      ("interp", ["--engine=interp", str(guest)])):
        if name == "aot":
            cmd = ["--fallback=none", *cmd]
        p = run_tool([*aotrun_cmd(), *cmd])
        assert p.returncode == 0, (name, p.stderr)
        outputs[name] = p.stdout
    assert len(outputs["aot"]) == 8 * 29
    qemu = shutil.which("qemu-riscv64")
    if qemu:
        guest.chmod(0o755)    # qemu-user refuses to load a file without execute permission
        outputs["qemu"] = subprocess.run([qemu, str(guest)], capture_output=True, timeout=60).stdout
    ref = outputs["aot"]
    for name, out in outputs.items():
        if out != ref:
            a = [int.from_bytes(ref[i:i + 8], "little") for i in range(0, len(ref), 8)]
            b = [int.from_bytes(out[i:i + 8], "little") for i in range(0, len(out), 8)]
            diff = [(f"x{i + 3}", hex(x), hex(y)) for i, (x, y) in enumerate(zip(a, b)) if x != y]
            pytest.fail(f"{name} differs from aot: {diff[:5]}")
