/* Fibers for the emulated GPU (see simt_fiber.h). Test infrastructure. */
#include "simt_fiber.h"

#include <cstdint>
#include <cstdlib>
#include <cstring>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#define SAEC_SIMT_ASAN 1
#endif

namespace saec_simt {

/* AddressSanitizer must be told which stack is live, or it reports the switch itself. */
static void asan_before(fiber *from, fiber *to, bool finishing) {
#ifdef SAEC_SIMT_ASAN
    __sanitizer_start_switch_fiber(finishing ? nullptr : &from->asan_fake_stack, to->stack_lo,
                                   to->stack_size);
#else
    (void)from, (void)to, (void)finishing;
#endif
}
/* Back on self's stack. `prev` is the stack just left: in the emulator's two-level model (the
   scheduler and its threads) always the one self switched to. AddressSanitizer tells its bounds,
   which is how the scheduler's own stack (never allocated here) becomes known. */
static void asan_after(fiber *self, fiber *prev) {
#ifdef SAEC_SIMT_ASAN
    const void *bottom = nullptr;
    size_t size = 0;
    __sanitizer_finish_switch_fiber(self->asan_fake_stack, &bottom, &size);
    if (prev && !prev->stack_lo) {
        prev->stack_lo = (char *)bottom;
        prev->stack_size = size;
    }
#else
    (void)self, (void)prev;
#endif
}
void fiber_started(fiber *self, fiber *prev) {
    self->asan_fake_stack = nullptr;
    asan_after(self, prev);
}

} // namespace saec_simt

#if defined(__x86_64__)

/* saec_simt_switch(void **save_sp, void *load_sp): push the System V callee-saved registers and
   the MXCSR / x87 control words, store rsp, load the other stack, pop the same, return into it.
   saec_simt_trampoline is where a new fiber's first return lands: entry(arg) from r13/r12. */
__asm__(".text\n"
        ".globl saec_simt_switch\n"
        ".type saec_simt_switch,@function\n"
        "saec_simt_switch:\n"
        "  pushq %rbp\n"
        "  pushq %rbx\n"
        "  pushq %r12\n"
        "  pushq %r13\n"
        "  pushq %r14\n"
        "  pushq %r15\n"
        "  subq $8, %rsp\n"
        "  stmxcsr (%rsp)\n"
        "  fnstcw 4(%rsp)\n"
        "  movq %rsp, (%rdi)\n"
        "  movq %rsi, %rsp\n"
        "  ldmxcsr (%rsp)\n"
        "  fldcw 4(%rsp)\n"
        "  addq $8, %rsp\n"
        "  popq %r15\n"
        "  popq %r14\n"
        "  popq %r13\n"
        "  popq %r12\n"
        "  popq %rbx\n"
        "  popq %rbp\n"
        "  ret\n"
        ".size saec_simt_switch,.-saec_simt_switch\n"
        ".globl saec_simt_trampoline\n"
        ".type saec_simt_trampoline,@function\n"
        "saec_simt_trampoline:\n"
        "  movq %r12, %rdi\n"
        "  callq *%r13\n"
        "  ud2\n"
        ".size saec_simt_trampoline,.-saec_simt_trampoline\n"
        ".section .note.GNU-stack,\"\",@progbits\n"
        ".text\n");
extern "C" void saec_simt_switch(void **save_sp, void *load_sp);
extern "C" void saec_simt_trampoline(void);

namespace saec_simt {

void fiber_init(fiber *f, void (*entry)(void *), void *arg) {
    /* The frame saec_simt_switch pops, from the top of the stack down:
       [top-8] return address (trampoline); rbp, rbx, r12 (arg), r13 (entry), r14, r15;
       [top-64] MXCSR and x87 control word, copied from the creating thread. */
    uintptr_t top = ((uintptr_t)f->stack_lo + f->stack_size) & ~(uintptr_t)15;
    uint64_t *s = (uint64_t *)top;
    s[-1] = (uint64_t)(uintptr_t)&saec_simt_trampoline;
    s[-2] = 0;                          /* rbp */
    s[-3] = 0;                          /* rbx */
    s[-4] = (uint64_t)(uintptr_t)arg;   /* r12 */
    s[-5] = (uint64_t)(uintptr_t)entry; /* r13 */
    s[-6] = 0;                          /* r14 */
    s[-7] = 0;                          /* r15 */
    uint32_t mxcsr;
    uint16_t fpucw;
    __asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
    __asm__ volatile("fnstcw %0" : "=m"(fpucw));
    uint32_t words[2] = {mxcsr, fpucw};
    std::memcpy(&s[-8], words, sizeof words);
    f->sp = &s[-8];
}

void fiber_switch(fiber *from, fiber *to, bool finishing) {
    asan_before(from, to, finishing);
    saec_simt_switch(&from->sp, to->sp);
    asan_after(from, to);
}

} // namespace saec_simt

#else
#error "the emulated GPU's fiber switch is written for x86-64 only (tests/simt/simt_fiber.cpp)"
#endif
