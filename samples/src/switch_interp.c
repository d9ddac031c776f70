/* switch_interp: a small stack-machine bytecode interpreter whose dispatch
 * is one big dense switch, so gcc emits a jump table (an indirect jump
 * through a table of code addresses). Runs a few programs and prints the
 * results. Build without -fno-jump-tables. */
#include <stdio.h>
#include <string.h>

enum op {
    OP_HALT, OP_PUSH, OP_POP, OP_DUP, OP_SWAP, OP_OVER, OP_ADD, OP_SUB,
    OP_MUL, OP_DIV, OP_MOD, OP_NEG, OP_AND, OP_OR, OP_XOR, OP_NOT,
    OP_SHL, OP_SHR, OP_EQ, OP_LT, OP_GT, OP_JMP, OP_JZ, OP_JNZ,
    OP_LOAD, OP_STORE, OP_INC, OP_DEC, OP_PRINT, OP_CALL, OP_RET, OP_ROT,
    OP_MIN, OP_MAX, OP_ABS, OP_SQR, OP_NOP, OP_EMIT, OP_HASH, OP_LE,
};

typedef long word;

static word mem[64];
static unsigned long hashv;

static int run(const word *code, const char *name)
{
    word stack[256];
    int sp = 0, pc = 0;
    int rstack[64], rsp = 0;
    unsigned long steps = 0;
    memset(mem, 0, sizeof mem);
    hashv = 5381;
    printf("[%s]", name);
    for (;;) {
        steps++;
        word op = code[pc++];
        word a, b;
        switch (op) {
        case OP_HALT:
            printf(" | steps=%lu hash=%lu sp=%d\n", steps, hashv, sp);
            return sp ? (int)stack[sp - 1] : 0;
        case OP_PUSH: stack[sp++] = code[pc++]; break;
        case OP_POP: sp--; break;
        case OP_DUP: stack[sp] = stack[sp - 1]; sp++; break;
        case OP_SWAP: a = stack[sp - 1]; stack[sp - 1] = stack[sp - 2]; stack[sp - 2] = a; break;
        case OP_OVER: stack[sp] = stack[sp - 2]; sp++; break;
        case OP_ADD: sp--; stack[sp - 1] += stack[sp]; break;
        case OP_SUB: sp--; stack[sp - 1] -= stack[sp]; break;
        case OP_MUL: sp--; stack[sp - 1] *= stack[sp]; break;
        case OP_DIV: sp--; stack[sp - 1] = stack[sp] ? stack[sp - 1] / stack[sp] : 0; break;
        case OP_MOD: sp--; stack[sp - 1] = stack[sp] ? stack[sp - 1] % stack[sp] : 0; break;
        case OP_NEG: stack[sp - 1] = -stack[sp - 1]; break;
        case OP_AND: sp--; stack[sp - 1] &= stack[sp]; break;
        case OP_OR: sp--; stack[sp - 1] |= stack[sp]; break;
        case OP_XOR: sp--; stack[sp - 1] ^= stack[sp]; break;
        case OP_NOT: stack[sp - 1] = ~stack[sp - 1]; break;
        case OP_SHL: sp--; stack[sp - 1] = (word)((unsigned long)stack[sp - 1] << (stack[sp] & 63)); break;
        case OP_SHR: sp--; stack[sp - 1] = (word)((unsigned long)stack[sp - 1] >> (stack[sp] & 63)); break;
        case OP_EQ: sp--; stack[sp - 1] = stack[sp - 1] == stack[sp]; break;
        case OP_LT: sp--; stack[sp - 1] = stack[sp - 1] < stack[sp]; break;
        case OP_GT: sp--; stack[sp - 1] = stack[sp - 1] > stack[sp]; break;
        case OP_LE: sp--; stack[sp - 1] = stack[sp - 1] <= stack[sp]; break;
        case OP_JMP: pc = (int)code[pc]; break;
        case OP_JZ: a = stack[--sp]; pc = a == 0 ? (int)code[pc] : pc + 1; break;
        case OP_JNZ: a = stack[--sp]; pc = a != 0 ? (int)code[pc] : pc + 1; break;
        case OP_LOAD: stack[sp++] = mem[code[pc++] & 63]; break;
        case OP_STORE: mem[code[pc++] & 63] = stack[--sp]; break;
        case OP_INC: stack[sp - 1]++; break;
        case OP_DEC: stack[sp - 1]--; break;
        case OP_PRINT: printf(" %ld", stack[--sp]); break;
        case OP_CALL: rstack[rsp++] = pc + 1; pc = (int)code[pc]; break;
        case OP_RET: pc = rstack[--rsp]; break;
        case OP_ROT: a = stack[sp - 3]; stack[sp - 3] = stack[sp - 2]; stack[sp - 2] = stack[sp - 1]; stack[sp - 1] = a; break;
        case OP_MIN: sp--; b = stack[sp]; if (b < stack[sp - 1]) stack[sp - 1] = b; break;
        case OP_MAX: sp--; b = stack[sp]; if (b > stack[sp - 1]) stack[sp - 1] = b; break;
        case OP_ABS: if (stack[sp - 1] < 0) stack[sp - 1] = -stack[sp - 1]; break;
        case OP_SQR: stack[sp - 1] *= stack[sp - 1]; break;
        case OP_NOP: break;
        case OP_EMIT: putchar(' '); putchar((int)stack[--sp]); break;
        case OP_HASH: hashv = hashv * 33 + (unsigned long)stack[--sp]; break;
        default:
            printf(" bad opcode %ld at %d\n", op, pc - 1);
            return -1;
        }
    }
}

