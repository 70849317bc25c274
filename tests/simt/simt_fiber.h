/* Fibers for the emulated GPU: one per CUDA thread of the block being run. Test infrastructure.
 *
 * A switch saves the callee-saved registers and the floating-point control words on the old
 * stack and loads the new stack pointer: no system call (swapcontext makes one per switch to
 * save the signal mask, which made the whole tier several times slower). Written for x86-64,
 * the machines CI and the project run on; porting means one more switch routine.
 */
#ifndef SAEC_SIMT_FIBER_H
#define SAEC_SIMT_FIBER_H

#include <cstddef>

namespace saec_simt {

struct fiber {
    void *sp = nullptr;        /* saved stack pointer while switched out (x86-64) */
    char *stack_lo = nullptr;  /* usable stack [stack_lo, stack_lo + stack_size) */
    size_t stack_size = 0;
    void *asan_fake_stack = nullptr;
};

/* Prepare f to start entry(arg) on its stack at the next switch into it. entry never returns:
   it ends by switching away for the last time (fiber_switch with `finishing` set). */
void fiber_init(fiber *f, void (*entry)(void *), void *arg);
/* Save the running context in `from` and continue `to`. `finishing`: `from` never runs again. */
void fiber_switch(fiber *from, fiber *to, bool finishing = false);
/* The first thing a new fiber's entry does (AddressSanitizer's bookkeeping of the switch);
   prev is the fiber that started it. */
void fiber_started(fiber *self, fiber *prev);

} // namespace saec_simt

#endif
