/* codegen_arch.h: the few machine instructions the code-generating samples
 * (jitgen.c, selfmod.c) write, for each ISA the samples are built for.
 *
 *   emit_add_imm(p, k)  writes "return x + k" for long f(long x), k < 2048,
 *                       and returns the number of bytes written (<= 16).
 *   flush_code(p, n)    makes freshly written instructions visible to
 *                       instruction fetch (__builtin___clear_cache: on
 *                       riscv64 Linux this is the riscv_flush_icache system
 *                       call, on aarch64 cache maintenance, a no-op on x86).
 */
#ifndef CODEGEN_ARCH_H
#define CODEGEN_ARCH_H

#include <stdint.h>
#include <string.h>

static inline void put32(unsigned char *p, uint32_t w)
{
    memcpy(p, &w, 4);
}

static inline int emit_add_imm(unsigned char *p, long k)
{
#if defined(__riscv)
    put32(p, ((uint32_t)(k & 0xFFF) << 20) | (10u << 15) | (10u << 7) | 0x13u); /* addi a0, a0, k */
    put32(p + 4, 0x00008067u);                                                  /* ret */
    return 8;
#elif defined(__aarch64__)
    put32(p, 0x91000000u | ((uint32_t)(k & 0xFFF) << 10));                      /* add x0, x0, #k */
    put32(p + 4, 0xD65F03C0u);                                                  /* ret */
    return 8;
#elif defined(__x86_64__)
    p[0] = 0x48; p[1] = 0x8D; p[2] = 0x87;                                      /* lea rax, [rdi + k] */
    put32(p + 3, (uint32_t)k);
    p[7] = 0xC3;                                                                /* ret */
    return 8;
#else
#error "codegen_arch.h: unsupported ISA"
#endif
}

static inline void flush_code(unsigned char *p, int n)
{
    __builtin___clear_cache((char *)p, (char *)p + n);
}

#endif
