"""Tensor-core and asynchronous-copy building blocks for generated CUDA C, each with an exact CPU definition.

On the GPU (compute capability 8.0 or later) they are inline PTX: ``mma.sync`` (``m16n8k16`` for float16 and
bfloat16, ``m16n8k8`` for TF32, float32 accumulators), ``ldmatrix`` (``.x1/.x2/.x4``, ``.trans``), ``cvt`` to
TF32 / packed float16 / packed bfloat16, ``cp.async`` with zero fill (``src-size`` 0 where the source is outside
the problem), ``commit_group`` / ``wait_group``. Under the CPU emulation (no ``__CUDA_ARCH__``) the same names are
C++ functions with the semantics PTX specifies, fragment by fragment: a warp-collective instruction stores each
lane's registers (or row addresses) in a block-wide scratch array, waits at a barrier, reads what its own lane
receives from the lanes that hold it, and waits again, so every thread of the block must reach each call in the
same order (as on the GPU, where the whole warp must). Conversions round as the hardware does: TF32 to nearest
with ties away from zero, float16 and bfloat16 to nearest even (subnormals, overflow to infinity, NaN kept). The
emulated products are exact (operands of at most 11 significant bits) and are summed in float32 in ``k`` order;
the tensor cores may sum in another order, so results agree to float32 rounding of the sum, not bit for bit.

Fragment layouts (PTX ISA, ``mma.m16n8k16`` / ``mma.m16n8k8``), for lane ``l``, ``g = l / 4``, ``q = l % 4``:
A (16 x 16 half): ``a0 = A[g][2q, 2q+1]``, ``a1 = A[g+8][2q, 2q+1]``, ``a2 = A[g][2q+8, 2q+9]``,
``a3 = A[g+8][2q+8, 2q+9]``; B (16 x 8): ``b0 = B[2q, 2q+1][g]``, ``b1 = B[2q+8, 2q+9][g]``; A (16 x 8 TF32):
``a0 = A[g][q]``, ``a1 = A[g+8][q]``, ``a2 = A[g][q+4]``, ``a3 = A[g+8][q+4]``; B (8 x 8 TF32): ``b0 = B[q][g]``,
``b1 = B[q+4][g]``; C (16 x 8 float): ``c0, c1 = C[g][2q, 2q+1]``, ``c2, c3 = C[g+8][2q, 2q+1]``. ``ldmatrix``: lane
``8j + r`` gives the address of row ``r`` of matrix ``j``; each lane receives, per matrix, the pair
``M[g][2q, 2q+1]`` (``.trans``: ``M[2q][g], M[2q+1][g]``), the lower column (row) in the low half.
"""

from __future__ import annotations

TENSOR_CORE_HELPER = "tc_tensor_core"