/* sum of 1..n, printing partial sums every 10 */
static const word prog_sum[] = {
    OP_PUSH, 0, OP_STORE, 0,          /* 0: acc = 0 */
    OP_PUSH, 100, OP_STORE, 1,        /* 4: i = 100 */
    OP_LOAD, 0, OP_LOAD, 1, OP_ADD, OP_STORE, 0, /* 8 */
    OP_LOAD, 1, OP_PUSH, 10, OP_MOD, OP_JNZ, 26, /* 15 */
    OP_LOAD, 0, OP_PRINT, OP_NOP,     /* 22 */
    OP_LOAD, 0, OP_HASH,              /* 26 */
    OP_LOAD, 1, OP_DEC, OP_DUP, OP_STORE, 1, OP_JNZ, 8, /* 29 */
    OP_LOAD, 0, OP_HALT,              /* 37 */
};

/* gcd/lcm, bit ops, min/max/abs */
static const word prog_bits[] = {
    OP_PUSH, 1071, OP_PUSH, 462,      /* 0 */
    /* 4: gcd loop: (a b) while b: (b a%b) */
    OP_DUP, OP_JZ, 17,
    OP_DUP, OP_ROT, OP_SWAP, OP_MOD, OP_NOP, OP_NOP, OP_NOP, OP_JMP, 4, OP_NOP,
    /* 17: */
    OP_POP, OP_DUP, OP_PRINT,
    OP_PUSH, 0x0f0f, OP_PUSH, 0x3c3c, OP_XOR, OP_DUP, OP_PRINT,
    OP_PUSH, 4, OP_SHL, OP_DUP, OP_PRINT, OP_PUSH, 2, OP_SHR, OP_NOT, OP_DUP, OP_PRINT,
    OP_PUSH, -1234, OP_ABS, OP_PUSH, 77, OP_MIN, OP_DUP, OP_PRINT,
    OP_PUSH, -5, OP_PUSH, 9, OP_MAX, OP_SQR, OP_DUP, OP_PRINT,
    OP_PUSH, 'o', OP_PUSH, 'k', OP_SWAP, OP_EMIT, OP_EMIT,
    OP_PUSH, 3, OP_PUSH, 3, OP_LE, OP_PUSH, 2, OP_PUSH, 3, OP_GT, OP_PUSH, 5,
    OP_PUSH, 5, OP_EQ, OP_OR, OP_AND, OP_PRINT,
    OP_PUSH, -17, OP_PUSH, 5, OP_DIV, OP_PRINT, OP_PUSH, -17, OP_PUSH, 5, OP_MOD, OP_PRINT,
    OP_PUSH, 1, OP_PUSH, 0, OP_DIV, OP_NEG, OP_PRINT,
    OP_HASH, OP_HASH, OP_HASH, OP_HASH,
    OP_PUSH, 42, OP_HALT,
};

