"""Block compiler for the interpreter: a ``Builder`` that writes Python source.

``PyCodegenBuilder`` runs the one semantics definition (``semantics.lift``)
once per instruction of a basic block and, instead of computing values,
records each builder call as a node of a small per-instruction graph.  At the
end of each instruction the graph becomes Python statements; ``finish``
turns the whole block into the source of one function, ``exec``s it and
returns a ``CompiledBlock``.  The generated function::

    def blk(x, f, cpu):      # x, f: lists of 32 unsigned ints; cpu: CpuState
        ...                  # reads and writes x/f/cpu.fcsr/cpu.reservation(_value)
        return next_pc       # (None for an exiting block: see ``exit``)

Integer primitives are pasted inline from ``ops.INT_OPS`` (the expressions
the Evaluator also runs); FP primitives call ``ops``' exact softfloat
functions; memory goes through ``ld1``..``ld8``/``st1``..``st8``, ``cas``
(atomic compare-and-swap: ``cas(addr, size, expected, desired) -> old``) and
``fence`` of the namespace the caller provides (the guest memory adapter,
permission checks included); atomics call ``ops.cmpxchg``/``ops.atomic_rmw``
with that ``cas``.

Order and faults.  Every builder call is evaluated where the Evaluator would
evaluate it, except that a side-effect-free value is computed where it is
used when nothing in between can change what it reads; effects (stores,
loads, FP calls, register writes) keep their order.  Each instruction's
statements are on lines of their own, so a fault (``GuestMemoryError``) or a
trapping FP call (``ops.IllegalTrap``) is attributed to its instruction from
the traceback's line number (``CompiledBlock.insn_at``): the instructions
before it have been committed, the faulting one's effects before the fault
too — exactly as in the Evaluator.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import CodeType

from aotc.interp import ops
from aotc.ir.builder import COUNTERS
from aotc.isa.riscv64.insn import Insn
from aotc.isa.riscv64.semantics import lift
from aotc.isa.riscv64.state import (
    EXIT_BREAK, EXIT_CONTINUE, EXIT_FENCE_I, EXIT_ILLEGAL, EXIT_SYSCALL,
)

MASK64 = ops.MASK64
_MASKS = ops.MASKS
_F = ops.INT_FUNCS

CONST, PURE, READ, CALL, STMT = range(5)
_ARMS = frozenset({0, 1})      # select's operands {a}, {b}: evaluated conditionally


class _Node:
    __slots__ = ("args", "atomic", "cond", "const", "emit", "i", "kind", "name",
                 "res", "site", "tpl", "users", "writes")

    def __init__(self, kind: int, tpl: str, args: tuple, writes: frozenset = frozenset(),
                 res: object = None, const: int | None = None) -> None:
        self.kind = kind
        self.tpl = tpl              # text with {a} {b} {c} for the args
        self.args = args            # _Node operands
        self.writes = writes        # resources an effect changes
        self.res = res              # the resource a READ reads
        self.const = const
        self.users: list[tuple[_Node, int]] = []
        self.i = 0                  # creation index within the instruction
        self.name: str | None = None
        self.emit = False           # a statement of its own
        self.site = 0               # index of the statement that evaluates it
        self.cond = False           # evaluated under a select arm there
        self.atomic = kind in (CONST, READ)


class V:
    """A builder value: a node and its type (int ``bits`` or float ``fbits``)."""

    __slots__ = ("bits", "fbits", "node")

    def __init__(self, node: _Node, bits: int, fbits: int = 0) -> None:
        self.node = node
        self.bits = bits
        self.fbits = fbits


_MEM = frozenset({"mem"})
_FCSR = frozenset({"fcsr"})


@dataclass(frozen=True)
class CompiledBlock:
    """One basic block as a Python function (see module docstring)."""

    fn: Callable
    pcs: tuple[int, ...]          # guest pc of each instruction
    insns: tuple[Insn, ...]
    exit: int                     # EXIT_* of the last instruction (EXIT_CONTINUE: none)
    line_insn: tuple[int, ...]    # source line -> instruction index
    source: str
    loop: bool = False            # fn(x, f, cpu, limit) repeats the block (see finish)

    @property
    def n(self) -> int:
        return len(self.pcs)

    def insn_at(self, tb) -> int:  # type: ignore[no-untyped-def]
        """Index of the instruction whose statement raised (from a traceback)."""
        code: CodeType = self.fn.__code__
        while tb is not None:
            if tb.tb_frame.f_code is code:
                return self.line_insn[tb.tb_lineno]
            tb = tb.tb_next
        raise LookupError("traceback does not pass through this block")


def _lit(v: int) -> str:
    return str(v) if v < 4096 else hex(v)


class PyCodegenBuilder:
    """``Builder`` that compiles one basic block to Python (see module docstring).

    ``lift_insn(insn)`` lifts one instruction and says whether it ends the block
    (control transfer or an exit); ``finish(namespace)`` compiles."""

    def __init__(self) -> None:
        self._lines: list[tuple[int, str]] = []    # (instruction index, statement)
        self._insns: list[Insn] = []
        self._nodes: list[_Node] = []
        self._temps = 0
        self._pc = 0
        self._next_pc = 0
        self._ret: _Node | None = None
        self._branch: tuple | None = None       # (cond node or None, taken, not taken)
        self._term: tuple | None = None         # (line index, cond text, taken, not taken)
        self.exit = EXIT_CONTINUE
        self.ended = False

    # -- driving -------------------------------------------------------------
    def lift_insn(self, insn: Insn) -> bool:
        assert not self.ended, "block already ended"
        self._pc = insn.pc
        self._next_pc = (insn.pc + insn.size) & MASK64
        self._nodes = []
        self._ret = None
        self._branch = None
        lift(self, insn)
        self._emit_insn(len(self._insns))
        self._insns.append(insn)
        if self.exit != EXIT_CONTINUE or self._ret is not None:
            self.ended = True
        return self.ended

    def __len__(self) -> int:
        return len(self._insns)

    @property
    def loops(self) -> bool:
        """The block ends in a direct jump or branch back to its own start."""
        return self._term is not None and self._insns[0].pc in self._term[2:]

    def finish(self, namespace: dict, loop: bool = False) -> CompiledBlock:
        """Compile the block; ``namespace`` supplies ld*/st* (and becomes the
        function's globals; ops' helpers are added to it).

        ``loop`` (when ``self.loops``): the function runs the block again
        while it branches back to its start, at most ``limit`` times (its
        4th argument), and leaves the number of runs in ``cpu.iters`` — also
        when it raises.  The caller must not need to see the start pc
        between iterations."""
        assert self._insns, "empty block"
        last = len(self._insns) - 1
        body = list(self._lines)
        if not self.ended or self.exit == EXIT_FENCE_I:
            body.append((last, f"return {_lit(self._next_pc)}"))
        loop = loop and self.loops
        if loop:
            at, cond, taken, not_taken = self._term
            start = self._insns[0].pc

            def leave(target: int, indent: str) -> list[tuple[int, str]]:
                if target == start:
                    return [(last, indent + "if k < limit: continue"),
                            (last, indent + f"cpu.iters = k; return {_lit(start)}")]
                return [(last, indent + f"cpu.iters = k; return {_lit(target)}")]
            term = leave(not_taken, "")
            if cond is not None:
                term = [(last, f"if {cond}:"), *leave(taken, "    "), *term]
            body = body[:at] + term + body[at + 1:]
            src_lines = ["def blk(x, f, cpu, limit):", "    k = 0", "    try:", "        while True:",
                         "            k += 1"]
            line_insn = [0] * 6
            indent = " " * 12
        else:
            src_lines = ["def blk(x, f, cpu):"]
            line_insn = [0, 0]                   # lines are 1-based; line 1 is the def
            indent = " " * 4
        for idx, stmt in body:
            src_lines.append(indent + stmt)
            line_insn.append(idx)
        if loop:
            src_lines += ["    except BaseException:", "        cpu.iters = k", "        raise"]
            line_insn += [last] * 3
        if len(src_lines) == 1:
            src_lines.append("    pass")
            line_insn.append(0)
        source = "\n".join(src_lines) + "\n"
        for name, fn in ops.HELPERS.items():
            namespace.setdefault(name, fn)
        for name, fn in ops.FP_HELPERS.items():
            namespace.setdefault(name, fn)
        for name, fn in ops.ATOMIC_HELPERS.items():
            namespace.setdefault(name, fn)
        code = compile(source, f"<block {self._insns[0].pc:#x}>", "exec")
        loc: dict = {}
        exec(code, namespace, loc)   # noqa: S102 - our own generated source
        return CompiledBlock(loc["blk"], tuple(i.pc for i in self._insns), tuple(self._insns),
                             self.exit, tuple(line_insn), source, loop)

    # -- graph construction ------------------------------------------------------
    def _node(self, kind: int, tpl: str, args: tuple = (), **kw) -> _Node:  # type: ignore[no-untyped-def]
        n = _Node(kind, tpl, args, **kw)
        n.i = len(self._nodes)
        for pos, a in enumerate(args):
            a.users.append((n, pos))
        self._nodes.append(n)
        return n

    def _const(self, v: int, bits: int) -> V:
        v &= _MASKS[bits]
        return V(self._node(CONST, _lit(v), const=v), bits)

    def _op(self, name: str, bits: int, args: tuple[V, ...], w: int, out_bits: int) -> V:
        """A pure integer primitive (ops.INT_OPS[name]); folded when constant."""
        s, m = 1 << (w - 1), _MASKS[out_bits]
        if all(a.node.kind == CONST for a in args):
            vals = [a.node.const for a in args] + [0, 0, 0]
            return self._const(int(_F[name](vals[0], vals[1], vals[2], w, s, m)), out_bits)
        tpl = ops.INT_OPS[name].format(a="{a}", b="{b}", c="{c}", w=w, s=_lit(s), m=_lit(m))
        return V(self._node(PURE, tpl, tuple(a.node for a in args)), bits)

    def _stmt(self, tpl: str, args: tuple[V, ...], writes: frozenset) -> None:
        self._node(STMT, tpl, tuple(a.node for a in args), writes=writes)

    def _call(self, tpl: str, args: tuple[V, ...], bits: int, fbits: int = 0,
              writes: frozenset = _FCSR) -> V:
        return V(self._node(CALL, tpl, tuple(a.node for a in args), writes=writes), bits, fbits)

    # -- per-instruction code generation -------------------------------------------
    def _emit_insn(self, idx: int) -> None:
        nodes = self._nodes
        # Decide, last node first, which values are statements of their own
        # and where each inline one is evaluated (its user's statement).
        for n in reversed(nodes):
            users = [(u, p) for u, p in n.users if u.site >= 0]    # live users (decided already)
            if n.kind == STMT:
                n.emit, n.site = True, n.i
                continue
            if not users:
                if n.kind == CALL:            # its effect still happens
                    n.emit, n.site = True, n.i
                else:
                    n.site = -1               # dead: nobody reads it
                continue
            if n.kind == CONST:
                continue
            if n.kind == PURE and len(users) == 1:
                self._inline(n, users[0])
                continue
            if n.kind == READ and all(not self._writes_between(n.i, u.site, n.res) for u, _ in users):
                continue                      # re-read at each use: nothing changed it
            if (n.kind == CALL and len(users) == 1 and not self._under_arm(users[0])
                    and all(m.kind in (PURE, CONST) for m in nodes[n.i + 1:users[0][0].site])):
                self._inline(n, users[0])
                continue
            self._temps += 1
            n.name, n.emit, n.site, n.atomic = f"t{self._temps}", True, n.i, True
        emitted = [n for n in nodes if n.emit]
        for n in emitted:
            if n.name is not None:
                line = f"{n.name} = {self._render(n, named=False)}"
            else:
                line = self._render(n)
            if n is self._ret and n is not emitted[-1]:
                line = "npc = " + line[len("return "):]   # effects follow the jump
            elif n is self._ret and self._branch is not None:
                cond, taken, not_taken = self._branch
                text = None if cond is None else self._render(cond)
                if text is not None and not (cond.atomic or cond.name is not None):
                    text = f"({text})"
                self._term = (len(self._lines), text, taken, not_taken)
            self._lines.append((idx, line))
        if self._ret is not None and self._ret is not emitted[-1]:
            self._lines.append((idx, "return npc"))

    def _inline(self, n: _Node, user: tuple[_Node, int]) -> None:
        u, pos = user
        n.site = u.site
        n.cond = u.cond or (u.tpl.startswith("{a} if") and pos in _ARMS)

    @staticmethod
    def _under_arm(user: tuple[_Node, int]) -> bool:
        u, pos = user
        return u.cond or (u.tpl.startswith("{a} if") and pos in _ARMS)

    def _writes_between(self, lo: int, hi: int, res: object) -> bool:
        return any(res in m.writes for m in self._nodes[lo + 1:hi])

    def _render(self, n: _Node, named: bool = True) -> str:
        if named and n.name is not None:
            return n.name
        if n.kind in (CONST, READ):
            return n.tpl
        args = []
        for a in n.args:
            r = self._render(a)
            args.append(r if a.atomic or (a.name is not None) else f"({r})")
        return n.tpl.format(**dict(zip("abc", args)))

    # -- Builder: context ----------------------------------------------------------
    @property
    def pc(self) -> int:
        return self._pc

    @property
    def next_pc(self) -> int:
        return self._next_pc

    # -- constants and width changes ----------------------------------------------
    def const(self, value: int, bits: int = 64) -> V:
        return self._const(value, bits)

    def zext(self, v: V, bits: int) -> V:
        if v.bits == 1:
            return self._op("zext1", bits, (v,), 1, bits)
        return V(v.node, bits)

    def sext(self, v: V, bits: int) -> V:
        return self._op("sext", bits, (v,), v.bits, bits)

    def trunc(self, v: V, bits: int) -> V:
        return self._op("trunc", bits, (v,), v.bits, bits)

    # -- registers ---------------------------------------------------------------
    def get_x(self, r: int) -> V:
        if r == 0:
            return self._const(0, 64)
        return V(self._node(READ, f"x[{r}]", res=("x", r)), 64)

    def set_x(self, r: int, v: V) -> None:
        assert v.bits == 64
        if r:
            self._stmt(f"x[{r}] = {{a}}", (v,), frozenset({("x", r)}))

    def get_f(self, r: int) -> V:
        return V(self._node(READ, f"f[{r}]", res=("f", r)), 64)

    def set_f(self, r: int, v: V) -> None:
        assert v.bits == 64
        self._stmt(f"f[{r}] = {{a}}", (v,), frozenset({("f", r)}))

    def get_fcsr(self) -> V:
        n = self._node(READ, "(cpu.fcsr & 255)", res="fcsr")
        n.atomic = True
        return V(n, 64)

    def set_fcsr(self, v: V) -> None:
        self._stmt("cpu.fcsr = {a} & 255", (v,), _FCSR)

    # -- integer arithmetic ---------------------------------------------------------
    def _bin(self, name: str, a: V, b: V) -> V:
        bits = a.bits
        # identities that keep the other operand as it is (x + 0, x | 0, ...)
        if b.node.kind == CONST:
            c = b.node.const
            if (c == 0 and name in ("add", "sub", "or_", "xor", "shl", "lshr", "ashr")) or \
                    (name == "and_" and c == _MASKS[bits]):
                return a
        return self._op(name, bits, (a, b), bits, bits)

    def add(self, a: V, b: V) -> V:
        return self._bin("add", a, b)

    def sub(self, a: V, b: V) -> V:
        return self._bin("sub", a, b)

    def mul(self, a: V, b: V) -> V:
        return self._bin("mul", a, b)

    def and_(self, a: V, b: V) -> V:
        return self._bin("and_", a, b)

    def or_(self, a: V, b: V) -> V:
        return self._bin("or_", a, b)

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
        return self._op(pred, 1, (a, b), a.bits, 1)

    def select(self, cond: V, a: V, b: V) -> V:
        if cond.node.kind == CONST:
            return a if cond.node.const else b
        if a.node is b.node:
            return a
        tpl = ops.INT_OPS["select"]
        return V(self._node(PURE, tpl, (a.node, b.node, cond.node)), a.bits, a.fbits)

    def ctlz(self, v: V) -> V:
        return self._op("ctlz", v.bits, (v,), v.bits, v.bits)

    def cttz(self, v: V) -> V:
        return self._op("cttz", v.bits, (v,), v.bits, v.bits)

    def ctpop(self, v: V) -> V:
        return self._op("ctpop", v.bits, (v,), v.bits, v.bits)

    # -- memory -----------------------------------------------------------------------
    def load(self, addr: V, bits: int) -> V:
        return self._call(f"ld{bits // 8}({{a}})", (addr,), bits, writes=frozenset())

    def store(self, addr: V, v: V) -> None:
        self._stmt(f"st{v.bits // 8}({{a}}, {{b}})", (addr, v), _MEM)

    def get_reservation(self) -> V:
        return V(self._node(READ, "cpu.reservation", res="res"), 64)

    def set_reservation(self, v: V) -> None:
        self._stmt("cpu.reservation = {a}", (v,), frozenset({"res"}))

    def get_reservation_value(self) -> V:
        return V(self._node(READ, "cpu.reservation_value", res="resv"), 64)

    def set_reservation_value(self, v: V) -> None:
        self._stmt("cpu.reservation_value = {a}", (v,), frozenset({"resv"}))

    # -- atomics (effects on memory, never moved or dropped) ---------------------
    def atomic_rmw(self, op: str, addr: V, v: V, bits: int) -> V:
        assert op in ops._RMW, op
        return self._call(f"atomic_rmw(cas, {op!r}, {{a}}, {{b}}, {bits})", (addr, v), bits, writes=_MEM)

    def cmpxchg(self, addr: V, expected: V, new: V, bits: int) -> V:
        return self._call(f"cmpxchg(cas, {{a}}, {{b}}, {{c}}, {bits})", (addr, expected, new), bits,
                          writes=_MEM)

    def fence(self, store_load: bool = True) -> None:
        if store_load:           # else nothing: the interpreter keeps program order
            self._stmt("fence()", (), _MEM)

    # -- counters (a call each time: never merged or moved) ----------------------
    def read_counter(self, which: str) -> V:
        assert which in COUNTERS, which
        return self._call(f"read_counter({which!r})", (), 64, writes=_MEM)

    # -- floating point ------------------------------------------------------------
    def bitcast_to_float(self, v: V) -> V:
        assert v.bits in (32, 64)
        return V(v.node, 0, v.bits)

    def bitcast_to_int(self, v: V) -> V:
        return V(v.node, v.fbits)

    def fbinop(self, op: str, a: V, b: V, rm: int) -> V:
        return self._call(f"fbinop(cpu, {op!r}, {{a}}, {{b}}, {a.fbits}, {rm})", (a, b), 0, a.fbits)

    def fsqrt(self, a: V, rm: int) -> V:
        return self._call(f"fsqrt(cpu, {{a}}, {a.fbits}, {rm})", (a,), 0, a.fbits)

    def fma(self, a: V, b: V, c: V, rm: int) -> V:
        return self._call(f"fma(cpu, {{a}}, {{b}}, {{c}}, {a.fbits}, {rm})", (a, b, c), 0, a.fbits)

    def fcmp(self, pred: str, a: V, b: V) -> V:
        # pure, but Fraction-based: computed once where it is made
        return self._call(f"fcmp({pred!r}, {{a}}, {{b}}, {a.fbits})", (a, b), 1, writes=frozenset())

    def fconvert(self, v: V, fbits: int, rm: int) -> V:
        return self._call(f"fconvert(cpu, {{a}}, {v.fbits}, {fbits}, {rm})", (v,), 0, fbits)

    def int_to_float(self, v: V, fbits: int, signed: bool, rm: int) -> V:
        return self._call(f"int_to_float(cpu, {{a}}, {v.bits}, {fbits}, {signed}, {rm})", (v,), 0, fbits)

    def float_to_int(self, v: V, bits: int, signed: bool, rm: int) -> V:
        return self._call(f"float_to_int(cpu, {{a}}, {v.fbits}, {bits}, {signed}, {rm})", (v,), bits)

    def rounding_mode(self, rm: int) -> V:
        if rm != 7:
            return self._const(rm, 64)
        return self._call("resolve_rm(cpu, 7)", (), 64)    # in order: it may trap

    def raise_fflags(self, flags: V) -> None:
        if flags.node.kind == CONST and not flags.node.const & 0x1F:
            return
        self._stmt("cpu.fcsr |= {a} & 31", (flags,), _FCSR)

    # -- control flow ------------------------------------------------------------------
    def _terminate(self, tpl: str, args: tuple[V, ...]) -> None:
        self._stmt(tpl, args, frozenset({"ret"}))
        self._ret = self._nodes[-1]

    def jump(self, target: int, returns_to: int | None = None) -> None:
        self._terminate(f"return {_lit(target & MASK64)}", ())
        self._branch = (None, target & MASK64, target & MASK64)

    def jump_indirect(self, target: V, returns_to: int | None = None,
                      is_return: bool = False) -> None:
        self._terminate("return {a}", (target,))

    def branch(self, cond: V, taken: int, not_taken: int) -> None:
        if cond.node.kind == CONST:
            self.jump(taken if cond.node.const else not_taken)
            return
        taken, not_taken = taken & MASK64, not_taken & MASK64
        self._terminate(f"return {_lit(taken)} if {{a}} else {_lit(not_taken)}", (cond,))
        self._branch = (cond.node, taken, not_taken)

    def syscall(self) -> None:
        self.exit = EXIT_SYSCALL

    def trap_illegal(self) -> None:
        self.exit = EXIT_ILLEGAL

    def breakpoint(self) -> None:
        self.exit = EXIT_BREAK

    def fence_i(self) -> None:
        self.exit = EXIT_FENCE_I