_DEVICE = r"""
#if __CUDA_ARCH__ < 800
#error "tcomp tensor-core kernels need compute capability 8.0 or later"
#endif
static __device__ __forceinline__ unsigned tc_tc_smem(const void* p) {
  unsigned address;
  asm volatile("{ .reg .u64 a; cvta.to.shared.u64 a, %1; cvt.u32.u64 %0, a; }" : "=r"(address) : "l"(p));
  return address;
}
template <int BYTES> static __device__ __forceinline__ void tc_async_copy(void* dst, const void* src, bool valid) {
  if constexpr (BYTES == 16) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" :: "r"(tc_tc_smem(dst)), "l"(src),
                 "r"(valid ? 16 : 0));
  } else if constexpr (BYTES == 8 || BYTES == 4) {
    asm volatile("cp.async.ca.shared.global [%0], [%1], %2, %3;\n" :: "r"(tc_tc_smem(dst)), "l"(src), "n"(BYTES),
                 "r"(valid ? BYTES : 0));
  } else {
    static_assert(BYTES == 2, "copies of 2, 4, 8 or 16 bytes");
    *(unsigned short*)dst = valid ? *(const unsigned short*)src : (unsigned short)0;
  }
}
static __device__ __forceinline__ void tc_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N> static __device__ __forceinline__ void tc_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" :: "n"(N) : "memory");
}
static __device__ __forceinline__ unsigned tc_tf32(float x) {
  unsigned r;
  asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(x));
  return r;
}
static __device__ __forceinline__ unsigned tc_pack_f16(float lo, float hi) {
  unsigned r;
  asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
  return r;
}
static __device__ __forceinline__ unsigned tc_pack_bf16(float lo, float hi) {
  unsigned r;
  asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
  return r;
}
template <int COUNT, bool TRANS> static __device__ __forceinline__ void tc_ldmatrix(unsigned* r, const void* row) {
  const unsigned a = tc_tc_smem(row);
  if constexpr (COUNT == 4 && TRANS) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(a));
  } else if constexpr (COUNT == 4) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(a));
  } else if constexpr (COUNT == 2 && TRANS) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0, %1}, [%2];\n" : "=r"(r[0]), "=r"(r[1]) : "r"(a));
  } else if constexpr (COUNT == 2) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0, %1}, [%2];\n" : "=r"(r[0]), "=r"(r[1]) : "r"(a));
  } else if constexpr (TRANS) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x1.trans.shared.b16 {%0}, [%1];\n" : "=r"(r[0]) : "r"(a));
  } else {
    asm volatile("ldmatrix.sync.aligned.m8n8.x1.shared.b16 {%0}, [%1];\n" : "=r"(r[0]) : "r"(a));
  }
}
static __device__ __forceinline__ void tc_mma_f16(float* d, const unsigned* a, const unsigned* b) {
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
               "{%0, %1, %2, %3};\n"
               : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
static __device__ __forceinline__ void tc_mma_bf16(float* d, const unsigned* a, const unsigned* b) {
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
               "{%0, %1, %2, %3};\n"
               : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
static __device__ __forceinline__ void tc_mma_tf32(float* d, const unsigned* a, const unsigned* b) {
  asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
               "{%0, %1, %2, %3};\n"
               : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
"""

