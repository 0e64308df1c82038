// Kernels for float16 / bfloat16 / row-quantized tables (contracts in lowp.hpp).
#include "fe/lowp.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <vector>

#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
#define FE_LOWP_HAVE_SIMD 1
#include <immintrin.h>
#endif

#include "fe/bag_impl.hpp"
#include "fe/gather.hpp"
#include "fe/parallel.hpp"
#include "fe/scatter.hpp"
#include "fe/tuning.hpp"

namespace fe {

namespace lowp_base {
#define FE_LOWP_SIMD 0
#include "fe/lowp_pool.inc"
#undef FE_LOWP_SIMD
}  // namespace lowp_base

#ifdef FE_LOWP_HAVE_SIMD
#pragma GCC push_options
#pragma GCC target("avx2,f16c")
namespace lowp_simd {
#define FE_LOWP_SIMD 1
#include "fe/lowp_pool.inc"
#undef FE_LOWP_SIMD
}  // namespace lowp_simd
#pragma GCC pop_options
#endif

bool lowp_use_simd() noexcept {
#ifdef FE_LOWP_HAVE_SIMD
  static const bool use = [] {
    if (!simd_allowed()) return false;
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c");
  }();
  return use;
#else
  return false;
#endif
}

namespace {

int64_t stored_row_bytes(const LowpTable& t) {
  switch (t.kind) {
    case LowpKind::Q8:
    case LowpKind::Q4: return std::max<int64_t>(1, t.stride);
    default: return std::max<int64_t>(1, mul_sat(t.dim, 2));
  }
}

template <LowpKind K, class I>
int64_t bag_kind(const LowpTable& tab, const I* ids, const BagLayout& lay, BagMode mode,
                 const float* psw, bool mask, float* out, int64_t* argmax,
                 const Interrupt& intr) {
  const bool simd = lowp_use_simd();
  return dispatch_dim(BagWidths{}, tab.dim, [&](auto fd) -> int64_t {
    constexpr int64_t FD = decltype(fd)::value;
    return bag_detail::dispatch_pool(mode, psw != nullptr, mask, argmax != nullptr, [&](auto fl) {
      using F = decltype(fl);
      return bag_detail::pool_pieces(lay, stored_row_bytes(tab), intr, [&](int64_t b, int64_t e) {
#ifdef FE_LOWP_HAVE_SIMD
        if (simd)
          return lowp_simd::pool_entry<K, I, FD, F::mode, F::weighted, F::mask, F::argmax>(
              tab, ids, lay, psw, out, argmax, b, e);
#else
        (void)simd;
#endif
        return lowp_base::pool_entry<K, I, FD, F::mode, F::weighted, F::mask, F::argmax>(
            tab, ids, lay, psw, out, argmax, b, e);
      });
    });
  });
}

template <LowpKind K, class I>
int64_t gather_kind(const LowpTable& t, const I* ids, int64_t n, float* out,
                    const Interrupt& intr) {
  const int64_t row_bytes = std::max<int64_t>(stored_row_bytes(t), mul_sat(t.dim, 4));
  const int64_t grain = grain_rows(row_bytes);
  const int64_t piece = std::max<int64_t>(2 * grain, kPollBytes / row_bytes);
  const bool simd = lowp_use_simd();
  return dispatch_dim(RowWidths{}, t.dim, [&](auto fd) -> int64_t {
    // The SIMD loads take whole groups of 16 values; other widths go element by element.
    constexpr int64_t FD = decltype(fd)::value >= 16 ? decltype(fd)::value : 0;
    auto range = [&](int64_t b, int64_t e) {
#ifdef FE_LOWP_HAVE_SIMD
      if (simd) return lowp_simd::gather_entry<K, I, FD>(t, ids, b, e, out);
#else
      (void)simd;
#endif
      return lowp_base::gather_entry<K, I, FD>(t, ids, b, e, out);
    };
    return polled_pieces(n, piece, intr, [&](int64_t s, int64_t m) {
      return first_hit(m, plan_parts(m, grain),
                       [&](int64_t b, int64_t e) { return range(s + b, s + e); });
    });
  });
}

}  // namespace

template <class I>
int64_t lowp_bag_forward(const LowpTable& t, const I* ids, const BagLayout& lay, BagMode mode,
                         const float* psw, bool mask_zero, float* out, int64_t* argmax,
                         const Interrupt& intr) {
  switch (t.kind) {
    case LowpKind::F16:
      return bag_kind<LowpKind::F16, I>(t, ids, lay, mode, psw, mask_zero, out, argmax, intr);
    case LowpKind::BF16:
      return bag_kind<LowpKind::BF16, I>(t, ids, lay, mode, psw, mask_zero, out, argmax, intr);
    case LowpKind::Q8:
      return bag_kind<LowpKind::Q8, I>(t, ids, lay, mode, psw, mask_zero, out, argmax, intr);
    default:
      return bag_kind<LowpKind::Q4, I>(t, ids, lay, mode, psw, mask_zero, out, argmax, intr);
  }
}

template <class I>
int64_t lowp_gather_f32(const LowpTable& t, const I* ids, int64_t n, float* out,
                        const Interrupt& intr) {
  if (n <= 0) return -1;
  if (t.dim == 0) return find_bad_id(ids, n, t.rows, intr);
  switch (t.kind) {
    case LowpKind::F16: return gather_kind<LowpKind::F16, I>(t, ids, n, out, intr);
    case LowpKind::BF16: return gather_kind<LowpKind::BF16, I>(t, ids, n, out, intr);
    case LowpKind::Q8: return gather_kind<LowpKind::Q8, I>(t, ids, n, out, intr);
    default: return gather_kind<LowpKind::Q4, I>(t, ids, n, out, intr);
  }
}

template <class I>
int64_t half_scatter_add(const LowpTable& t, const I* ids, int64_t n, const uint16_t* values,
                         float scale) {
  if (n <= 0) return -1;
  // Copy the ids: the values validated are the values used to address rows.
  std::vector<int64_t> idc(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const int64_t id = load_once(ids, i);
    if (!id_ok(id, t.rows)) return i;
    idc[i] = id;
  }
  const int64_t dim = t.dim;
  if (dim == 0) return -1;
  CoalescePlan plan;
  coalesce_plan(idc.data(), n, plan);  // ids are >= 0: cannot fail, not interruptible
  const int64_t nu = static_cast<int64_t>(plan.unique.size());
  uint16_t* tab = const_cast<uint16_t*>(static_cast<const uint16_t*>(t.data));
  const bool bf = t.kind == LowpKind::BF16;
  // One float32 accumulator per touched row (nu * dim <= n * dim, the size of values).
  std::vector<float> acc(static_cast<size_t>(nu * dim));
  for (int64_t s = 0; s < nu; ++s) {
    const uint16_t* r = tab + plan.unique[s] * t.stride;
    float* a = acc.data() + s * dim;
    for (int64_t k = 0; k < dim; ++k) a[k] = bf ? bf16_to_f32(r[k]) : f16_to_f32(r[k]);
  }
  for (int64_t i = 0; i < n; ++i) {
    float* a = acc.data() + plan.slot[i] * dim;
    const uint16_t* v = values + i * dim;
    if (bf)
      for (int64_t k = 0; k < dim; ++k) a[k] += scale * bf16_to_f32(v[k]);
    else
      for (int64_t k = 0; k < dim; ++k) a[k] += scale * f16_to_f32(v[k]);
  }
  for (int64_t s = 0; s < nu; ++s) {
    uint16_t* r = tab + plan.unique[s] * t.stride;
    const float* a = acc.data() + s * dim;
    for (int64_t k = 0; k < dim; ++k) r[k] = bf ? f32_to_bf16(a[k]) : f32_to_f16(a[k]);
  }
  return -1;
}

void lowp_to_f32(LowpKind kind, const uint16_t* src, int64_t n, float* dst) noexcept {
  if (kind == LowpKind::BF16)
    for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(src[i]);
  else
    for (int64_t i = 0; i < n; ++i) dst[i] = f16_to_f32(src[i]);
}

void f32_to_lowp(LowpKind kind, const float* src, int64_t n, uint16_t* dst) noexcept {
  if (kind == LowpKind::BF16)
    for (int64_t i = 0; i < n; ++i) dst[i] = f32_to_bf16(src[i]);
  else
    for (int64_t i = 0; i < n; ++i) dst[i] = f32_to_f16(src[i]);
}

#define FE_LOWP_INST(I)                                                                    \
  template int64_t lowp_bag_forward<I>(const LowpTable&, const I*, const BagLayout&,       \
                                       BagMode, const float*, bool, float*, int64_t*,      \
                                       const Interrupt&);                                  \
  template int64_t lowp_gather_f32<I>(const LowpTable&, const I*, int64_t, float*,         \
                                      const Interrupt&);                                   \
  template int64_t half_scatter_add<I>(const LowpTable&, const I*, int64_t,                \
                                       const uint16_t*, float);
FE_FOR_IDS(FE_LOWP_INST)

}  // namespace fe
