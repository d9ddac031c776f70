"""``LLVMBuilder``: the Builder protocol, emitting LLVM IR text for one block.

Each guest block becomes one LLVM function ``i64 @b_<pc>(ptr %st, ptr %mem)``
(C calling convention, so the native dispatcher can call it).  Guest
registers are read from the state struct at first use, kept as SSA values
while the block runs, and the dirty ones are stored back once at each exit.
Direct branches to other translated blocks are ``musttail`` calls, so chained
blocks never return to the dispatcher; indirect branches probe the image's
native hash table inline and tail-call the hit, or return to the dispatcher.

IR is produced as text (much faster than building llvmlite.ir objects) and
is the only artefact of this module: parsing, optimising and emitting objects
is ``aotc.backend.compile``'s job.
"""

from __future__ import annotations

from dataclasses import dataclass

from aotc.errors import LoweringError
from aotc.isa.riscv64.state import (
    EXIT_BREAK,
    EXIT_CONTINUE,
    EXIT_FENCE_I,
    EXIT_ILLEGAL,
    EXIT_MISS,
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

# Round-to-integral intrinsic per static rounding mode (RM_DYN assumes the
# host default, round to nearest even: see docs/capability-matrix.md).
_ROUND_INTRINSIC = {0: "roundeven", 1: "trunc", 2: "floor", 3: "ceil", 4: "round", 7: "roundeven"}

HTAB_SYMBOL = "aotc_htab"


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


def _ity(bits: int) -> str:
    return f"i{bits}"


def _fty(bits: int) -> str:
    return "float" if bits == 32 else "double"


def block_symbol(pc: int) -> str:
    return f"b_{pc:x}"


class LLVMBuilder:
    """Emit one guest block as one LLVM function."""

    def __init__(self, entry_pc: int, known_blocks: "set[int] | frozenset[int]",
                 arena_bits: int = 32, htab_mask: int = 0) -> None:
        self.entry_pc = entry_pc
        self.known = known_blocks
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
        self._pc = entry_pc
        self._next_pc = entry_pc
        self._raw = 0
        self.ended = False
        self.callees: set[int] = set()       # direct targets this block tail-calls
        self.intrinsics: set[str] = set()    # declarations this block needs
        self.uses_htab = False

    # -- bookkeeping ------------------------------------------------------
    def set_insn(self, pc: int, next_pc: int, raw: int = 0) -> None:
        self._pc, self._next_pc, self._raw = pc, next_pc, raw

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
    def _get(self, key: int, offset: int) -> V:
        v = self._regs.get(key)
        if v is None:
            slot = self._slot(offset)
            v = self._emit(f"load i64, ptr {slot}, align 8", "i64")
            self._regs[key] = v
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
        self._regs[32 + r] = v
        self._dirty.add(32 + r)

    def get_fcsr(self) -> V:
        if self._fcsr is None:
            slot = self._slot(_FCSR)
            self._fcsr = self._emit(f"load i64, ptr {slot}, align 8", "i64")
        return self._fcsr

    def set_fcsr(self, v: V) -> None:
        self._fcsr = self._emit(f"and i64 {v}, 255", "i64")
        self._fcsr_dirty = True

    def get_reservation(self) -> V:
        if self._res is None:
            slot = self._slot(_RES)
            self._res = self._emit(f"load i64, ptr {slot}, align 8", "i64")
        return self._res

    def set_reservation(self, v: V) -> None:
        self._res = v
        self._res_dirty = True

    def _check(self, v: V, ty: str) -> None:
        if v.ty != ty:
            raise LoweringError(self._pc, "?", f"expected {ty}, got {v.ty}")

    def _flush(self) -> None:
        """Store every dirty register back to the state (at each exit)."""
        for key in sorted(self._dirty):
            off = _X0 + 8 * key if key < 32 else _F0 + 8 * (key - 32)
            slot = self._slot(off)
            self.lines.append(f"  store i64 {self._regs[key]}, ptr {slot}, align 8")
        if self._fcsr_dirty and self._fcsr is not None:
            slot = self._slot(_FCSR)
            self.lines.append(f"  store i64 {self._fcsr}, ptr {slot}, align 8")
        if self._res_dirty and self._res is not None:
            slot = self._slot(_RES)
            self.lines.append(f"  store i64 {self._res}, ptr {slot}, align 8")

    # -- integer arithmetic -------------------------------------------------
    def _bin(self, op: str, a: V, b: V) -> V:
        if a.ty != b.ty:
            raise LoweringError(self._pc, op, f"operand types differ: {a.ty} vs {b.ty}")
        return self._emit(f"{op} {a.ty} {a}, {b}", a.ty)

    def add(self, a: V, b: V) -> V:
        return self._bin("add", a, b)

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
        return self._emit(f"select i1 {cond}, {a.ty} {a}, {a.ty} {b}", a.ty)

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
        slot = self._slot(_FAULT_PC)
        self.lines.append(f"  store volatile i64 {self._pc}, ptr {slot}, align 8")
        if self.arena_bits == 32:
            low = self._emit(f"trunc i64 {addr} to i32", "i32")
            off = self._emit(f"zext i32 {low} to i64", "i64")
        else:
            off = self._emit(f"and i64 {addr}, {(1 << self.arena_bits) - 1}", "i64")
        return self._emit(f"getelementptr i8, ptr %mem, i64 {off}", "ptr").name

    def load(self, addr: V, bits: int) -> V:
        ptr = self._host_ptr(addr)
        return self._emit(f"load i{bits}, ptr {ptr}, align 1", _ity(bits))

    def store(self, addr: V, v: V) -> None:
        ptr = self._host_ptr(addr)
        self.lines.append(f"  store {v.ty} {v}, ptr {ptr}, align 1")

    # -- floating point ---------------------------------------------------
    def bitcast_to_float(self, v: V) -> V:
        fty = _fty(v.bits)
        return self._emit(f"bitcast {v.ty} {v} to {fty}", fty)

    def bitcast_to_int(self, v: V) -> V:
        ity = _ity(v.bits)
        return self._emit(f"bitcast {v.ty} {v} to {ity}", ity)

    def fbinop(self, op: str, a: V, b: V, rm: int) -> V:
        return self._bin(op, a, b)

    def _intrinsic(self, name: str, ty: str, *args: V) -> V:
        params = ", ".join(a.ty for a in args)
        self._declare(f"declare {ty} @llvm.{name}.{ty}({params})")
        argtext = ", ".join(f"{a.ty} {a}" for a in args)
        return self._emit(f"call {ty} @llvm.{name}.{ty}({argtext})", ty)

    def fsqrt(self, a: V, rm: int) -> V:
        return self._intrinsic("sqrt", a.ty, a)

    def fma(self, a: V, b: V, c: V, rm: int) -> V:
        return self._intrinsic("fma", a.ty, a, b, c)

    def fcmp(self, pred: str, a: V, b: V) -> V:
        return self._emit(f"fcmp {pred} {a.ty} {a}, {b}", "i1")

    def fconvert(self, v: V, fbits: int, rm: int) -> V:
        if v.bits == fbits:
            return v
        op = "fpext" if fbits > v.bits else "fptrunc"
        return self._emit(f"{op} {v.ty} {v} to {_fty(fbits)}", _fty(fbits))

    def int_to_float(self, v: V, fbits: int, signed: bool, rm: int) -> V:
        op = "sitofp" if signed else "uitofp"
        return self._emit(f"{op} {v.ty} {v} to {_fty(fbits)}", _fty(fbits))

    def float_to_int(self, v: V, bits: int, signed: bool, rm: int) -> V:
        rounded = self._intrinsic(_ROUND_INTRINSIC.get(rm, "roundeven"), v.ty, v)
        name = "fptosi" if signed else "fptoui"
        ity = _ity(bits)
        self._declare(f"declare {ity} @llvm.{name}.sat.{ity}.{v.ty}({v.ty})")
        return self._emit(f"call {ity} @llvm.{name}.sat.{ity}.{v.ty}({v.ty} {rounded})", ity)

    def raise_fflags(self, flags: V) -> None:
        fcsr = self.get_fcsr()
        self._fcsr = self._emit(f"or i64 {fcsr}, {flags}", "i64")
        self._fcsr_dirty = True

    # -- exits ------------------------------------------------------------
    def _set_pc(self, pc: "int | V") -> None:
        slot = self._slot(_PC)
        self.lines.append(f"  store i64 {pc}, ptr {slot}, align 8")

    def _exit(self, code: int, pc: "int | V") -> None:
        self._set_pc(pc)
        self.lines.append(f"  ret i64 {code}")

    def _goto(self, target: int) -> None:
        """Tail-call a known block, or leave with a miss for an unknown one."""
        if target in self.known:
            self.callees.add(target)
            name = self._tmp()
            self.lines.append(f"  {name} = musttail call i64 @{block_symbol(target)}(ptr %st, ptr %mem)")
            self.lines.append(f"  ret i64 {name}")
        else:
            self._exit(EXIT_MISS, target)

    def _end(self) -> None:
        if self.ended:
            raise LoweringError(self._pc, "?", "two control transfers in one block")
        self.ended = True

    def jump(self, target: int) -> None:
        self._end()
        self._flush()
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

    def jump_indirect(self, target: V) -> None:
        """Probe the native hash table once inline; the dispatcher does the rest."""
        self._end()
        self._flush()
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
        fnslot = self._emit(f"getelementptr inbounds i8, ptr {entry}, i64 8", "ptr")
        fn = self._emit(f"load ptr, ptr {fnslot}, align 8", "ptr")
        r = self._tmp()
        self.lines.append(f"  {r} = musttail call i64 {fn}(ptr %st, ptr %mem)")
        self.lines.append(f"  ret i64 {r}")
        self.lines.append(f"{f}:")
        self._exit(EXIT_CONTINUE, target)

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
    def finish(self) -> str:
        """The function's IR text (the block must have ended)."""
        if not self.ended:
            self.jump(self._next_pc)
        body = "\n".join(self.lines)
        return (f"define hidden i64 @{block_symbol(self.entry_pc)}(ptr noalias nocapture %st, "
                f"ptr noalias %mem) #0 {{\nentry:\n{body}\n}}\n")