_EMULATED = r"""
static inline unsigned tc_f32_bits(float x) { unsigned u; memcpy(&u, &x, 4); return u; }
static inline float tc_bits_f32(unsigned u) { float x; memcpy(&x, &u, 4); return x; }
static inline unsigned short tc_f16_bits(float x) {
  const unsigned u = tc_f32_bits(x), sign = (u >> 16) & 0x8000u, a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return (unsigned short)(sign | 0x7e00u);
  if (a >= 0x477ff000u) return (unsigned short)(sign | 0x7c00u);
  if (a >= 0x38800000u) {
    const unsigned r = a - 0x38000000u;
    return (unsigned short)(sign | ((r + 0xfffu + ((r >> 13) & 1u)) >> 13));
  }
  const int e = (int)(a >> 23);
  if (e < 102) return (unsigned short)sign;
  const unsigned mant = (a & 0x7fffffu) | 0x800000u;
  const int shift = 126 - e;
  unsigned q = mant >> shift;
  const unsigned rem = mant & ((1u << shift) - 1u), half = 1u << (shift - 1);
  if (rem > half || (rem == half && (q & 1u))) ++q;
  return (unsigned short)(sign | q);
}
static inline float tc_f16_value(unsigned short h) {
  const unsigned sign = ((unsigned)h & 0x8000u) << 16, e = ((unsigned)h >> 10) & 0x1fu, m = (unsigned)h & 0x3ffu;
  if (e == 0x1fu) return tc_bits_f32(sign | 0x7f800000u | (m << 13));
  if (e == 0) { const float v = (float)m * 5.9604644775390625e-08f; return sign ? -v : v; }
  return tc_bits_f32(sign | ((e + 112u) << 23) | (m << 13));
}
static inline unsigned short tc_bf16_bits(float x) {
  const unsigned u = tc_f32_bits(x);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (unsigned short)((u >> 16) | 0x40u);
  return (unsigned short)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
static inline float tc_bf16_value(unsigned short h) { return tc_bits_f32((unsigned)h << 16); }
static inline unsigned tc_tf32(float x) {
  unsigned u = tc_f32_bits(x);
  if ((u & 0x7f800000u) != 0x7f800000u) u = (u + 0x1000u) & 0xffffe000u;
  return u;
}
static inline unsigned tc_pack_f16(float lo, float hi) {
  return (unsigned)tc_f16_bits(lo) | ((unsigned)tc_f16_bits(hi) << 16);
}
static inline unsigned tc_pack_bf16(float lo, float hi) {
  return (unsigned)tc_bf16_bits(lo) | ((unsigned)tc_bf16_bits(hi) << 16);
}
template <int BYTES> static inline void tc_async_copy(void* dst, const void* src, bool valid) {
  if (valid) memcpy(dst, src, BYTES); else memset(dst, 0, BYTES);
}
static inline void tc_async_commit() {}
template <int N> static inline void tc_async_wait() {}
static inline int tc_emu_thread() {
  return (int)(threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z));
}
template <int COUNT, bool TRANS> static inline void tc_ldmatrix(unsigned* r, const void* row) {
  __shared__ const unsigned short* tc_rows[1024];
  const int t = tc_emu_thread(), lane = t & 31, warp = t - lane, g = lane >> 2, q = lane & 3;
  tc_rows[t] = (const unsigned short*)row;
  __syncthreads();
  for (int j = 0; j < COUNT; ++j) {
    if (TRANS) {
      const unsigned short* lo = tc_rows[warp + 8 * j + 2 * q];
      const unsigned short* hi = tc_rows[warp + 8 * j + 2 * q + 1];
      r[j] = (unsigned)lo[g] | ((unsigned)hi[g] << 16);
    } else {
      const unsigned short* p = tc_rows[warp + 8 * j + g];
      r[j] = (unsigned)p[2 * q] | ((unsigned)p[2 * q + 1] << 16);
    }
  }
  __syncthreads();
}
// kind 0: float16 (m16n8k16), 1: bfloat16 (m16n8k16), 2: TF32 (m16n8k8)
template <int KIND> static inline float tc_emu_operand(const unsigned (*regs)[6], int lane, int reg, int half) {
  const unsigned bits = regs[lane][reg];
  if (KIND == 2) return tc_bits_f32(bits & 0xffffe000u);
  const unsigned short h = (unsigned short)(half ? bits >> 16 : bits & 0xffffu);
  return KIND == 0 ? tc_f16_value(h) : tc_bf16_value(h);
}
template <int KIND> static inline void tc_mma_emulated(float* d, const unsigned* a, const unsigned* b) {
  __shared__ unsigned tc_regs[1024][6];
  const int t = tc_emu_thread(), lane = t & 31, warp = t - lane, g = lane >> 2, q = lane & 3;
  for (int i = 0; i < 4; ++i) tc_regs[t][i] = a[i];
  tc_regs[t][4] = b[0];
  tc_regs[t][5] = b[1];
  __syncthreads();
  const unsigned (*regs)[6] = tc_regs + warp;
  const int depth = KIND == 2 ? 8 : 16;
  float out[4];
  for (int i = 0; i < 4; ++i) {
    const int row = g + 8 * (i >> 1), col = 2 * q + (i & 1);
    float acc = d[i];
    for (int k = 0; k < depth; ++k) {
      float x, y;
      if (KIND == 2) {
        x = tc_emu_operand<KIND>(regs, (row & 7) * 4 + (k & 3), (row >> 3) + 2 * (k >> 2), 0);
        y = tc_emu_operand<KIND>(regs, col * 4 + (k & 3), 4 + (k >> 2), 0);
      } else {
        x = tc_emu_operand<KIND>(regs, (row & 7) * 4 + ((k & 7) >> 1), (row >> 3) + 2 * (k >> 3), k & 1);
        y = tc_emu_operand<KIND>(regs, col * 4 + ((k & 7) >> 1), 4 + (k >> 3), k & 1);
      }
      acc += x * y;
    }
    out[i] = acc;
  }
  __syncthreads();
  for (int i = 0; i < 4; ++i) d[i] = out[i];
}
static inline void tc_mma_f16(float* d, const unsigned* a, const unsigned* b) { tc_mma_emulated<0>(d, a, b); }
static inline void tc_mma_bf16(float* d, const unsigned* a, const unsigned* b) { tc_mma_emulated<1>(d, a, b); }
static inline void tc_mma_tf32(float* d, const unsigned* a, const unsigned* b) { tc_mma_emulated<2>(d, a, b); }
"""

HELPER_SOURCE = "#if defined(__CUDA_ARCH__)" + _DEVICE + "#else" + _EMULATED + "#endif\n"
