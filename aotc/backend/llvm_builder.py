"""``LLVMBuilder``: the Builder protocol, emitting LLVM IR text for one block.

Each guest block becomes one LLVM function ``@b_<pc>(ptr %st, ptr %mem, ...)``
in the block calling convention (``BLOCK_CC``, aotc/backend/abi.py: some guest
registers are arguments and return values).  The other guest registers are
read from the state struct at first use, kept as SSA values while the block
runs, and the dirty ones are stored back once at each exit.
Direct branches to other translated blocks are ``musttail`` calls, so chained
blocks never return to the dispatcher; indirect branches probe the image's
native hash table inline and tail-call the hit, or return to the dispatcher.

IR is produced as text (much faster than building llvmlite.ir objects) and
is the only artefact of this module: parsing, optimising and emitting objects
is ``aotc.backend.compile``'s job.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from aotc.backend.abi import PASSED_REGS, RETURNED_REGS
from aotc.backend.rmm import tie_correction
from aotc.errors import LoweringError
from aotc.ir.builder import ATOMIC_RMW_OPS, COUNTERS
from aotc.isa.riscv64.semantics.rvf import CANONICAL_NAN as _CANONICAL_NAN
from aotc.isa.riscv64.state import (
    EXIT_BREAK,
    EXIT_CONTINUE,
    EXIT_FENCE_I,
    EXIT_FP_MODE,
    EXIT_INTERPRET,
    EXIT_INTERRUPT,
    EXIT_ILLEGAL,
    EXIT_MISS,
    EXIT_RETURN,
    EXIT_SYSCALL,
    OFFSETS,
)

_X0 = OFFSETS["x"]
_F0 = OFFSETS["f"]
_PC = OFFSETS["pc"]
_FCSR = OFFSETS["fcsr"]
_RES = OFFSETS["reservation"]
_FAULT_PC = OFFSETS["fault_pc"]
_EXIT_INFO = OFFSETS["exit_info"]
_RES_VALUE = OFFSETS["reservation_value"]
_SP_LIMIT = OFFSETS["host_sp_limit"]
_INTERRUPT = OFFSETS["interrupt"]
_TIME_TSC0 = OFFSETS["time_tsc0"]
_TIME_MULT = OFFSETS["time_mult"]
_TIME_BASE = OFFSETS["time_base"]

# Round-to-integral (constrained) intrinsic per static rounding mode; DYN uses
# nearbyint, which rounds with the host FPU's current mode: the guest's frm
# while it runs.
_ROUND_OP = {0: "roundeven", 1: "trunc", 2: "floor", 3: "ceil", 4: "round"}
RM_DYN = 7
RM_RMM = 4
# x86 MXCSR rounding-control bits per RISC-V static rounding mode.  RMM (ties
# to max magnitude) has no SSE equivalent: it runs as RNE and exact ties are
# then moved away from zero (aotc/backend/rmm.py).
_RC_OF_RM = {0: 0x0000, 1: 0x6000, 2: 0x2000, 3: 0x4000, 4: 0x0000}

# Host FPU helpers shared by every module (internal, inlined where hot).
# aotc_read_mxcsr / aotc_fflags_of: MXCSR, its sticky flags as fflags bits.
# aotc_set_host_frm(fcsr, current MXCSR): MXCSR := all exceptions masked, rounding from fcsr.frm,
#   flags cleared (they now live in the stored fcsr).  Lazy: the (serialising)
#   MXCSR write is skipped when the rounding control is already right and
#   every host flag set is also set in the new fcsr, since the guest's flags
#   are always fcsr's | the host's (glibc's frflags ... fsflags pairs around
#   a comparison, e.g. in sqrt, then cost one stmxcsr each).
# aotc_push_rc / aotc_pop_rc: switch rounding control for one operation.
_MXCSR_HELPERS = r"""declare void @llvm.x86.sse.stmxcsr(ptr)
declare void @llvm.x86.sse.ldmxcsr(ptr)
define internal i64 @aotc_fflags_of(i32 %m) alwaysinline nounwind {
  %m64 = zext i32 %m to i64
  %nv = and i64 %m64, 1
  %nv1 = shl i64 %nv, 4
  %dz = and i64 %m64, 4
  %dz1 = shl i64 %dz, 1
  %of = and i64 %m64, 8
  %of1 = lshr i64 %of, 1
  %uf = and i64 %m64, 16
  %uf1 = lshr i64 %uf, 3
  %nx = and i64 %m64, 32
  %nx1 = lshr i64 %nx, 5
  %a = or i64 %nv1, %dz1
  %b = or i64 %a, %of1
  %c = or i64 %b, %uf1
  %d = or i64 %c, %nx1
  ret i64 %d
}
define internal i32 @aotc_read_mxcsr() alwaysinline nounwind {
  %p = alloca i32
  call void @llvm.x86.sse.stmxcsr(ptr %p)
  %m = load i32, ptr %p
  ret i32 %m
}
define internal void @aotc_set_host_frm(i64 %fcsr, i32 %old) alwaysinline nounwind {
  %p = alloca i32
  %frm = lshr i64 %fcsr, 5
  %f = and i64 %frm, 7
  %rc = call i32 @aotc_rc_of_frm(i64 %f)
  %m = or i32 8064, %rc
  %ctl = and i32 %old, -64
  %same = icmp eq i32 %ctl, %m
  %h = call i64 @aotc_fflags_of(i32 %old)
  %keep = xor i64 %fcsr, -1
  %stale = and i64 %h, %keep
  %clean = icmp eq i64 %stale, 0
  %skip = and i1 %same, %clean
  br i1 %skip, label %done, label %set
set:
  store i32 %m, ptr %p
  call void @llvm.x86.sse.ldmxcsr(ptr %p)
  br label %done
done:
  ret void
}
define internal i32 @aotc_rc_of_frm(i64 %f) alwaysinline nounwind {
  switch i64 %f, label %rne [ i64 1, label %rtz
                              i64 2, label %rdn
                              i64 3, label %rup ]
rne:
  ret i32 0
rtz:
  ret i32 24576
rdn:
  ret i32 8192
rup:
  ret i32 16384
}
define internal i32 @aotc_push_rc(i32 %rc) alwaysinline nounwind strictfp {
  %p = alloca i32
  call void @llvm.x86.sse.stmxcsr(ptr %p)
  %old = load i32, ptr %p
  %cleared = and i32 %old, -24577
  %new = or i32 %cleared, %rc
  store i32 %new, ptr %p
  call void @llvm.x86.sse.ldmxcsr(ptr %p)
  ret i32 %old
}
define internal void @aotc_pop_rc(i32 %saved) alwaysinline nounwind strictfp {
  %p = alloca i32
  call void @llvm.x86.sse.stmxcsr(ptr %p)
  %cur = load i32, ptr %p
  %flags = and i32 %cur, 63
  %rest = and i32 %saved, -64
  %m = or i32 %rest, %flags
  store i32 %m, ptr %p
  call void @llvm.x86.sse.ldmxcsr(ptr %p)
  ret void
}"""

HTAB_SYMBOL = "aotc_htab"
# Calling convention of every block function: LLVM's x86 regcall (arguments
# and results in up to eleven host registers each) with nothing
# callee-saved ("no_callee_saved_registers", on every definition,
# declaration and call site: a call site without it would assume rbx, rbp,
# r15 and xmm8-15 preserved), so region functions push and pop nothing and
# a host call spills only what is live across it.  In image code the guest
# registers of abi.PASSED_REGS are arguments (after the state) and those of
# abi.RETURNED_REGS return values (after the exit code); every other
# register is in the state at each call and exit (``Convention``, below).
# The native dispatcher enters through a small trampoline that saves the C
# ABI's callee-saved registers and moves the passed registers between the
# state and host registers (runtime/native/aotrt.c).
BLOCK_CC = "x86_regcallcc"
# Attribute group (compile._FOOTER) of block declarations and call sites.
_NO_CSR = " #7"


@dataclass(frozen=True, slots=True)
class Convention:
    """Which guest registers a block function takes as arguments (after the
    state and the arena) and gives back (after the exit code)."""

    passed: tuple[int, ...]
    returned: tuple[int, ...]

    @property
    def ret_type(self) -> str:
        return "{ " + ", ".join(["i64"] * (1 + len(self.returned))) + " }"

    @property
    def param_types(self) -> str:
        return "ptr" + ", i64" * len(self.passed)


# Image code: the registers of abi.py in host registers.  JIT code: every
# register in the state (its functions are per block, so a register passed
# through each one would be spilled and reloaded around every loop trip);
# it is entered only from the dispatcher, through a trampoline of its own.
IMAGE_CONVENTION = Convention(PASSED_REGS, RETURNED_REGS)
STATE_CONVENTION = Convention((), ())

# Region-mode alloca keys besides the registers (x: 0-31, f: 32-63).
_KEY_FCSR = 64
_KEY_RES = 65
_EXIT_FLUSH = ";exit-flush"
_RELOAD = ";reload"

# Call-site attributes (attributes #6, compile._FOOTER) of an inline asm
# without side effects: it reads and writes no memory, as clang marks an asm
# without a "memory" clobber.  Without them LLVM must assume the call may
# write any memory, so every such asm (the f-register movq, the opaque
# copies) was a barrier to load forwarding, LICM and CSE.  Side-effecting
# asm keeps no attributes: it orders FP operations against MXCSR accesses.
_PURE_ASM = " #6"


# The x86 condition (asm flag output) of ``ucomis[sd] a, b`` (AT&T operand
# order: b is compared with a) that is a pred b, for ordered operands.
_UCOMI_FLAG = {"olt": "a", "ole": "ae", "oeq": "e"}


# Largest |immediate| a load or store may add after the base register is
# wrapped into the arena: the guards below and above it are 64 KiB, RISC-V
# immediates are 12 bits.
_MAX_DISP = 2048
# Range checks of guest accesses (``_host_ptr``).  A value's *distance* is a
# bound D with -D <= v < 2**32 + D: an access ``imm(v)`` lands in the guest
# space or in a 64 KiB guard beside it (and faults there at its true
# address) while D + |imm| <= _NEAR_SAFE.  A register read at a block's
# entry may be at most _NEAR_ENTRY away when the block is entered: the
# block's entry check (``_entry_check``) makes that so, or an in-region
# branch that already knows it (a loop's back edge after an access through
# the register) skips the check.
_NEAR_SAFE = (1 << 16) - (1 << 12)
_NEAR_ENTRY = 1 << 14
_SP = 2          # x2: near at every block entry (``_ensure_sp``), never in an entry check


def _is_literal(name: str) -> bool:
    return name.lstrip("-").isdigit()


def _pure(effect: str) -> str:
    return "" if effect else _PURE_ASM


def _key_offset(key: int) -> int:
    if key < 32:
        return _X0 + 8 * key
    if key < 64:
        return _F0 + 8 * (key - 32)
    return _FCSR if key == _KEY_FCSR else _RES


def _label(pc: int) -> str:
    return f"bb_{pc:x}"


def _check_label(pc: int) -> str:
    """Block ``pc``'s entry check (region mode), before ``_label(pc)``."""
    return f"chk_{pc:x}"


