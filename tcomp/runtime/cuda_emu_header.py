"""The C++ header of the CUDA emulation: CUDA's vocabulary mapped to C++, and fibers for the threads of a block.

``__global__`` and ``__device__`` vanish, ``threadIdx`` and ``blockIdx`` are thread-local variables the launcher sets,
``__shared__`` arrays (and a kernel's dynamic shared memory) are ``static thread_local``: one copy per CPU thread,
and each CPU thread runs one block at a time, so every block sees its own shared memory while blocks run in
parallel.

A kernel that synchronizes its threads (``__syncthreads()``, or a warp shuffle) runs each CUDA thread of a block as a
fiber: a stack of its own (``fiber_stack_bytes``, mapped for the launch) and a switch of registers, no OS thread.
The block's scheduler resumes fiber 0, 1, ..., each running until its next barrier (or its end), then starts the
next round, until every fiber has finished; a barrier is one switch to the scheduler and back. A warp shuffle writes
the thread's value to a slot, waits at a barrier, reads its partner's slot and waits again, so every thread of the
block must execute the same shuffles (as tcomp's reductions do). The switch is a few instructions of assembly on
x86-64 and ``swapcontext`` elsewhere. A canary at the bottom of each stack catches a kernel that outgrew it (the
launch returns 2).
"""

from __future__ import annotations

# a fiber's stack: this much for the kernel's frames, plus twice the kernel's local arrays
FIBER_STACK_BYTES = 128 * 1024


