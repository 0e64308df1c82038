// Reduced-precision (float16, bfloat16) and row-quantized (8-bit, 4-bit) tables.
//
// Storage (LowpTable):
//   F16 / BF16: rows x dim 16-bit elements (IEEE binary16 / bfloat16 bit patterns), row r
//     at data + r*stride (in elements; dim contiguous elements).
//   Q8 / Q4: rows of stride = code_bytes + 8 bytes, row r at data + r*stride: its codes,
//     then its float32 scale and bias (native byte order, any alignment), as FBGEMM's
//     fused rows, so one lookup touches one span of memory.  Element k of row r is
//       x = scale * float(c) + bias          (two float32 roundings, no fused multiply-add)
//     with c = codes[r][k] (Q8), or for Q4 the nibble k of the row: byte k/2, low nibble
//     for even k, high nibble for odd k (code_bytes = ceil(dim/2); an odd dim leaves the
//     last high nibble 0).
//   Every value read is converted to float32 exactly (half -> float is exact; so are the
//   dequantized values as defined above, computed the same way everywhere), and all
//   arithmetic is float32, so the kernels below equal the float32 kernels on the upcast
//   (or dequantized) table bit for bit.
//
//   lowp_bag_forward<I>(t, ids, layout, mode, psw, mask_zero, out, argmax, intr) -> int64
//     The contract of bag_forward (bag.hpp) with table `t` read as float32 and float32
//     psw / out: out[b] pooled in position order in float32; NaN rules of bag_forward.
//   lowp_gather_f32<I>(t, ids, n, out, intr) -> int64   (Q8 / Q4 only)
//     out[i] = the dequantized row ids[i] (float32, n x dim, C-contiguous).  Returns -1, the
//     first bad position, or kInterrupted.  Parallel over ids, deterministic.
//   half_scatter_add<I>(t, ids, n, values, scale) -> int64   (F16 / BF16; t writable,
//     C-contiguous)
//     For every touched row r: acc = float32(t[r]); for i in [0, n) with ids[i] == r, in
//     index order: acc += scale * float32(values[i]); then t[r] = round_to_nearest_even(acc)
//     once.  Ids are copied and validated first: returns the first bad position with
//     nothing written, or -1.  Single-threaded (deterministic).  Never interrupted.
//
// Conversions (exact, portable; the SIMD paths give the same bits):
//   f16_to_f32 / bf16_to_f32: exact; NaN stays NaN with its payload and the quiet bit set
//     (as the F16C instruction does).
//   f32_to_f16 / f32_to_bf16: round to nearest, ties to even; overflow gives +-inf; NaN
//     gives a quiet NaN of the same sign keeping the top payload bits.
//
// SIMD: lowp_use_simd() is true on CPUs with AVX2 and F16C unless FASTEMBED_CPU=baseline;
// the kernels then use the AVX2/F16C compilation of the same loops (fe/lowp.cpp).
#pragma once

#include <cstdint>
#include <cstring>

#include "fe/bag.hpp"  // BagLayout, BagMode
#include "fe/common.hpp"
#include "fe/interrupt.hpp"

namespace fe {

enum class LowpKind { F16 = 0, BF16 = 1, Q8 = 2, Q4 = 3 };

struct LowpTable {
  LowpKind kind = LowpKind::F16;
  const void* data = nullptr;   // elements (F16/BF16) or codes (Q8/Q4)
  int64_t rows = 0;
  int64_t dim = 0;
  int64_t stride = 0;  // elements (F16/BF16), or bytes (Q8/Q4: code_bytes + 8) between rows
};

FE_INLINE float bits_to_f32(uint32_t b) noexcept {
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}
FE_INLINE uint32_t f32_to_bits(float f) noexcept {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}

FE_INLINE float f16_to_f32(uint16_t h) noexcept {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t em = h & 0x7fffu;
  if (em >= 0x7c00u) {  // inf / NaN: keep the payload, quiet a NaN
    const uint32_t m = static_cast<uint32_t>(em & 0x3ffu) << 13;
    return bits_to_f32(sign | 0x7f800000u | m | (m ? 0x400000u : 0u));
  }
  if (em >= 0x0400u) return bits_to_f32(sign | ((em << 13) + (uint32_t(127 - 15) << 23)));
  // Zero or subnormal: em * 2^-24, exact in float32 (em < 2^10).
  return bits_to_f32(sign | f32_to_bits(static_cast<float>(em) * 5.9604644775390625e-08f));
}

FE_INLINE uint16_t f32_to_f16(float f) noexcept {
  const uint32_t x = f32_to_bits(f);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  uint32_t ax = x & 0x7fffffffu;
  if (ax >= 0x7f800000u)  // inf, NaN
    return ax == 0x7f800000u ? uint16_t(sign | 0x7c00u)
                             : uint16_t(sign | 0x7e00u | ((ax >> 13) & 0x3ffu));
  if (ax >= 0x477ff000u) return uint16_t(sign | 0x7c00u);  // >= 65520 rounds to inf
  if (ax < 0x38800000u) {
    // Below 2^-14: the half is subnormal (or zero).  Adding 0.5f puts the value's bits at
    // 2^-24 resolution into the low mantissa bits, rounded to nearest even by the FPU.
    const float r = bits_to_f32(ax) + 0.5f;
    return static_cast<uint16_t>(sign | (f32_to_bits(r) - 0x3f000000u));
  }
  const uint32_t odd = (ax >> 13) & 1u;
  ax += (uint32_t(15 - 127) << 23) + 0xfffu + odd;  // rebias and round to nearest even
  return static_cast<uint16_t>(sign | (ax >> 13));
}

FE_INLINE float bf16_to_f32(uint16_t h) noexcept {
  uint32_t b = static_cast<uint32_t>(h) << 16;
  if ((b & 0x7f800000u) == 0x7f800000u && (b & 0x7fffffu)) b |= 0x400000u;
  return bits_to_f32(b);
}

FE_INLINE uint16_t f32_to_bf16(float f) noexcept {
  const uint32_t x = f32_to_bits(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x40u);
  return static_cast<uint16_t>((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

bool lowp_use_simd() noexcept;

template <class I>
int64_t lowp_bag_forward(const LowpTable& t, const I* ids, const BagLayout& lay, BagMode mode,
                         const float* psw, bool mask_zero, float* out, int64_t* argmax,
                         const Interrupt& intr = {});

template <class I>
int64_t lowp_gather_f32(const LowpTable& t, const I* ids, int64_t n, float* out,
                        const Interrupt& intr = {});

template <class I>
int64_t half_scatter_add(const LowpTable& t, const I* ids, int64_t n, const uint16_t* values,
                         float scale);

// Bulk conversions (parallel, for the Python layer: upcasts, rounding optimizer results).
void lowp_to_f32(LowpKind kind, const uint16_t* src, int64_t n, float* dst) noexcept;
void f32_to_lowp(LowpKind kind, const float* src, int64_t n, uint16_t* dst) noexcept;

}  // namespace fe