@dataclass(frozen=True, slots=True)
class _EntryCheck:
    """Where block ``pc``'s entry check goes (``LLVMBuilder._entry_check``,
    filled in by ``finish`` once the block's accesses are known)."""

    pc: int


@dataclass(frozen=True, slots=True)
class V:
    """An SSA value: its IR name and type (``i64``, ``i1``, ``float``...)."""

    name: str
    ty: str

    @property
    def bits(self) -> int:
        if self.ty == "float":
            return 32
        if self.ty == "double":
            return 64
        return int(self.ty[1:])

    def __str__(self) -> str:
        return self.name


# Guest memory: x86's %gs segment, whose base the runtime sets to the arena
# (aotrt.c), so an access is ``%gs:imm(zext32(base))`` and no host register
# holds the arena's address.
_GUEST_PTR = "ptr addrspace(256)"
# A pointer into the arena is not "based on" any argument, so LLVM's alias
# analysis no longer sees that a guest access and a state access (the
# noalias %st) never overlap; type-based alias metadata (defined in
# compile.py's _FOOTER) tells it: every access has the type "guest" or
# "state" (allocas, which LLVM promotes away, count as state).  Not scoped
# noalias metadata: the inliner clones a callee's scopes, so a tail-called
# region inlined into its caller would no longer be told apart from it.
_GUEST_TBAA = ", !tbaa !10"
_STATE_TBAA = ", !tbaa !9"


def _typed(line: str) -> str:
    """``line`` with its memory access's alias type, if it is a load or store."""
    body = line.lstrip()
    if not (body.startswith("store ") or " = load " in line):
        return line
    return line + (_GUEST_TBAA if _GUEST_PTR in line else _STATE_TBAA)


def _fconst(x: float) -> str:
    """An FP literal LLVM accepts for both float and double (exact hex double)."""
    import struct

    return "0x%016X" % struct.unpack("<Q", struct.pack("<d", x))[0]


def _ity(bits: int) -> str:
    return f"i{bits}"


def _fty(bits: int) -> str:
    return "float" if bits == 32 else "double"


def _mangle(ty: str) -> str:
    """A type as LLVM intrinsic names spell it (float -> f32, double -> f64)."""
    return {"float": "f32", "double": "f64"}.get(ty, ty)


def block_symbol(pc: int) -> str:
    return f"b_{pc:x}"


def block_declaration(pc: int, cc: Convention = IMAGE_CONVENTION) -> str:
    """The declaration of block ``pc``'s function, for a module that calls
    or refers to it without defining it."""
    return f"declare hidden {BLOCK_CC} {cc.ret_type} @{block_symbol(pc)}({cc.param_types}){_NO_CSR}"


def block_definition_prefix(pc: int, hidden: bool = True, cc: Convention = IMAGE_CONVENTION) -> str:
    """The text a block function's definition starts with (up to its first parameter)."""
    return f"define {'hidden ' if hidden else ''}{BLOCK_CC} {cc.ret_type} @{block_symbol(pc)}("