def fiber_stack_bytes(local_bytes: int) -> int:
    """The stack each fiber of a kernel with ``local_bytes`` of local arrays per thread gets (a multiple of 4 KB)."""
    return -(-(FIBER_STACK_BYTES + 2 * local_bytes) // 4096) * 4096

_PRELUDE = r"""// tcomp CUDA emulation: CUDA C on the CPU, blocks in parallel, threads as loop iterations or fibers
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <omp.h>
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static thread_local
#define __syncthreads() tc_barrier()
#define __align__(n) __attribute__((aligned(n)))
#define TC_DYNAMIC_SHARED(name, bytes) static thread_local __attribute__((aligned(16))) unsigned char name[bytes]
struct tc_dim3 { unsigned int x, y, z; };
struct float2 { float x, y; };  // no alignment asked: host arrays may start anywhere
struct float4 { float x, y, z, w; };
struct int2 { int x, y; };
struct int4 { int x, y, z, w; };
static thread_local tc_dim3 threadIdx;
static thread_local tc_dim3 blockIdx;
static tc_dim3 blockDim;
static tc_dim3 gridDim;
static const int warpSize = 32;
template <typename T> static inline T min(T a, T b) { return a < b ? a : b; }
template <typename T> static inline T max(T a, T b) { return a < b ? b : a; }
static inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
static inline double rsqrt(double x) { return 1.0 / sqrt(x); }
static inline float __int_as_float(int bits) { float f; memcpy(&f, &bits, 4); return f; }
static inline float __uint_as_float(unsigned bits) { float f; memcpy(&f, &bits, 4); return f; }
static inline unsigned __float_as_uint(float f) { unsigned bits; memcpy(&bits, &f, 4); return bits; }
static inline long long __double_as_longlong(double d) { long long bits; memcpy(&bits, &d, 8); return bits; }
static inline double __longlong_as_double(long long bits) { double d; memcpy(&d, &bits, 8); return d; }
"""

_FIBERS = r"""
// ---- fibers: the threads of one block on one CPU thread ----
#define TC_CANARY 0x7463666962657221ULL
typedef void (*tc_thunk)(const void*);
struct tc_fiber_state {
  char* stacks;             // count stacks of stack_bytes each, mapped for one launch
  int count;
  size_t stack_bytes;
  void** sp;                // each fiber's saved stack pointer
  unsigned char* done;
  unsigned long long* slots; // a warp shuffle's values, one per fiber
  void* scheduler;          // the scheduler's saved stack pointer
  int current;              // the running fiber: the linear index of its CUDA thread
  tc_thunk thunk;
  const void* args;
};
static thread_local tc_fiber_state tc_fs;

#if defined(__x86_64__) && !defined(TC_EMU_UCONTEXT)
#define TC_ASM_SWITCH 1
extern "C" __attribute__((visibility("hidden"))) void tc_switch(void** save, void* load);
extern "C" __attribute__((visibility("hidden"))) void tc_fiber_entry();
// saves the callee-saved registers and the SSE and x87 control words (the state the System V ABI preserves) on the
// current stack, stores the stack pointer in *save, and restores the same from the stack at load
asm(R"(
  .text
  .p2align 4
  .globl tc_switch
  .hidden tc_switch
  .type tc_switch, @function
tc_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size tc_switch, .-tc_switch
  .p2align 4
  .globl tc_fiber_entry
  .hidden tc_fiber_entry
  .type tc_fiber_entry, @function
tc_fiber_entry:
  call tc_fiber_main
  ud2
  .size tc_fiber_entry, .-tc_fiber_entry
)");
static inline void tc_fiber_prepare(int t) {
  // the frame tc_switch pops: control words, r15 .. rbp, then tc_fiber_entry as the return address; the stack is
  // 16-byte aligned when tc_fiber_entry runs, so its call enters tc_fiber_main as the ABI expects
  uint64_t* frame = (uint64_t*)(tc_fs.stacks + (size_t)(t + 1) * tc_fs.stack_bytes) - 8;
  frame[0] = 0x1F80ULL | (0x037FULL << 32);
  for (int i = 1; i < 7; ++i) frame[i] = 0;
  frame[7] = (uint64_t)(uintptr_t)&tc_fiber_entry;
  tc_fs.sp[t] = frame;
}
static inline void tc_resume(int t) { tc_switch(&tc_fs.scheduler, tc_fs.sp[t]); }
static inline void tc_yield() { tc_switch(&tc_fs.sp[tc_fs.current], tc_fs.scheduler); }
#else
#include <ucontext.h>
static thread_local ucontext_t* tc_contexts;
static thread_local ucontext_t tc_scheduler_context;
extern "C" void tc_fiber_main();
static inline void tc_fiber_prepare(int t) {
  ucontext_t* c = &tc_contexts[t];
  getcontext(c);
  c->uc_stack.ss_sp = tc_fs.stacks + (size_t)t * tc_fs.stack_bytes;
  c->uc_stack.ss_size = tc_fs.stack_bytes;
  c->uc_link = 0;
  makecontext(c, (void (*)())tc_fiber_main, 0);
}
static inline void tc_resume(int t) { swapcontext(&tc_scheduler_context, &tc_contexts[t]); }
static inline void tc_yield() { swapcontext(&tc_contexts[tc_fs.current], &tc_scheduler_context); }
#endif

extern "C" __attribute__((visibility("hidden"), noreturn, used)) void tc_fiber_main() {
  tc_fs.thunk(tc_fs.args);
  tc_fs.done[tc_fs.current] = 1;
  tc_yield();
  __builtin_unreachable();
}

static inline void tc_barrier() { tc_yield(); }

// Maps `count` stacks of `stack_bytes` (a multiple of 16); false when the memory is not there.
static bool tc_fibers_reserve(int count, size_t stack_bytes) {
  size_t bytes = (size_t)count * stack_bytes;
  void* stacks = mmap(0, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (stacks == MAP_FAILED) return false;
  tc_fs.stacks = (char*)stacks;
  tc_fs.count = count;
  tc_fs.stack_bytes = stack_bytes;
  tc_fs.sp = (void**)calloc(count, sizeof(void*));
  tc_fs.done = (unsigned char*)calloc(count, 1);
  tc_fs.slots = (unsigned long long*)calloc(count, sizeof(unsigned long long));
#ifndef TC_ASM_SWITCH
  tc_contexts = (ucontext_t*)calloc(count, sizeof(ucontext_t));
#endif
  return true;
}

static void tc_fibers_release() {
  if (tc_fs.count == 0) return;
  munmap(tc_fs.stacks, (size_t)tc_fs.count * tc_fs.stack_bytes);
  free(tc_fs.sp);
  free(tc_fs.done);
  free(tc_fs.slots);
#ifndef TC_ASM_SWITCH
  free(tc_contexts);
#endif
  tc_fs.count = 0;
}

// Runs one block of bx * by * bz threads as fibers; returns 0, or 2 when a fiber overflowed its stack.
static int tc_run_block(tc_thunk thunk, const void* args, int bx, int by, int bz) {
  const int n = bx * by * bz;
  tc_fs.thunk = thunk;
  tc_fs.args = args;
  for (int t = 0; t < n; ++t) {
    *(unsigned long long*)(tc_fs.stacks + (size_t)t * tc_fs.stack_bytes) = TC_CANARY;
    tc_fs.done[t] = 0;
    tc_fiber_prepare(t);
  }
  int live = n;
  while (live > 0) {
    for (int t = 0; t < n; ++t) {
      if (tc_fs.done[t]) continue;
      tc_fs.current = t;
      threadIdx = tc_dim3{(unsigned)(t % bx), (unsigned)(t / bx % by), (unsigned)(t / (bx * by))};
      tc_resume(t);
      if (tc_fs.done[t]) --live;
    }
  }
  for (int t = 0; t < n; ++t)
    if (*(unsigned long long*)(tc_fs.stacks + (size_t)t * tc_fs.stack_bytes) != TC_CANARY) return 2;
  return 0;
}

// __shfl_xor_sync: every thread of the block exchanges through its slot between two barriers; a partner outside
// the thread's segment of `width` lanes (or past the block's last thread) gives the thread its own value.
template <typename T> static inline T __shfl_xor_sync(unsigned, T value, int lane_mask, int width = 32) {
  const int t = tc_fs.current;
  const int n = (int)(blockDim.x * blockDim.y * blockDim.z);
  memcpy(&tc_fs.slots[t], &value, sizeof(T));
  tc_barrier();
  const int lane = t & 31;
  int partner = lane ^ lane_mask;
  if (partner / width != lane / width || t - lane + partner >= n) partner = lane;
  T result;
  memcpy(&result, &tc_fs.slots[t - lane + partner], sizeof(T));
  tc_barrier();
  return result;
}
"""


def emulation_header() -> str:
    """The C++ text every emulated translation unit starts with (see the module docstring)."""
    return _PRELUDE + _FIBERS
