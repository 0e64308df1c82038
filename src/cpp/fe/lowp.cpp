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

#include "fe/gather.hpp"
#include "fe/parallel.hpp"
#include "fe/scatter.hpp"

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
    const char* env = std::getenv("FASTEMBED_CPU");
    if (env && std::strcmp(env, "baseline") == 0) return false;
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c");
  }();
  return use;
#else
  return false;
#endif
}

namespace {

constexpr int64_t kGrainBytes = 128 * 1024;

int64_t stored_row_bytes(const LowpTable& t) {
  switch (t.kind) {
    case LowpKind::Q8:
    case LowpKind::Q4: return std::max<int64_t>(1, t.stride);
    default: return std::max<int64_t>(1, mul_sat(t.dim, 2));
  }
}

template <LowpKind K, class I, BagMode M, bool W, bool MASK, bool ARG>
int64_t pool_all(const LowpTable& tab, const I* ids, const BagLayout& lay, const float* psw,
                 float* out, int64_t* argmax, const Interrupt& intr) {
  const int64_t nb = lay.nbags;
  if (nb <= 0) return -1;
  const int64_t avg_len = std::max<int64_t>(1, lay.n / nb);
  const int64_t row_bytes = stored_row_bytes(tab);
  const int64_t per_bag = std::max<int64_t>(1, mul_sat(avg_len, row_bytes));
  const int64_t grain = std::max<int64_t>(1, kGrainBytes / per_bag);
  const int64_t units = std::max<int64_t>(1, kPollBytes / row_bytes);
  return bag_detail::dispatch_bag_dim(tab.dim, [&](auto fd) -> int64_t {
    constexpr int64_t FD = decltype(fd)::value;
    const bool simd = lowp_use_simd();
    auto range = [&](int64_t b, int64_t e) {
#ifdef FE_LOWP_HAVE_SIMD
      if (simd)
        return lowp_simd::pool_entry<K, I, FD, M, W, MASK, ARG>(tab, ids, lay, psw, out, argmax,
                                                                b, e);
#else
      (void)simd;
#endif
      return lowp_base::pool_entry<K, I, FD, M, W, MASK, ARG>(tab, ids, lay, psw, out, argmax,
                                                              b, e);
    };
    for (int64_t b0 = 0; b0 < nb;) {
      if (b0 > 0 && intr.poll()) return kInterrupted;
      const int64_t b1 =
          lay.offsets
              ? bag_detail::piece_end(b0, nb, units, [&](int64_t b) {
                  return lay.end(b - 1) - lay.begin(b0) + (b - b0);
                })
              : std::min(nb, b0 + std::max<int64_t>(1, units / (lay.fixed + 1)));
      const int64_t m = b1 - b0;
      const int parts = plan_parts(m, grain);
      if (parts == 1) {
        const int64_t f = range(b0, b1);
        if (f >= 0) return f;
      } else {
        std::vector<int64_t> first(static_cast<size_t>(parts), -1);
        parallel_chunks(m, parts, [&](int64_t b, int64_t e, int p) {
          first[p] = range(b0 + b, b0 + e);
        });
        for (int64_t f : first)
          if (f >= 0) return f;
      }
      b0 = b1;
    }
    return -1;
  });
}

template <LowpKind K, class I, BagMode M>
int64_t pool_mode(const LowpTable& t, const I* ids, const BagLayout& lay, const float* psw,
                  bool mask, float* out, int64_t* argmax, const Interrupt& intr) {
  if (M == BagMode::Max) {
    if (argmax)
      return mask ? pool_all<K, I, M, false, true, true>(t, ids, lay, nullptr, out, argmax, intr)
                  : pool_all<K, I, M, false, false, true>(t, ids, lay, nullptr, out, argmax, intr);
    return mask ? pool_all<K, I, M, false, true, false>(t, ids, lay, nullptr, out, nullptr, intr)
                : pool_all<K, I, M, false, false, false>(t, ids, lay, nullptr, out, nullptr, intr);
  }
  if (psw)
    return mask ? pool_all<K, I, M, true, true, false>(t, ids, lay, psw, out, nullptr, intr)
                : pool_all<K, I, M, true, false, false>(t, ids, lay, psw, out, nullptr, intr);
  return mask ? pool_all<K, I, M, false, true, false>(t, ids, lay, nullptr, out, nullptr, intr)
              : pool_all<K, I, M, false, false, false>(t, ids, lay, nullptr, out, nullptr, intr);
}

template <LowpKind K, class I>
int64_t bag_kind(const LowpTable& t, const I* ids, const BagLayout& lay, BagMode mode,
                 const float* psw, bool mask, float* out, int64_t* argmax,
                 const Interrupt& intr) {
  switch (mode) {
    case BagMode::Sum:
      return pool_mode<K, I, BagMode::Sum>(t, ids, lay, psw, mask, out, nullptr, intr);
    case BagMode::Mean:
      return pool_mode<K, I, BagMode::Mean>(t, ids, lay, psw, mask, out, nullptr, intr);
    default:
      return pool_mode<K, I, BagMode::Max>(t, ids, lay, nullptr, mask, out, argmax, intr);
  }
}

template <LowpKind K, class I>
int64_t gather_kind(const LowpTable& t, const I* ids, int64_t n, float* out,
                    const Interrupt& intr) {
  const int64_t row_bytes = std::max<int64_t>(stored_row_bytes(t), mul_sat(t.dim, 4));
  const int64_t grain = std::max<int64_t>(1, 256 * 1024 / row_bytes);
  const int64_t piece = std::max<int64_t>(2 * grain, kPollBytes / row_bytes);
  const bool simd = lowp_use_simd();
  return dispatch_dim(t.dim, [&](auto fd) -> int64_t {
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
    for (int64_t s = 0; s < n; s += piece) {
      if (s > 0 && intr.poll()) return kInterrupted;
      const int64_t m = std::min(piece, n - s);
      const int parts = plan_parts(m, grain);
      if (parts == 1) {
        const int64_t f = range(s, s + m);
        if (f >= 0) return f;
        continue;
      }
      std::vector<int64_t> first(static_cast<size_t>(parts), -1);
      parallel_chunks(m, parts, [&](int64_t b, int64_t e, int p) { first[p] = range(s + b, s + e); });
      for (int64_t f : first)
        if (f >= 0) return f;
    }
    return -1;
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
FE_LOWP_INST(int32_t)
FE_LOWP_INST(int64_t)

}  // namespace fe