class LLVMBuilder:
    """Emit one guest block as one LLVM function."""

    def __init__(self, entry_pc: int, known_blocks: "set[int] | frozenset[int]",
                 arena_bits: int = 32, htab_mask: int = 0,
                 dispatch_only: "frozenset[int]" = frozenset(),
                 fault_pc_stores: bool = True, noinline: bool = False,
                 region: "frozenset[int] | None" = None, optnone: bool = False,
                 fp_env: bool = False, convention: Convention = IMAGE_CONVENTION,
                 alias_types: bool = True) -> None:
        self.entry_pc = entry_pc
        # Alias metadata (_typed) only helps optimised code: -O0 JIT code
        # and optnone copies would only spend compile time parsing it.
        self.alias_types = alias_types and not optnone
        self.cc = convention
        self._passed = frozenset(convention.passed)
        # Region mode with CSR accesses inside (FP-environment reads/writes
        # are ordinary instructions of the region rather than function
        # boundaries): every FP operand enters the FP domain through a
        # side-effecting (empty) asm and every DYN result is pinned by one
        # (``_keep``), so LLVM cannot move an FP operation across the MXCSR
        # accesses, which are side effects too.  The function is never
        # inlined and never inlines its successors.
        self.fp_env = fp_env
        # Region mode (``region`` = the member block pcs, head = entry_pc):
        # the blocks are lifted one after another (``begin_block``) into one
        # function; guest registers live in allocas (promoted to SSA across
        # the whole region by LLVM), branches between members are ``br`` and
        # only region exits store the registers back to the state.
        self.region = region
        # A stand-alone copy of a block that is normally part of a region,
        # entered only on rare paths: not worth optimising.
        self.optnone = optnone
        self._used: set[int] = set()      # alloca keys read (x 0-31, f 32-63, fcsr, reservation)
        self._written: set[int] = set()   # alloca keys written
        self.known = known_blocks
        # Blocks entered only through the dispatcher (never chained or inlined):
        # those starting with a CSR access, so every FP operation before it
        # has completed (and raised its flags) when it reads the host FPU.
        self.dispatch_only = dispatch_only
        # How a fault finds its guest pc: a volatile store of the pc before
        # every memory access (JIT code), or, for ahead-of-time code, a DWARF
        # line table (line = guest pc) read only when a fault happens.  The
        # stores block LLVM's loop optimisations, so AOT code avoids them.
        self.fault_pc_stores = fault_pc_stores
        # An FP-environment barrier: a block that starts with a CSR access or
        # right after one is never inlined into its predecessor, so LLVM cannot
        # move FP operations across the MXCSR read or write (the call boundary
        # orders them), while the predecessor still reaches it by a tail call.
        self.noinline = noinline
        self.arena_bits = arena_bits
        self.htab_mask = htab_mask
        self.lines: list[str] = []
        self._n = 0
        self._regs: dict[int, V] = {}       # SSA cache of x and f registers (f at 32+)
        self._dirty: set[int] = set()
        self._fcsr: V | None = None
        self._fcsr_dirty = False
        self._res: V | None = None
        self._res_dirty = False
        self._mxcsr: "tuple[V, int] | None" = None   # last MXCSR read, at which _fp_ops
        self._fp_ops = 0
        # In region mode f registers live in double allocas, so LLVM keeps
        # them in XMM registers across blocks and loops (loads, stores,
        # phis and bitcasts of doubles never change bits; NaN canonicalisation
        # is explicit, below).
        # NaN canonicalisation stays off the FP data path: an arithmetic
        # result (x86 NaN results are quiet) is written as canonical(f) =
        # select(f uno f, canonical NaN, bits(f)); an FP operation that reads
        # those bits back uses f itself, since it cannot tell a quiet NaN's
        # payload and canonicalises its own result.  Bit-level readers
        # (fsgnj, fmv, stores, fclass) still see canonical(f).
        self._quiet: set[str] = set()          # FP operation results (_keep, _rounded): never sNaN
        self._bits_of: dict[str, V] = {}       # bitcast_to_int result -> its float
        self._uno_of: dict[str, V] = {}        # fcmp uno f, f result -> f
        self._canonical_of: dict[str, V] = {}  # canonical(f) bits -> f
        self._double_of: dict[str, V] = {}     # f register bits loaded from a double alloca -> the double
        self._int_of: dict[str, V] = {}        # bitcast_to_float result -> the integer bits it came from
        self._disp_of: dict[str, tuple[V, int]] = {}   # base + constant result -> (base, constant)
        self._sqrt_of: set[str] = set()        # results of an inline (DYN) sqrt
        self._pc = entry_pc
        self._next_pc = entry_pc
        self._raw = 0
        self.ended = False
        self.callees: set[int] = set()       # direct targets this block tail-calls
        self.intrinsics: set[str] = set()    # declarations this block needs
        self.uses_htab = False
        self._oob: list[tuple[str, str, int]] = []   # out-of-range checks: (label, address, pc)
        # Entry range checks (``_host_ptr``): registers each block relies on
        # being near the guest space at its entry; the block being lifted;
        # distances of values known near; register values read at the
        # block's entry.
        self._req: dict[int, set[int]] = {entry_pc: set()}
        self._block_pc = entry_pc
        self._near: dict[str, int] = {}
        self._entry_key: dict[str, int] = {}
        # In-region branches (_entry_label): source block, target, conditions.
        self._edges: dict[str, tuple[int, int, dict[int, int | None]]] = {}
        self._polls: dict[int, tuple[int, int]] = {}       # safe point n → in-region back edge
        # Per block, for _drop_inner_polls: registers written, the entry
        # registers loads went through (None: an address from no entry
        # register, e.g. a constant), and whether it writes guest memory.
        self._block_writes: dict[int, set[int]] = {}
        self._block_load_bases: dict[int, set[int | None]] = {}
        self._block_stores: set[int] = set()
        self.exit_after_insn = False   # set by instructions that must end the block
        # The compare of a flag-neutral compare (aotc.isa.riscv64.fflags_idiom)
        # is lifted with its IEEE flags discarded: no flags raised in software,
        # and compares done on the bits (an x86 compare would set MXCSR flags).
        self.discard_flags = False
        self._seed_passed()

    # -- bookkeeping ------------------------------------------------------
    def _seed_passed(self) -> None:
        """Block mode: the passed registers' values are the function's
        arguments (region mode keeps them in allocas, see ``finish``)."""
        if self.region is None:
            for i, key in enumerate(self.cc.passed):
                self._regs[key] = V(f"%k{i}", "i64")
                self._entry_key[f"%k{i}"] = key

    def begin_block(self, pc: int) -> None:
        """Region mode: start lifting member block ``pc`` (a new basic block)."""
        if self.region is None:
            raise LoweringError(pc, "?", "begin_block outside region mode")
        self.lines.append(f"{_check_label(pc)}:")
        self.lines.append(_EntryCheck(pc))
        self.lines.append(f"{_label(pc)}:")
        self._reset(pc)

    def rollback(self, mark: int, pc: int) -> None:
        """Drop everything emitted since ``mark`` and restart block ``pc``."""
        del self.lines[mark:]
        if self.region is not None:
            self.begin_block(pc)
        else:
            self._reset(pc)

    def _reset(self, pc: int) -> None:
        self._mxcsr = None
        self._regs = {}
        self._block_pc = pc
        self._req[pc] = set()
        self._near = {}
        self._entry_key = {}
        self._seed_passed()
        self._dirty = set()
        self._fcsr = None
        self._fcsr_dirty = False
        self._res = None
        self._res_dirty = False
        self._pc = self._next_pc = pc
        self.ended = False
        self.exit_after_insn = False

    def set_insn(self, pc: int, next_pc: int, raw: int = 0) -> None:
        self._pc, self._next_pc, self._raw = pc, next_pc, raw
        self.lines.append(f";@{pc}")

    @property
    def pc(self) -> int:
        return self._pc

    @property
    def next_pc(self) -> int:
        return self._next_pc

    def _tmp(self) -> str:
        self._n += 1
        return f"%t{self._n}"

    def _emit(self, text: str, ty: str) -> V:
        name = self._tmp()
        self.lines.append(f"  {name} = {text}")
        return V(name, ty)

    def _slot(self, offset: int) -> str:
        name = self._tmp()
        self.lines.append(f"  {name} = getelementptr inbounds i8, ptr %st, i64 {offset}")
        return name

    def _declare(self, decl: str) -> None:
        self.intrinsics.add(decl)

    def count_block(self, engine: str, insns: int) -> None:
        """Add one block of ``insns`` instructions to the state's executed-code
        counters for ``engine`` ("aot" or "jit"): --stats counting code."""
        for field, inc in ((f"{engine}_blocks", 1), (f"{engine}_insns", insns)):
            slot = self._slot(OFFSETS[field])
            old = self._emit(f"load i64, ptr {slot}, align 8", "i64")
            new = self._emit(f"add i64 {old}, {inc}", "i64")
            self.lines.append(f"  store i64 {new}, ptr {slot}, align 8")

    # -- constants and widths ----------------------------------------------
    def const(self, value: int, bits: int = 64) -> V:
        value &= (1 << bits) - 1
        if bits == 1:
            return V("true" if value else "false", "i1")
        if value >= 1 << (bits - 1):
            value -= 1 << bits
        return V(str(value), _ity(bits))

    def zext(self, v: V, bits: int) -> V:
        if v.bits == bits:
            return v
        return self._emit(f"zext {v.ty} {v} to i{bits}", _ity(bits))

    def sext(self, v: V, bits: int) -> V:
        if v.bits == bits:
            return v
        return self._emit(f"sext {v.ty} {v} to i{bits}", _ity(bits))

    def trunc(self, v: V, bits: int) -> V:
        if v.bits == bits:
            return v
        return self._emit(f"trunc {v.ty} {v} to i{bits}", _ity(bits))

    # -- registers --------------------------------------------------------
    def _load_reg(self, key: int, offset: int) -> V:
        """Load a register's current value: from the state, or in region
        mode from its alloca."""
        if self.region is not None:
            self._used.add(key)
            if 32 <= key < 64:
                # f registers live in double allocas (their SSA values stay
                # in XMM registers across the region; bits are preserved).
                # Bit-level readers get the bits through a real movq that
                # LLVM cannot see through: it would otherwise turn integer
                # tests on bitcast(double) into FP compares (fclass, NaN-box
                # checks), which raise invalid on a signalling NaN.
                d = self._emit(f"load double, ptr %a{key}, align 8", "double")
                v = self._emit(f'call i64 asm "movq $1, $0", "=r,x"(double {d}){_PURE_ASM}', "i64")
                self._double_of[v.name] = d
                return v
            return self._emit(f"load i64, ptr %a{key}, align 8", "i64")
        slot = self._slot(offset)
        return self._emit(f"load i64, ptr {slot}, align 8", "i64")

    def _get(self, key: int, offset: int) -> V:
        v = self._regs.get(key)
        if v is None:
            v = self._load_reg(key, offset)
            self._regs[key] = v
            if key < 32:
                self._entry_key[v.name] = key      # the register's value at the block's entry
        return v

    def get_x(self, r: int) -> V:
        if r == 0:
            return V("0", "i64")
        return self._get(r, _X0 + 8 * r)

    def set_x(self, r: int, v: V) -> None:
        if r == 0:
            return
        self._check(v, "i64")
        self._regs[r] = v
        self._dirty.add(r)

    def get_f(self, r: int) -> V:
        return self._get(32 + r, _F0 + 8 * r)

    def set_f(self, r: int, v: V) -> None:
        self._check(v, "i64")
        if self.fp_env:
            # Compute the result where the instruction is: later users see an
            # opaque copy, so LLVM cannot move or duplicate the FP compares
            # and operations behind it past a later fcsr write, where their
            # invalid flag would land in the new fcsr.
            f = self._canonical_of.get(v.name)
            v = self._emit(f'call i64 asm sideeffect "", "=r,0"(i64 {v})', "i64")
            if f is not None:
                self._canonical_of[v.name] = f
        self._regs[32 + r] = v
        self._dirty.add(32 + r)

    def _stored_fcsr(self) -> V:
        if self._fcsr is None:
            self._fcsr = self._load_reg(_KEY_FCSR, _FCSR)
        return self._fcsr

    def get_fcsr(self) -> V:
        """fcsr with the IEEE flags the host FPU collected so far folded in
        (MXCSR is read again only if an FP operation ran since the last read:
        the guest's flags are always the stored fcsr's | the host's)."""
        fcsr = self._stored_fcsr()
        if self._mxcsr is not None and self._mxcsr[1] == self._fp_ops:
            return fcsr
        self._declare(_MXCSR_HELPERS)
        m = self._emit("call i32 @aotc_read_mxcsr()", "i32")
        flags = self._emit(f"call i64 @aotc_fflags_of(i32 {m})", "i64")
        self._mxcsr = (m, self._fp_ops)
        self._fcsr = self._emit(f"or i64 {fcsr}, {flags}", "i64")
        self._fcsr_dirty = True
        return self._fcsr

    def set_fcsr(self, v: V) -> None:
        """Write fcsr: the host FPU takes the new rounding mode, flags restart.

        The block ends after this instruction.  Its successor is a
        non-inlined barrier block (block mode), or the region's FP operations
        are ordered against the MXCSR accesses (``fp_env``), so no FP
        operation can be scheduled across the mode change.  The MXCSR write
        itself is skipped when it would change nothing the guest can see."""
        self._fcsr = self._emit(f"and i64 {v}, 255", "i64")
        self._fcsr_dirty = True
        self._declare(_MXCSR_HELPERS)
        if self._mxcsr is not None and self._mxcsr[1] == self._fp_ops:
            old = self._mxcsr[0]
        else:
            old = self._emit("call i32 @aotc_read_mxcsr()", "i32")
        self.lines.append(f"  call void @aotc_set_host_frm(i64 {self._fcsr}, i32 {old})")
        self._mxcsr = None   # MXCSR may have changed: read it again when needed
        self.exit_after_insn = True

    def get_reservation(self) -> V:
        if self._res is None:
            self._res = self._load_reg(_KEY_RES, _RES)
        return self._res

    def set_reservation(self, v: V) -> None:
        self._res = v
        self._res_dirty = True

    def get_reservation_value(self) -> V:
        """A plain state slot (read by SC only, written by LR only)."""
        slot = self._slot(_RES_VALUE)
        return self._emit(f"load i64, ptr {slot}, align 8", "i64")

    def set_reservation_value(self, v: V) -> None:
        self._check(v, "i64")
        slot = self._slot(_RES_VALUE)
        self.lines.append(f"  store i64 {v}, ptr {slot}, align 8")

    def _check(self, v: V, ty: str) -> None:
        if v.ty != ty:
            raise LoweringError(self._pc, "?", f"expected {ty}, got {v.ty}")

    def _flush(self) -> None:
        """Store every dirty register back (at each block end): to the state,
        or in region mode to its alloca (``_exit_flush`` then writes the
        allocas to the state at the region's exits)."""
        self._store_dirty()
        self._dirty = set()
        self._fcsr_dirty = self._res_dirty = False

    def _store_dirty(self) -> None:
        dirty = [(key, self._regs[key]) for key in sorted(self._dirty)]
        if self._fcsr_dirty and self._fcsr is not None:
            dirty.append((_KEY_FCSR, self._fcsr))
        if self._res_dirty and self._res is not None:
            dirty.append((_KEY_RES, self._res))
        for key, v in dirty:
            if self.region is not None:
                self._written.add(key)
                self._block_writes.setdefault(self._block_pc, set()).add(key)
                if 32 <= key < 64:
                    d = self._double_of.get(v.name)
                    if d is None:
                        d = self._emit(f"bitcast i64 {v} to double", "double")
                    self.lines.append(f"  store double {d}, ptr %a{key}, align 8")
                else:
                    self.lines.append(f"  store i64 {v}, ptr %a{key}, align 8")
            elif key not in self._passed:    # passed registers leave as arguments (_ret stores them)
                slot = self._slot(_key_offset(key))
                self.lines.append(f"  store i64 {v}, ptr {slot}, align 8")

    def _exit_flush(self) -> None:
        """Region mode, at an exit: every register the region writes goes back
        to the state (filled in by ``finish``, when that set is known)."""
        if self.region is not None:
            self.lines.append(_EXIT_FLUSH)

    # -- integer arithmetic -------------------------------------------------
    def _bin(self, op: str, a: V, b: V) -> V:
        if a.ty != b.ty:
            raise LoweringError(self._pc, op, f"operand types differ: {a.ty} vs {b.ty}")
        return self._emit(f"{op} {a.ty} {a}, {b}", a.ty)

    def add(self, a: V, b: V) -> V:
        r = self._bin("add", a, b)
        if _is_literal(b.name) and a.ty == "i64":
            self._disp_of[r.name] = (a, int(b.name))
        return r

    def sub(self, a: V, b: V) -> V:
        return self._bin("sub", a, b)

    def mul(self, a: V, b: V) -> V:
        return self._bin("mul", a, b)

    def and_(self, a: V, b: V) -> V:
        return self._bin("and", a, b)

    def or_(self, a: V, b: V) -> V:
        return self._bin("or", a, b)

    def xor(self, a: V, b: V) -> V:
        return self._bin("xor", a, b)

    def shl(self, a: V, amount: V) -> V:
        return self._bin("shl", a, amount)

    def lshr(self, a: V, amount: V) -> V:
        return self._bin("lshr", a, amount)

    def ashr(self, a: V, amount: V) -> V:
        return self._bin("ashr", a, amount)

    def udiv(self, a: V, b: V) -> V:
        return self._bin("udiv", a, b)

    def sdiv(self, a: V, b: V) -> V:
        return self._bin("sdiv", a, b)

    def urem(self, a: V, b: V) -> V:
        return self._bin("urem", a, b)

    def srem(self, a: V, b: V) -> V:
        return self._bin("srem", a, b)

    def icmp(self, pred: str, a: V, b: V) -> V:
        if a.ty != b.ty:
            raise LoweringError(self._pc, "icmp", f"operand types differ: {a.ty} vs {b.ty}")
        return self._emit(f"icmp {pred} {a.ty} {a}, {b}", "i1")

    def select(self, cond: V, a: V, b: V) -> V:
        if a.ty != b.ty:
            raise LoweringError(self._pc, "select", f"operand types differ: {a.ty} vs {b.ty}")
        r = self._emit(f"select i1 {cond}, {a.ty} {a}, {a.ty} {b}", a.ty)
        f = self._uno_of.get(cond.name)
        if (f is not None and f.name in self._quiet and self._bits_of.get(b.name) == f
                and a == self.const(_CANONICAL_NAN[f.bits], f.bits)):
            self._canonical_of[r.name] = f
        return r

    def _bitcount(self, name: str, v: V, extra: str = "") -> V:
        self._declare(f"declare {v.ty} @llvm.{name}.{v.ty}({v.ty}{', i1' if extra else ''})")
        return self._emit(f"call {v.ty} @llvm.{name}.{v.ty}({v.ty} {v}{extra})", v.ty)

    def ctlz(self, v: V) -> V:
        return self._bitcount("ctlz", v, ", i1 false")

    def cttz(self, v: V) -> V:
        return self._bitcount("cttz", v, ", i1 false")

    def ctpop(self, v: V) -> V:
        return self._bitcount("ctpop", v)

    # -- memory -----------------------------------------------------------
    def _host_ptr(self, addr: V) -> str:
        # Record the guest pc for fault reports (volatile: must survive DSE).
        if self.fault_pc_stores:
            slot = self._slot(_FAULT_PC)
            self.lines.append(f"  store volatile i64 {self._pc}, ptr {slot}, align 8")
        # ``imm(r)`` is mem + wrap(r) + imm, not mem + wrap(r + imm): one
        # wrap per base value serves every access through it (the immediate
        # is the x86 displacement), and LLVM sees 8(sp) and 16(sp) as
        # neighbours, so it can merge their accesses.  The arena's guards
        # (runtime/guest_memory.py) catch an access that the immediate takes
        # past either end.
        base, imm = self._disp_of.get(addr.name, (addr, 0))
        if not -_MAX_DISP <= imm < _MAX_DISP:
            base, imm = addr, 0
        if self.arena_bits == 32:
            near = self._distance(base)
            if near is not None and near[0] + abs(imm) <= _NEAR_SAFE:
                if near[1] is not None:
                    self._req[self._block_pc].add(near[1])   # the entry check covers it
                off = base
            else:
                off = self._in_guest_space(base, imm)
            # Code after the access runs only if it did not fault: base + imm
            # was in the guest space.
            self._near[base.name] = min(self._near.get(base.name, _NEAR_SAFE), abs(imm))
        else:
            off = self._emit(f"and i64 {base}, {(1 << self.arena_bits) - 1}", "i64")
        ptr = self._emit(f"getelementptr i8, {_GUEST_PTR} null, i64 {off}", _GUEST_PTR)
        if imm:
            ptr = self._emit(f"getelementptr i8, {_GUEST_PTR} {ptr}, i64 {imm}", _GUEST_PTR)
        return ptr.name

    def _distance(self, v: V) -> "tuple[int, int | None] | None":
        """How far ``v`` may lie outside the guest space, as far as the block
        knows: (bound, the register whose entry value it relies on, if
        any), or None.  Follows ``v = w + constant`` chains back to a value
        known near (an access base, a checked value), a literal, or a
        register's value at the block's entry (bound _NEAR_ENTRY, if the
        block's entry check takes that register)."""
        total, name = 0, v.name
        for _ in range(32):
            d = self._near.get(name)
            if d is not None:
                return d + total, None
            key = self._entry_key.get(name)
            if key == _SP:
                return _NEAR_ENTRY + total, None     # near at every entry (``_ensure_sp``)
            if key is not None:
                return _NEAR_ENTRY + total, key
            if _is_literal(name):
                c = int(name)
                return total + (-c if c < 0 else max(0, c - (1 << 32) + 1)), None
            link = self._disp_of.get(name)
            if link is None:
                return None
            total += abs(link[1])
            name = link[0].name
        return None

    def _entry_label(self, target: int) -> str:
        """Where an in-region branch to ``target`` enters it: a placeholder
        that ``finish`` resolves (``_resolve_edges``), once every block's
        entry check is known, to the target's body when every register its
        check takes is near here, else to its check.  Recorded per
        register: near whatever this block's entry held (None), near if
        this block's check takes register k (k: unchanged since the entry,
        or derived from k's entry value), or not known near (absent)."""
        conds: dict[int, int | None] = {}
        for key in range(1, 32):
            v = self._regs.get(key)
            if v is None:
                conds[key] = key
                continue
            d = self._distance(v)
            if d is not None and d[0] <= _NEAR_ENTRY:
                conds[key] = d[1]
        self._n += 1
        mark = f"edge.{self._n}"
        self._edges[mark] = (self._block_pc, target, conds)
        return mark

    def _resolve_edges(self) -> None:
        """Give every in-region branch its label (``_entry_label``).

        First, inside each loop, a block takes over the checks of the block
        it branches forward to, for registers it passes on unchanged (or
        derives by a constant), back to the loop's header: the header's
        check runs once per entry into the loop (the back edges skip it),
        and the loop's blocks are then entered past theirs.  A register so
        checked that the loop does not reach through after all costs, at
        worst, one block in the interpreter."""
        if not self._edges:
            return
        order = {pc: i for i, pc in enumerate(self._req)}      # lifting order
        preds: dict[int, set[int]] = {}
        for src, target, _c in self._edges.values():
            preds.setdefault(target, set()).add(src)
        loops = []                                             # natural loops' bodies
        for src, target, _c in self._edges.values():
            if order.get(target, -1) <= order.get(src, -1):
                body, todo = {target}, [src]
                while todo:
                    n = todo.pop()
                    if n not in body:
                        body.add(n)
                        todo.extend(preds.get(n, ()))
                loops.append(body)
        changed = True
        while changed:
            changed = False
            for src, target, conds in self._edges.values():
                if order.get(target, -1) <= order[src] or not any(src in b and target in b for b in loops):
                    continue
                for key in self._req.get(target, ()):
                    need = conds.get(key, -1)
                    if need is not None and need != -1 and need not in self._req[src]:
                        self._req[src].add(need)
                        changed = True
        out = []
        for ln in self.lines:
            if isinstance(ln, str) and ln.startswith("  br label %edge."):
                src, target, conds = self._edges[ln[len("  br label %"):]]
                have = self._req[src]
                ok = target in self._req and all(
                    key in conds and (conds[key] is None or conds[key] in have) for key in self._req[target])
                ln = f"  br label %{_label(target) if ok else _check_label(target)}"
            out.append(ln)
        self.lines = out

    def _drop_inner_polls(self) -> None:
        """No safe point on the back edge of a loop nested in another loop
        of the region that holds no loop itself (an innermost inner loop),
        unless it may spin on memory (``_may_spin``): a poll there keeps
        LLVM from vectorizing or otherwise optimising the loop where
        programs spend their time (matmul ran 2.5x slower), and the
        enclosing loop's back edge polls on every outer trip.  The cost:
        such an inner loop that never ends (one that writes memory or walks
        through it, nested in another loop in one region) is not
        interrupted until it ends (docs/architecture.md, "Threads and
        signals")."""
        preds: dict[int, set[int]] = {}
        for src, target, _c in self._edges.values():
            preds.setdefault(target, set()).add(src)
        bodies: dict[tuple[int, int], frozenset[int]] = {}
        for src, target in set(self._polls.values()):
            body, todo = {target}, [src]
            while todo:
                b = todo.pop()
                if b not in body:
                    body.add(b)
                    todo.extend(preds.get(b, ()))
            bodies[(src, target)] = frozenset(body)
        loops = set(bodies.values())
        drop = set()
        for n, edge in self._polls.items():
            body = bodies[edge]
            nested = any(body < other for other in loops)
            innermost = not any(other < body for other in loops)
            if nested and innermost and not self._may_spin(body):
                drop.add(n)
        out = []
        for ln in self.lines:
            if isinstance(ln, str) and " ; poll." in ln:
                n = int(ln.rsplit(" ; poll.", 1)[1])
                if n in drop:
                    if ln.lstrip().startswith("br i1"):
                        out.append(f"  br label %go{n}")
                    continue
                ln = ln.rsplit(" ; poll.", 1)[0]
            out.append(ln)
        self.lines = out

    def _may_spin(self, body: frozenset[int]) -> bool:
        """Whether a loop may wait on memory another thread or a handler
        writes: it writes no guest memory (no store, atomic or fence) and
        reads some address that stays the same on every trip (through an
        entry register the loop does not write, or a constant).  LLVM may
        hoist such a load out of the loop: only the safe point's compiler
        barrier keeps it in, so such a loop keeps its safe point."""
        if any(b in self._block_stores for b in body):
            return False
        written = set().union(*(self._block_writes.get(b, set()) for b in body))
        bases = set().union(*(self._block_load_bases.get(b, set()) for b in body))
        return any(k is None or k not in written for k in bases)

    def _ensure_sp(self, target: "int | V") -> None:
        """Before control leaves the block for ``target``: keep the stack
        pointer near the guest space at every block entry (the invariant
        that lets blocks access through sp without an entry check; the
        dispatcher checks it whenever Python hands control to translated
        code).  Only a block that moved sp somewhere not known near (rare:
        ``mv sp, a0``; an adjustment is followed by an access through sp)
        pays a check, whose failure leaves for the interpreter at
        ``target`` with the block's effects complete."""
        v = self._regs.get(_SP)
        if v is None:
            return
        d = self._distance(v)
        if d is not None and d[0] <= _NEAR_ENTRY:
            return
        self._n += 1
        n = self._n
        ok = self._emit(f"icmp ult i64 {v}, {1 << 32}", "i1")
        self.lines.append(f"  br i1 {ok}, label %spok{n}, label %spbad{n}, !prof !0")
        self.lines.append(f"spbad{n}:")
        self._exit(EXIT_INTERPRET, target)
        self.lines.append(f"spok{n}:")
        self._near[v.name] = 0

    def _entry_check(self, pc: int) -> list[str]:
        """Block ``pc``'s entry check, as lines: every register in
        ``_req[pc]`` below 2**32 (one or of their values, one compare), or
        leave for the interpreter at ``pc`` (EXIT_INTERPRET), which runs the
        block with exact faults; then on to the block's body."""
        keys = sorted(self._req.get(pc, ()))
        body = _label(pc) if self.region is not None else "body"
        if not keys:
            return [f"  br label %{body}"]
        saved_lines, saved_regs = self.lines, self._regs
        self.lines = []
        try:
            if self.region is None:
                # The function's entry: the passed registers are arguments.
                self._regs = {}
                self._seed_passed()
                vals = [self._regs[k] if k in self._regs else self._load_reg(k, _X0 + 8 * k) for k in keys]
            else:
                vals = [self._load_reg(k, _X0 + 8 * k) for k in keys]     # from the allocas
            acc = vals[0]
            for v in vals[1:]:
                acc = self._emit(f"or i64 {acc}, {v}", "i64")
            ok = self._emit(f"icmp ult i64 {acc}, {1 << 32}", "i1")
            self._n += 1
            fail = f"entryfail{self._n}"
            self.lines.append(f"  br i1 {ok}, label %{body}, label %{fail}, !prof !0")
            self.lines.append(f"{fail}:")
            self._exit(EXIT_INTERPRET, pc)
            return self.lines
        finally:
            self.lines, self._regs = saved_lines, saved_regs

    def _in_guest_space(self, base: V, imm: int) -> V:
        """``base``, after a check that it lies in the 4 GiB guest space.

        A base register at or above 2**32 (a wild pointer, a negative value)
        must fault like it does on hardware and in the interpreter, not wrap
        onto guest address ``base mod 2**32``: the unlikely edge goes to the
        function's out-of-range trap (``_oob_trap``) with the address.  The
        check is one compare-and-branch per base value (LLVM drops those a
        dominating check already made); past it ``base`` is the arena
        offset itself.  With ``|imm| < _MAX_DISP`` the access then lands in
        the guest space or in a guard beside it: an access just outside it
        faults there.  Page 0 (and so ``base + imm`` for a base just below
        2**64) is never mapped, so no access that the check refuses could
        have reached a mapped page."""
        self._n += 1
        n = self._n
        ok = self._emit(f"icmp ult i64 {base}, {1 << 32}", "i1")
        self.lines.append(f"  br i1 {ok}, label %in{n}, label %oob{n}, !prof !0")
        self.lines.append(f"oob{n}:")
        addr = self._emit(f"add i64 {base}, {imm}", "i64")
        self.lines.append("  br label %oobtrap")
        self._oob.append((f"oob{n}", addr.name, self._pc))
        self.lines.append(f"in{n}:")
        return base

    def _oob_trap(self) -> list[str]:
        """The out-of-range trap shared by a function's checks: ``ud2`` then
        a two-byte mark (never executed), the guest address in rax and the
        guest pc in rdx; aotrt.c's SIGILL handler reports it as a guest
        SIGSEGV at that address."""
        present = {ln[:-1] for ln in self.lines if ln.endswith(":")}
        preds = [(lbl, a, pc) for lbl, a, pc in self._oob if lbl in present]
        if not preds:
            return []
        addrs = ", ".join(f"[ {a}, %{lbl} ]" for lbl, a, _pc in preds)
        pcs = ", ".join(f"[ {pc}, %{lbl} ]" for lbl, _a, pc in preds)
        return ["oobtrap:",
                f"  %oob.addr = phi i64 {addrs}",
                f"  %oob.pc = phi i64 {pcs}",
                '  call void asm sideeffect "ud2; .byte 0x41, 0x4f", "{rax},{rdx}"'
                "(i64 %oob.addr, i64 %oob.pc)",
                "  unreachable"]

    def load(self, addr: V, bits: int) -> V:
        d = self._distance(addr)
        self._block_load_bases.setdefault(self._block_pc, set()).add(d[1] if d is not None else None)
        ptr = self._host_ptr(addr)
        return self._emit(f"load i{bits}, {_GUEST_PTR} {ptr}, align 1", _ity(bits))

    def store(self, addr: V, v: V) -> None:
        self._block_stores.add(self._block_pc)
        ptr = self._host_ptr(addr)
        self.lines.append(f"  store {v.ty} {v}, {_GUEST_PTR} {ptr}, align 1")

    # -- atomics ----------------------------------------------------------
    def _atomic_ptr(self, addr: V, bits: int) -> str:
        """The guest pointer of an atomic access: ``addr`` must be naturally
        aligned (RISC-V requires it of AMOs, LR/SC; LLVM of its atomics), a
        misaligned one goes to the out-of-range trap (SIGSEGV at ``addr``,
        as in the interpreter); then the checked path of every access."""
        self._n += 1
        n = self._n
        low = self._emit(f"and i64 {addr}, {bits // 8 - 1}", "i64")
        ok = self._emit(f"icmp eq i64 {low}, 0", "i1")
        self.lines.append(f"  br i1 {ok}, label %al{n}, label %mis{n}, !prof !0")
        self.lines.append(f"mis{n}:")
        self.lines.append("  br label %oobtrap")
        self._oob.append((f"mis{n}", addr.name, self._pc))
        self.lines.append(f"al{n}:")
        return self._host_ptr(addr)

    def atomic_rmw(self, op: str, addr: V, v: V, bits: int) -> V:
        self._block_stores.add(self._block_pc)
        if op not in ATOMIC_RMW_OPS:
            raise LoweringError(self._pc, op, "unknown atomic_rmw operation")
        self._check(v, _ity(bits))
        ptr = self._atomic_ptr(addr, bits)
        old = self._emit(f"atomicrmw {op} {_GUEST_PTR} {ptr}, {v.ty} {v} seq_cst, align {bits // 8}",
                         v.ty)
        # The old value through an opaque copy (no instruction): when LLVM
        # sees only one bit or the flags of it used, the x86 backend turns
        # the atomicrmw into its lock bts/btr/btc (or lock add/or/... + flags)
        # intrinsics, which drop the %gs address space: glibc's
        # ``atomic_fetch_or(&pd->cancelhandling, bit) & bit`` became ``lock
        # bts`` on the bare guest address and crashed the host.
        return self._emit(f'call {v.ty} asm "", "=r,0"({v.ty} {old}){_PURE_ASM}', v.ty)

    def cmpxchg(self, addr: V, expected: V, new: V, bits: int) -> V:
        self._block_stores.add(self._block_pc)
        ty = _ity(bits)
        self._check(expected, ty)
        self._check(new, ty)
        ptr = self._atomic_ptr(addr, bits)
        pair = self._emit(f"cmpxchg {_GUEST_PTR} {ptr}, {ty} {expected}, {ty} {new} seq_cst seq_cst, "
                          f"align {bits // 8}", f"{{{ty}, i1}}")
        return self._emit(f"extractvalue {{{ty}, i1}} {pair}, 0", ty)

    def fence(self, store_load: bool = True) -> None:
        """``fence seq_cst`` (x86: a locked or / mfence) or ``fence acq_rel``
        (x86: no instruction; LLVM moves no memory access across it)."""
        self._block_stores.add(self._block_pc)
        self.lines.append(f"  fence {'seq_cst' if store_load else 'acq_rel'}")

    # -- counters ---------------------------------------------------------
    def read_counter(self, which: str) -> V:
        """The host TSC (``rdtsc``) for cycle/instret; for time, the TSC
        converted to the guest timebase with the state's calibration (the
        formula of runtime/guest_clock.py ``read_counter``)."""
        if which not in COUNTERS:
            raise LoweringError(self._pc, "?", f"unknown counter {which!r}")
        self._declare("declare i64 @llvm.readcyclecounter()")
        tsc = self._emit("call i64 @llvm.readcyclecounter()", "i64")
        if which != "time":
            return tsc
        tsc0 = self._emit(f"load i64, ptr {self._slot(_TIME_TSC0)}, align 8", "i64")
        mult = self._emit(f"load i64, ptr {self._slot(_TIME_MULT)}, align 8", "i64")
        base = self._emit(f"load i64, ptr {self._slot(_TIME_BASE)}, align 8", "i64")
        delta = self._emit(f"sub i64 {tsc}, {tsc0}", "i64")
        behind = self._emit(f"icmp slt i64 {delta}, 0", "i1")
        delta = self._emit(f"select i1 {behind}, i64 0, i64 {delta}", "i64")
        wide = self._emit(f"mul nuw i128 {self._emit(f'zext i64 {delta} to i128', 'i128')}, "
                          f"{self._emit(f'zext i64 {mult} to i128', 'i128')}", "i128")
        scaled = self._emit(f"trunc i128 {self._emit(f'lshr i128 {wide}, 32', 'i128')} to i64", "i64")
        return self._emit(f"add i64 {base}, {scaled}", "i64")

    # -- floating point ---------------------------------------------------
    def _opaque(self, v: V) -> V:
        """Hide an integer from LLVM's constant folder (emits no instruction).

        FP operations on constants would otherwise be folded at build time
        and never raise their IEEE flags at run time."""
        self._fp_ops += 1
        effect = " sideeffect" if self.fp_env else ""
        return self._emit(f'call {v.ty} asm{effect} "", "=r,0"({v.ty} {v}){_pure(effect)}', v.ty)

    def _xmm_copy(self, v: V, effect: str = "") -> V:
        """An opaque copy of FP value ``v`` in an XMM register (an empty asm,
        side-effecting when ``effect``): LLVM cannot see what it holds."""
        return self._emit(f'call {v.ty} asm{effect} "", "=x,0"({v.ty} {v}){_pure(effect)}', v.ty)

    def _keep(self, v: V) -> V:
        """Pin an FP operation that runs in the guest's rounding mode: an
        empty side-effecting asm consumes its result, so LLVM never deletes
        it when the guest overwrites the result unread (its IEEE flags must
        still reach fflags) nor moves it past a later fcsr read."""
        self.lines.append(f'  call void asm sideeffect "", "x"({v.ty} {v})')
        self._quiet.add(v.name)
        return v

    def bitcast_to_float(self, v: V) -> V:
        f = self._canonical_of.get(v.name)
        if f is not None:
            self._fp_ops += 1
            if self.fp_env:    # ordered against MXCSR accesses, as _opaque would
                return self._xmm_copy(f, " sideeffect")
            return f
        fty = _fty(v.bits)
        d = self._double_of.get(v.name)
        f = d if d is not None and fty == "double" else self._emit(f"bitcast {v.ty} {v} to {fty}", fty)
        # Opaque to the constant folder, as ``_opaque``, but in an XMM
        # register: the operand never crosses to a general register.
        self._fp_ops += 1
        effect = " sideeffect" if self.fp_env else ""
        r = self._xmm_copy(f, effect)
        self._int_of[r.name] = v
        return r

    def bitcast_to_int(self, v: V) -> V:
        ity = _ity(v.bits)
        src = v
        if v.name in self._quiet:
            # The bits of an FP operation's result go through an opaque copy:
            # LLVM lets an FP operation produce *any* NaN, so once the
            # canonicalising select(uno(f), canonical NaN, bits(f)) is moved
            # into the FP domain (f registers are doubles in regions) it
            # could fold it to f itself (e.g. select(x < 0, NaN, sqrt(x)) to
            # sqrt(x)), and the host's NaN payload would reach the guest.
            src = self._xmm_copy(v)
        r = self._emit(f"bitcast {v.ty} {src} to {ity}", ity)
        self._bits_of[r.name] = v
        return r

    def _static_rm(self, rm: int) -> bool:
        return rm != RM_DYN

    def _rounded(self, key: str, rm: int, ret_ty: str, args: tuple[V, ...], body: str,
                 tie: str | None = None) -> V:
        """Call a strictfp helper that performs ``body`` under rounding mode ``rm``.

        RMM runs as RNE; ``tie`` (the operation, see ``rmm.tie_correction``)
        then moves an exact tie away from zero.  Without it the operation
        cannot tie (sqrt) or rounds half away by itself."""
        name = f"aotc_{key}_rm{rm}"
        params = ", ".join(f"{a.ty} %a{i}" for i, a in enumerate(args))
        result = "%r"
        if rm == RM_RMM and tie is not None:
            fix, decls = tie_correction(tie, ret_ty, [(a.ty, f"%a{i}") for i, a in enumerate(args)])
            for d in decls:
                self._declare(d)
            body += fix
            result = "%rmm"
        self._declare(_MXCSR_HELPERS)
        self._declare(
            f"define internal {ret_ty} @{name}({params}) #1 {{\n"
            f"  %saved = call i32 @aotc_push_rc(i32 {_RC_OF_RM[rm]}) #2\n"
            f"{body}"
            f"  call void @aotc_pop_rc(i32 %saved) #2\n"
            f"  ret {ret_ty} {result}\n}}")
        argtext = ", ".join(f"{a.ty} {a}" for a in args)
        r = self._emit(f"call {ret_ty} @{name}({argtext})", ret_ty)
        self._quiet.add(r.name)
        return r

    def _constrained(self, op: str, ty: str, n: int, rty: str | None = None) -> str:
        """The call of ``llvm.experimental.constrained.<op>`` (op: fadd, fsub,
        fmul, fdiv, sqrt, fma); intrinsic names mangle types as f32/f64."""
        rty = rty or ty
        suffix = f"{_mangle(rty)}.{_mangle(ty)}" if rty != ty else _mangle(ty)
        params = ", ".join([ty] * n + ["metadata", "metadata"])
        self._declare(f"declare {rty} @llvm.experimental.constrained.{op}.{suffix}({params})")
        args = ", ".join(f"{ty} %a{i}" for i in range(n))
        return (f"  %r = call {rty} @llvm.experimental.constrained.{op}.{suffix}({args}, "
                f"metadata !\"round.dynamic\", metadata !\"fpexcept.strict\") #2\n")

    def _dynamic(self, inline: Callable[[], V]) -> V:
        """An operation with rm = DYN: ``inline`` rounds with the host FPU,
        which holds the guest's frm while guest code runs, for frm 0-3.  frm
        = RMM (no x86 mode; rare: C's fenv cannot even select it) or 5-7
        (reserved: SIGILL) leaves for the interpreter at this instruction
        (EXIT_FP_MODE; ``Machine._run_fp_mode``).

        Every guard tests the same frm value: LLVM folds all but the first in
        a block and hoists it out of loops that do not write fcsr."""
        fcsr = self._stored_fcsr()
        frm = self._emit(f"lshr i64 {fcsr}, 5", "i64")
        frm = self._emit(f"and i64 {frm}, 7", "i64")
        self._n += 1
        fast, slow = f"dyn{self._n}", f"dynslow{self._n}"
        usual = self._emit(f"icmp ult i64 {frm}, {RM_RMM}", "i1")
        self.lines.append(f"  br i1 {usual}, label %{fast}, label %{slow}, !prof !0")
        self.lines.append(f"{slow}:")
        self._store_dirty()
        self._exit(EXIT_FP_MODE, self._pc)
        self.lines.append(f"{fast}:")
        return inline()

    def fbinop(self, op: str, a: V, b: V, rm: int) -> V:
        if self._static_rm(rm):
            return self._rounded(f"{op}_{a.ty}", rm, a.ty, (a, b), self._constrained(op, a.ty, 2), tie=op)
        return self._dynamic(lambda: self._keep(self._bin(op, a, b)))

    def _intrinsic(self, name: str, ty: str, *args: V) -> V:
        params = ", ".join(a.ty for a in args)
        self._declare(f"declare {ty} @llvm.{name}.{ty}({params})")
        argtext = ", ".join(f"{a.ty} {a}" for a in args)
        return self._emit(f"call {ty} @llvm.{name}.{ty}({argtext})", ty)

    def fsqrt(self, a: V, rm: int) -> V:
        if self._static_rm(rm):   # a square root never ties: RMM is RNE
            return self._rounded(f"sqrt_{a.ty}", rm, a.ty, (a,), self._constrained("sqrt", a.ty, 1))
        r = self._dynamic(lambda: self._keep(self._intrinsic("sqrt", a.ty, a)))
        self._sqrt_of.add(r.name)
        return r

    def fma(self, a: V, b: V, c: V, rm: int) -> V:
        if self._static_rm(rm):
            return self._rounded(f"fma_{a.ty}", rm, a.ty, (a, b, c), self._constrained("fma", a.ty, 3),
                                 tie="fma")
        return self._dynamic(lambda: self._keep(self._intrinsic("fma", a.ty, a, b, c)))

    def fcmp(self, pred: str, a: V, b: V) -> V:
        if self.discard_flags:
            return self._fcmp_on_bits(pred, a, b)
        if pred == "uno" and a == b and a.name in self._sqrt_of:
            # The NaN test of an inline sqrt's result (canonicalisation) tests
            # an opaque copy: LLVM would rewrite "sqrt(x) is NaN" as "x < 0
            # or x is NaN" and emit that as a signalling compare (cmpnlesd),
            # which raises invalid for a quiet NaN x (campaign seed 17).  No
            # other FP result's NaN test can be rewritten into a compare of
            # its operands; a copy on every one cost nbody 20%.
            a = b = self._xmm_copy(a)
        c = self._emit(f"fcmp {pred} {a.ty} {a}, {b}", "i1")
        if self.fp_env:
            # An x86 compare raises invalid for NaN operands: its users get an
            # opaque copy of the result, or LLVM sinks (CodeGenPrepare even
            # duplicates) the compare past a later fcsr write and the flag
            # lands in the new fcsr (fmax.d of an sNaN, then csrw fcsr).
            self._fp_ops += 1
            z = self._emit(f"zext i1 {c} to i32", "i32")
            z = self._emit(f'call i32 asm sideeffect "", "=r,0"(i32 {z})', "i32")
            c = self._emit(f"icmp ne i32 {z}, 0", "i1")
        if pred == "uno" and a == b:
            self._uno_of[c.name] = a
        return c

    def _fcmp_on_bits(self, pred: str, a: V, b: V) -> V:
        """A compare that raises no host flags: "uno" on the IEEE bits, an
        ordered predicate behind that test (``_ordered_ucomi``)."""
        ity = _ity(a.bits)
        mag = (1 << (a.bits - 1)) - 1
        inf = 0x7F800000 if a.bits == 32 else 0x7FF0000000000000
        # The operands' integer bits (never a bitcast of the float: LLVM
        # would turn the NaN tests back into an x86 compare, with its flags).
        ai, bi = (self._int_of.get(x.name) or self._emit(
            f'call {ity} asm "mov{"q" if a.bits == 64 else "d"} $1, $0", "=r,x"({x.ty} {x}){_PURE_ASM}', ity)
            for x in (a, b))
        am = self._emit(f"and {ity} {ai}, {mag}", ity)
        bm = self._emit(f"and {ity} {bi}, {mag}", ity)
        an = self._emit(f"icmp ugt {ity} {am}, {inf}", "i1")
        bn = self._emit(f"icmp ugt {ity} {bm}, {inf}", "i1")
        uno = self._emit(f"or i1 {an}, {bn}", "i1")
        if pred == "uno":
            return uno
        if pred not in _UCOMI_FLAG:
            raise LoweringError(self._pc, "?", f"no flag-free compare {pred!r}")
        return self._ordered_ucomi(pred, a, b, uno)

    def _ordered_ucomi(self, pred: str, a: V, b: V, uno: V) -> V:
        """``a pred b`` (olt, ole, oeq) without host flags: an ordered pair
        goes through ``ucomis[sd]``, which raises invalid only for a NaN
        operand (its denormal flag is no guest flag), and an unordered pair
        compares false without it.  The branch keeps the compare (an asm,
        never speculated) off the NaN path; about 13 x86 instructions where
        the compare on the bits took about 25."""
        self._n += 1
        n = self._n
        ordered = self._emit(f"xor i1 {uno}, true", "i1")
        self.lines.append(f"  br i1 {ordered}, label %ucomi{n}, label %ucomiuno{n}, !prof !0")
        self.lines.append(f"ucomi{n}:")
        op = "ucomisd" if a.bits == 64 else "ucomiss"
        # AT&T "ucomisd $1, $2" compares b with a: "above" is b > a, i.e. a < b.
        flag = _UCOMI_FLAG[pred]
        cc = self._emit(f'call i8 asm "{op} $1, $2", "={{@cc{flag}}},x,x,~{{dirflag}},~{{fpsr}},~{{flags}}"'
                        f"({a.ty} {a}, {b.ty} {b}){_PURE_ASM}", "i8")
        rel = self._emit(f"icmp ne i8 {cc}, 0", "i1")
        self.lines.append(f"  br label %ucomidone{n}")
        self.lines.append(f"ucomiuno{n}:")
        self.lines.append(f"  br label %ucomidone{n}")
        self.lines.append(f"ucomidone{n}:")
        return self._emit(f"phi i1 [ {rel}, %ucomi{n} ], [ false, %ucomiuno{n} ]", "i1")

    def fconvert(self, v: V, fbits: int, rm: int) -> V:
        if v.bits == fbits:
            return v
        op = "fpext" if fbits > v.bits else "fptrunc"
        fty = _fty(fbits)

        def inline() -> V:
            return self._keep(self._emit(f"{op} {v.ty} {v} to {fty}", fty))
        if not self._static_rm(rm):
            return self._dynamic(inline)
        if op == "fpext":   # exact
            return inline()
        name = f"llvm.experimental.constrained.fptrunc.{_mangle(fty)}.{_mangle(v.ty)}"
        self._declare(f"declare {fty} @{name}({v.ty}, metadata, metadata)")
        body = (f"  %r = call {fty} @{name}"
                f"({v.ty} %a0, metadata !\"round.dynamic\", metadata !\"fpexcept.strict\") #2\n")
        return self._rounded(f"fptrunc_{fty}", rm, fty, (v,), body, tie="fptrunc")

    def int_to_float(self, v: V, fbits: int, signed: bool, rm: int) -> V:
        op = "sitofp" if signed else "uitofp"
        v = self._opaque(v)
        fty = _fty(fbits)

        def inline() -> V:
            return self._keep(self._emit(f"{op} {v.ty} {v} to {fty}", fty))
        if not self._static_rm(rm):
            r = self._dynamic(inline)
        elif v.bits > {32: 24, 64: 53}[fbits]:   # may round
            name = f"llvm.experimental.constrained.{op}.{_mangle(fty)}.{v.ty}"
            self._declare(f"declare {fty} @{name}({v.ty}, metadata, metadata)")
            body = (f"  %r = call {fty} @{name}"
                    f"({v.ty} %a0, metadata !\"round.dynamic\", metadata !\"fpexcept.strict\") #2\n")
            r = self._rounded(f"{op}_{v.ty}_{fty}", rm, fty, (v,), body, tie=op)
        else:
            r = inline()
        if not signed and v.bits == 64:
            # x86 converts an unsigned 64-bit integer by subtracting equal
            # magic constants: 0 comes out as -0 when rounding down.  The
            # fix-up works on opaque bits: LLVM, assuming round-to-nearest,
            # would fold a select on the float away.
            zero = self._emit(f"icmp eq i64 {v}, 0", "i1")
            bits = self._opaque(self.bitcast_to_int(r))
            r = self.bitcast_to_float(self.select(zero, self.const(0, fbits), bits))
        return r

    def float_to_int(self, v: V, bits: int, signed: bool, rm: int) -> V:
        """Round (static mode, or DYN: the guest's frm, which the host FPU
        holds) and convert in a strictfp helper that restores MXCSR after,
        so the host's own flags (x86 raises inexact for ties-away rounding
        and invalid for the speculated signed half of an unsigned 64-bit
        conversion) never leak into fflags; the RISC-V flags and the
        saturation are computed explicitly below."""
        fty, ity = v.ty, _ity(bits)
        conv = "fptosi" if signed else "fptoui"
        pair_ty = f"{{ {fty}, {ity} }}"

        def convert() -> V:
            rop = _ROUND_OP.get(rm, "nearbyint")   # static RMM: "round", half away from zero
            round_fn = f"llvm.experimental.constrained.{rop}.{_mangle(fty)}"
            conv_fn = f"llvm.experimental.constrained.{conv}.{ity}.{_mangle(fty)}"
            mode_arg = 'metadata !"round.dynamic", ' if rop == "nearbyint" else ""
            name = f"aotc_{conv}_{fty}_{ity}_rm{rm}"
            self._declare(_MXCSR_HELPERS)
            self._declare(f"declare {fty} @{round_fn}({fty}, {'metadata, ' if mode_arg else ''}metadata)")
            self._declare(f"declare {ity} @{conv_fn}({fty}, metadata)")
            self._declare(
                f"define internal {pair_ty} @{name}({fty} %a0) #1 {{\n"
                f"  %p = alloca i32\n"
                f"  call void @llvm.x86.sse.stmxcsr(ptr %p) #2\n"
                f"  %saved = load i32, ptr %p\n"
                f"  %r = call {fty} @{round_fn}({fty} %a0, {mode_arg}metadata !\"fpexcept.strict\") #2\n"
                f"  %i = call {ity} @{conv_fn}({fty} %r, metadata !\"fpexcept.strict\") #2\n"
                f"  store i32 %saved, ptr %p\n"
                f"  call void @llvm.x86.sse.ldmxcsr(ptr %p) #2\n"
                f"  %s0 = insertvalue {pair_ty} poison, {fty} %r, 0\n"
                f"  %s1 = insertvalue {pair_ty} %s0, {ity} %i, 1\n"
                f"  ret {pair_ty} %s1\n}}")
            return self._emit(f"call {pair_ty} @{name}({fty} {v})", pair_ty)
        pair = convert() if self._static_rm(rm) else self._dynamic(convert)
        rounded = self._emit(f"extractvalue {pair_ty} {pair}, 0", fty)
        converted = self._emit(f"extractvalue {pair_ty} {pair}, 1", ity)
        # IEEE flags: NV for NaN or a rounded value outside the target range,
        # otherwise NX when rounding changed the value.  Out of range saturates.
        lo = -(2.0 ** (bits - 1)) if signed else 0.0
        hi = 2.0 ** (bits - 1) if signed else 2.0 ** bits
        nan = self.fcmp("uno", v, v)
        below = self.fcmp("olt", rounded, V(_fconst(lo), fty))
        above = self.fcmp("oge", rounded, V(_fconst(hi), fty))
        int_min = self.const(1 << (bits - 1) if signed else 0, bits)
        int_max = self.const((1 << (bits - 1)) - 1 if signed else -1, bits)
        result = self.select(below, int_min, self.select(above, int_max, converted))
        bad = self._emit(f"or i1 {nan}, {below}", "i1")
        bad = self._emit(f"or i1 {bad}, {above}", "i1")
        inexact = self.fcmp("one", rounded, v)
        nx = self._emit(f"select i1 {inexact}, i64 1, i64 0", "i64")
        flags = self._emit(f"select i1 {bad}, i64 16, i64 {nx}", "i64")
        self.raise_fflags(flags)
        return result

    def rounding_mode(self, rm: int) -> V:
        """A static mode as a constant; DYN: the guest's frm (0-3 here: RMM
        and the reserved modes leave for the interpreter, as every DYN
        operation does)."""
        if self._static_rm(rm):
            return self.const(rm, 64)

        def frm() -> V:
            f = self._emit(f"lshr i64 {self._stored_fcsr()}, 5", "i64")
            return self._emit(f"and i64 {f}, 7", "i64")
        return self._dynamic(frm)

    def raise_fflags(self, flags: V) -> None:
        if self.discard_flags:
            return
        # Flags raised in software go straight into the stored fcsr.
        fcsr = self._stored_fcsr()
        self._fcsr = self._emit(f"or i64 {fcsr}, {flags}", "i64")
        self._fcsr_dirty = True

    # -- exits ------------------------------------------------------------
    def _set_pc(self, pc: "int | V") -> None:
        slot = self._slot(_PC)
        self.lines.append(f"  store i64 {pc}, ptr {slot}, align 8")

    def _exit(self, code: int, pc: "int | V") -> None:
        self._exit_flush()
        self._set_pc(pc)
        self._ret(code)

    def _passed_values(self) -> list[str]:
        """The passed registers' current values (the block's registers
        already flushed): from their allocas in region mode."""
        if self.region is None:
            return [self._regs[key].name for key in self.cc.passed]
        return [self._emit(f"load i64, ptr %a{key}, align 8", "i64").name for key in self.cc.passed]

    def _call_args(self) -> str:
        return "ptr %st" + "".join(f", i64 {v}" for v in self._passed_values())

    def _ret(self, code: "int | str") -> None:
        """Return exit code ``code`` to the caller: the returned registers as
        return values, the other passed registers stored in the state."""
        cc = self.cc
        values = dict(zip(cc.passed, self._passed_values()))
        for key in cc.passed:
            if key not in cc.returned:
                slot = self._slot(_key_offset(key))
                self.lines.append(f"  store i64 {values[key]}, ptr {slot}, align 8")
        agg = "poison"
        for i, v in enumerate([str(code)] + [values[key] for key in cc.returned]):
            agg = self._emit(f"insertvalue {cc.ret_type} {agg}, i64 {v}, {i}", cc.ret_type).name
        self.lines.append(f"  ret {cc.ret_type} {agg}")

    def _safe_point(self, target: "int | V") -> None:
        """A safe point before control goes on to ``target``: if the state's
        interrupt word is set (a signal waits for this thread), leave with
        EXIT_INTERRUPT at ``target``, every register in the state, so the
        runtime can deliver it.  Emitted where guest code can loop without
        coming back to the dispatcher: backward branches and jumps, calls
        to a lower or equal pc (recursion), and indirect jumps; so a
        thread spinning without system calls still takes its signals.
        The load is volatile: LLVM may not hoist it out of the loop.

        It is also a compiler barrier for guest memory (an empty asm that
        clobbers memory, no instruction): a guest loop reloads what it
        reads on every trip.  Without it LLVM hoisted the load of a relaxed
        spin (``while (!atomic_load_relaxed(&flag));``, a plain ``lw`` in
        the guest, with no fence) out of the loop, and the thread never saw
        the other thread's store (docs/architecture.md, "Memory model")."""
        self._n += 1
        n = self._n
        if self.region is not None and isinstance(target, int) and target in self.region:
            self._polls[n] = (self._block_pc, target)     # an in-region back edge: see _drop_inner_polls
        self.lines.append(f'  call void asm sideeffect "", "~{{memory}}"() ; poll.{n}')
        word = self._emit(f"load volatile i64, ptr {self._slot(_INTERRUPT)}, align 8", "i64")
        self.lines[-1] += f" ; poll.{n}"
        calm = self._emit(f"icmp eq i64 {word}, 0", "i1")
        self.lines[-1] += f" ; poll.{n}"
        self.lines.append(f"  br i1 {calm}, label %go{n}, label %intr{n}, !prof !0 ; poll.{n}")
        self.lines.append(f"intr{n}:")
        self._exit(EXIT_INTERRUPT, target)
        self.lines.append(f"go{n}:")

    def _goto(self, target: int) -> None:
        """Tail-call a known block, or leave with a miss for an unknown one."""
        self._ensure_sp(target)
        if target <= self._block_pc and (target in self.known or self.region is not None and target in self.region):
            self._safe_point(target)
        if self.region is not None and target in self.region:
            self.lines.append(f"  br label %{self._entry_label(target)}")
        elif target in self.dispatch_only:
            self._exit(EXIT_CONTINUE, target)
        elif target in self.known:
            self._exit_flush()
            self.callees.add(target)
            self._tail_call(f"@{block_symbol(target)}")
        else:
            self._exit(EXIT_MISS, target)

    @property
    def _call_attrs(self) -> str:
        """Attributes of every call of a block function: nothing
        callee-saved (both groups), and no inlining across the boundary of
        a region that pins the FP environment (#5)."""
        return " #5" if self.fp_env else _NO_CSR

    def _tail_call(self, fn: str) -> None:
        """Leave through a tail call of block function ``fn`` (the passed
        registers as arguments, the others already in the state), returning
        its result."""
        args = self._call_args()
        r = self._tmp()
        ret_type = self.cc.ret_type
        self.lines.append(f"  {r} = musttail call {BLOCK_CC} {ret_type} {fn}({args}){self._call_attrs}")
        self.lines.append(f"  ret {ret_type} {r}")

    def _end(self) -> None:
        if self.ended:
            raise LoweringError(self._pc, "?", "two control transfers in one block")
        self.ended = True

    def jump(self, target: int, returns_to: int | None = None) -> None:
        self._end()
        self._flush()
        if returns_to is not None and target in self.known and target not in self.dispatch_only:
            self._ensure_sp(target)
            if target <= self._block_pc:
                self._safe_point(target)
            self._exit_flush()
            self.callees.add(target)
            self._host_call(f"@{block_symbol(target)}", returns_to)
        else:
            self._goto(target)

    def branch(self, cond: V, taken: int, not_taken: int) -> None:
        self._end()
        self._flush()
        self._n += 1
        t, f = f"taken{self._n}", f"fall{self._n}"
        self.lines.append(f"  br i1 {cond}, label %{t}, label %{f}")
        self.lines.append(f"{t}:")
        self._goto(taken)
        self.lines.append(f"{f}:")
        self._goto(not_taken)

    def _host_call(self, fn: str, returns_to: int) -> None:
        """A guest call as a host call (the passed registers as arguments,
        the others already in the state).

        The callee's guest ``ret`` returns EXIT_RETURN with the target pc
        in the state: if that is this call's return point, execution goes on
        there (the host return was predicted by the CPU's return stack); any
        other exit, or a return elsewhere (longjmp, a callee that switched
        stacks), is passed on to this function's own caller, so the first
        frame whose return point matches, or else the dispatcher, takes it.
        Every frame passes the returned registers up unchanged and reloads
        all others from the state afterwards, so continuing in any frame is
        correct.  Below the host stack limit (deep guest
        recursion) the call is a tail call, as a plain jump."""
        sp = self._emit('call i64 @llvm.read_register.i64(metadata !{!"rsp"})', "i64")
        self._declare("declare i64 @llvm.read_register.i64(metadata)")
        limit = self._emit(f"load i64, ptr {self._slot(_SP_LIMIT)}, align 8", "i64")
        room = self._emit(f"icmp uge i64 {sp}, {limit}", "i1")
        self._n += 1
        n = self._n
        self.lines.append(f"  br i1 {room}, label %call{n}, label %deep{n}, !prof !0")
        self.lines.append(f"deep{n}:")
        self._tail_call(fn)
        self.lines.append(f"call{n}:")
        cc = self.cc
        r = self._emit(f"call {BLOCK_CC} {cc.ret_type} {fn}({self._call_args()}){self._call_attrs}", cc.ret_type)
        code = self._emit(f"extractvalue {cc.ret_type} {r}, 0", "i64")
        back = self._emit(f"icmp eq i64 {code}, {EXIT_RETURN}", "i1")
        self.lines.append(f"  br i1 {back}, label %back{n}, label %pass{n}, !prof !0")
        self.lines.append(f"pass{n}:")
        self.lines.append(f"  ret {cc.ret_type} {r}")
        self.lines.append(f"back{n}:")
        pc = self._emit(f"load i64, ptr {self._slot(_PC)}, align 8", "i64")
        here = self._emit(f"icmp eq i64 {pc}, {returns_to}", "i1")
        self.lines.append(f"  br i1 {here}, label %ret{n}, label %pass{n}, !prof !0")
        self.lines.append(f"ret{n}:")
        # The callee returned the returned registers and stored the other
        # passed ones; every other register is reloaded from the state.
        before = dict(self._regs)
        for key in cc.passed:
            if key in cc.returned:
                v = self._emit(f"extractvalue {cc.ret_type} {r}, {1 + cc.returned.index(key)}", "i64")
            else:
                v = self._emit(f"load i64, ptr {self._slot(_key_offset(key))}, align 8", "i64")
            if self.region is not None:
                self.lines.append(f"  store i64 {v}, ptr %a{key}, align 8")
            else:
                self._regs[key] = v
        if self.region is not None and returns_to in self.region:
            self.lines.append(_RELOAD)
            self.lines.append(f"  br label %{_check_label(returns_to)}")
        elif returns_to in self.dispatch_only:
            self._ret(EXIT_CONTINUE)
        elif returns_to in self.known:
            self.callees.add(returns_to)
            self._tail_call(f"@{block_symbol(returns_to)}")
        else:
            self._ret(EXIT_MISS)
        self._regs = before    # the values on other paths (an inline probe's miss)

    def jump_indirect(self, target: V, returns_to: int | None = None,
                      is_return: bool = False) -> None:
        """Probe the native hash table once inline; the dispatcher does the
        rest.  A guest return leaves to the host caller (``_host_call``);
        a guest call that hits is a host call.  The table holds image code,
        so code of another convention (JIT code) leaves to the dispatcher."""
        self._end()
        self._flush()
        self._ensure_sp(target)
        self._exit_flush()
        if is_return or self.cc != IMAGE_CONVENTION:
            self._set_pc(target)
            self._ret(EXIT_RETURN if is_return else EXIT_CONTINUE)
            return
        self.uses_htab = True
        mask = self.htab_mask
        h = self._emit(f"lshr i64 {target}, 1", "i64")
        h = self._emit(f"and i64 {h}, {mask}", "i64")
        entry = self._emit(f"getelementptr inbounds [2 x i64], ptr @{HTAB_SYMBOL}, i64 {h}", "ptr")
        key = self._emit(f"load i64, ptr {entry}, align 8", "i64")
        hit = self._emit(f"icmp eq i64 {key}, {target}", "i1")
        self._n += 1
        t, f = f"hit{self._n}", f"miss{self._n}"
        self.lines.append(f"  br i1 {hit}, label %{t}, label %{f}, !prof !0")
        self.lines.append(f"{t}:")
        self._safe_point(target)
        fnslot = self._emit(f"getelementptr inbounds i8, ptr {entry}, i64 8", "ptr")
        fn = self._emit(f"load ptr, ptr {fnslot}, align 8", "ptr")
        if returns_to is not None:
            self._host_call(str(fn), returns_to)
        else:
            self._tail_call(str(fn))
        self.lines.append(f"{f}:")
        self._set_pc(target)
        self._ret(EXIT_CONTINUE)

    def syscall(self) -> None:
        self._end()
        self._flush()
        self._exit(EXIT_SYSCALL, self._pc)

    def trap_illegal(self) -> None:
        self._end()
        self._flush()
        slot = self._slot(_EXIT_INFO)
        self.lines.append(f"  store i64 {self._raw}, ptr {slot}, align 8")
        self._exit(EXIT_ILLEGAL, self._pc)

    def breakpoint(self) -> None:
        self._end()
        self._flush()
        self._exit(EXIT_BREAK, self._pc)

    def fence_i(self) -> None:
        self._end()
        self._flush()
        slot = self._slot(_EXIT_INFO)
        self.lines.append(f"  store i64 {self._next_pc}, ptr {slot}, align 8")
        self._exit(EXIT_FENCE_I, self._pc)

    # -- output -----------------------------------------------------------
    def _state_copy(self, key: int, to_state: bool) -> list[str]:
        """Copy one register between its alloca and the state."""
        slot, v = self._tmp(), self._tmp()
        gep = f"  {slot} = getelementptr inbounds i8, ptr %st, i64 {_key_offset(key)}"
        ty = "double" if 32 <= key < 64 else "i64"
        if to_state:
            return [gep, f"  {v} = load {ty}, ptr %a{key}, align 8",
                    f"  store {ty} {v}, ptr {slot}, align 8"]
        return [gep, f"  {v} = load {ty}, ptr {slot}, align 8",
                f"  store {ty} {v}, ptr %a{key}, align 8"]

    def _region_prologue(self) -> list[str]:
        """Allocas for every register the region touches and every passed
        register: the passed ones from the arguments, the rest loaded from
        the state."""
        keys = sorted(self._used | self._written | self._passed)
        out = [f"  %a{key} = alloca {'double' if 32 <= key < 64 else 'i64'}, align 8" for key in keys]
        for key in keys:
            if key in self._passed:
                out.append(f"  store i64 %k{self.cc.passed.index(key)}, ptr %a{key}, align 8")
            else:
                out += self._state_copy(key, to_state=False)
        out.append(f"  br label %{_check_label(self.entry_pc)}")
        return out

    def _expand_exit_flushes(self) -> list[str]:
        """Each exit stores every register the region writes back to the
        state, but the passed ones (they leave as arguments, or ``_ret``
        stores them); after a host call every register is reloaded from it
        (the passed ones already were, by ``_host_call``)."""
        written = sorted(self._written - self._passed)
        touched = sorted((self._used | self._written) - self._passed)
        out: list[str] = []
        for ln in self.lines:
            if ln is _EXIT_FLUSH:
                for key in written:
                    out += self._state_copy(key, to_state=True)
            elif ln is _RELOAD:
                for key in touched:
                    out += self._state_copy(key, to_state=False)
            else:
                out.append(ln)
        return out

    def finish(self, debug: "DebugInfo | None" = None) -> str:
        """The function's IR text (the block must have ended).

        With ``debug``, every instruction carries a DWARF location whose line
        is the guest pc it came from (see ``fault_pc_stores``)."""
        if not self.ended:
            self.jump(self._next_pc)
        self._resolve_edges()
        self._drop_inner_polls()
        if self.region is None:
            self.lines = [_EntryCheck(self.entry_pc), "body:", *self.lines]
        lines: list = []
        for ln in self.lines:
            lines += self._entry_check(ln.pc) if isinstance(ln, _EntryCheck) else [ln]
        self.lines = lines
        self.lines += self._oob_trap()
        name = block_symbol(self.entry_pc)
        if self.region is not None:
            self.lines = self._region_prologue() + self._expand_exit_flushes()
        if self.alias_types:
            self.lines = [_typed(ln) for ln in self.lines]
        if debug is None:
            body = "\n".join(ln for ln in self.lines if not ln.startswith(";@"))
            attach = ""
        else:
            sp = debug.subprogram(name)
            loc = debug.location(self.entry_pc, sp)
            out = []
            for ln in self.lines:
                if ln.startswith(";@"):
                    loc = debug.location(int(ln[2:]), sp)
                elif ln.startswith("  "):
                    out.append(f"{ln}, !dbg !{loc}")
                else:
                    out.append(ln)
            body = "\n".join(out)
            attach = f" !dbg !{sp}"
        attrs = "#4" if self.optnone else "#3" if self.noinline or self.fp_env else "#0"
        params = "".join(f", i64 %k{i}" for i in range(len(self.cc.passed)))
        return (f"{block_definition_prefix(self.entry_pc, cc=self.cc)}ptr noalias nocapture %st"
                f"{params}) {attrs}{attach} {{\nentry:\n{body}\n}}\n")