static word buf_prog[256];

static int emit_at;
static void E(word w) { buf_prog[emit_at++] = w; }

int main(void)
{
    int r;
    r = run(prog_sum, "sum");
    printf("sum result %d\n", r);

    /* iterative fibonacci with a subroutine (call/ret), swap/over */
    emit_at = 0;
    E(OP_PUSH); E(0); E(OP_PUSH); E(1);             /* (a b) */
    E(OP_PUSH); E(60); E(OP_STORE); E(5);          /* count = 60 */
    int loop = emit_at;
    E(OP_CALL); int fix_step = emit_at; E(0);
    E(OP_LOAD); E(5); E(OP_DEC); E(OP_DUP); E(OP_STORE); E(5);
    E(OP_JNZ); E(loop);
    E(OP_JMP); int fix_end = emit_at; E(0);
    buf_prog[fix_step] = emit_at;                  /* step: (a b) -> (b a+b) */
    E(OP_SWAP); E(OP_OVER); E(OP_ADD);
    E(OP_DUP); E(OP_PUSH); E(7); E(OP_MOD); E(OP_JNZ); int fix_noprint = emit_at; E(0);
    E(OP_DUP); E(OP_PRINT);
    buf_prog[fix_noprint] = emit_at;
    E(OP_DUP); E(OP_HASH); E(OP_RET);
    buf_prog[fix_end] = emit_at;
    E(OP_PRINT); E(OP_PUSH); E(1000000007); E(OP_MOD); E(OP_HALT);
    r = run(buf_prog, "fib");
    printf("fib result %d\n", r);

    r = run(prog_bits, "bits");
    printf("bits result %d\n", r);

    /* collatz: build with explicit labels */
    emit_at = 0;
    E(OP_PUSH); E(1); E(OP_STORE); E(2);           /* 0: n = 1 */
    E(OP_PUSH); E(0); E(OP_STORE); E(3);           /* 4: best = 0 */
    int outer = emit_at;                           /* 8 */
    E(OP_PUSH); E(0); E(OP_STORE); E(4); E(OP_LOAD); E(2); E(OP_STORE); E(5);
    int inner = emit_at;
    E(OP_LOAD); E(5); E(OP_PUSH); E(1); E(OP_EQ); E(OP_JNZ); int fix_done = emit_at; E(0);
    E(OP_LOAD); E(4); E(OP_INC); E(OP_STORE); E(4);
    E(OP_LOAD); E(5); E(OP_PUSH); E(1); E(OP_AND); E(OP_JZ); int fix_even = emit_at; E(0);
    E(OP_LOAD); E(5); E(OP_PUSH); E(3); E(OP_MUL); E(OP_INC); E(OP_STORE); E(5);
    E(OP_JMP); E(inner);
    buf_prog[fix_even] = emit_at;
    E(OP_LOAD); E(5); E(OP_PUSH); E(1); E(OP_SHR); E(OP_STORE); E(5);
    E(OP_JMP); E(inner);
    buf_prog[fix_done] = emit_at;
    E(OP_LOAD); E(4); E(OP_HASH);
    E(OP_LOAD); E(4); E(OP_LOAD); E(3); E(OP_MAX); E(OP_STORE); E(3);
    E(OP_LOAD); E(2); E(OP_PUSH); E(50); E(OP_MOD); E(OP_JNZ); int fix_skip = emit_at; E(0);
    E(OP_LOAD); E(4); E(OP_PRINT);
    buf_prog[fix_skip] = emit_at;
    E(OP_LOAD); E(2); E(OP_INC); E(OP_DUP); E(OP_STORE); E(2);
    E(OP_PUSH); E(1000); E(OP_GT); E(OP_JZ); E(outer);
    E(OP_LOAD); E(3); E(OP_HALT);
    r = run(buf_prog, "collatz");
    printf("collatz max steps %d\n", r);

    /* an invalid opcode is reported */
    static const word bad[] = {OP_PUSH, 1, 99};
    r = run(bad, "bad");
    printf("bad result %d\n", r);
    return 0;
}