class DebugInfo:
    """Module-level DWARF metadata: line tables whose line numbers are guest pcs."""

    def __init__(self) -> None:
        self._nodes: list[str] = [
            '!llvm.dbg.cu = !{!1}',
            '!llvm.module.flags = !{!2, !3}',
            '!1 = distinct !DICompileUnit(language: DW_LANG_C, file: !4, producer: "aotc", '
            'isOptimized: true, runtimeVersion: 0, emissionKind: LineTablesOnly)',
            '!2 = !{i32 2, !"Debug Info Version", i32 3}',
            '!3 = !{i32 2, !"Dwarf Version", i32 4}',
            '!4 = !DIFile(filename: "guest", directory: "/")',
            '!5 = !DISubroutineType(types: !{})',
        ]
        self._next = 11      # !6-!10: compile.py's alias types
        self._locs: dict[tuple[int, int], int] = {}

    def _add(self, text: str) -> int:
        n = self._next
        self._next += 1
        self._nodes.append(f"!{n} = {text}")
        return n

    def subprogram(self, name: str) -> int:
        return self._add(f'distinct !DISubprogram(name: "{name}", scope: !4, file: !4, line: 0, '
                         f'type: !5, spFlags: DISPFlagDefinition | DISPFlagOptimized, unit: !1)')

    def location(self, pc: int, sp: int) -> int:
        key = (pc, sp)
        n = self._locs.get(key)
        if n is None:
            n = self._locs[key] = self._add(f"!DILocation(line: {pc & 0xFFFFFFFF}, scope: !{sp})")
        return n

    def text(self) -> str:
        return "\n".join(self._nodes) + "\n"
