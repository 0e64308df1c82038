// Pooled lookups (embedding_bag) and their backward pass.
//
// Layout of the bags (BagLayout):
//   Bag b covers positions [begin(b), end(b)) of a flat id array of n ids:
//     fixed-size bags (2-D ids (B, L)):  begin(b) = b*L,        end(b) = (b+1)*L
//     offsets (1-D ids, torch style):    begin(b) = offsets[b], end(b) = offsets[b+1] (or n)
//   `offsets` must have passed check_offsets (the caller copies them first, so the
//   values checked are the values used).
//
//   check_offsets(offsets, nbags, n, &kind) -> int64
//     -1 when offsets[0] == 0, offsets is non-decreasing and every offsets[b] <= n;
//     otherwise the first bad position b, with kind = kOffsetFirst (offsets[0] != 0),
//     kOffsetDecreasing (offsets[b] < offsets[b-1]) or kOffsetPastEnd (offsets[b] > n).
//
//   bag_forward<T, I>(table, rows, dim, stride, ids, layout, mode, psw, mask_zero, out,
//                     argmax, intr) -> int64
//     for b in [0, B):
//       P = [i in [begin(b), end(b)) if not (mask_zero and ids[i] == 0)]
//       w_i = psw ? psw[i] : 1
//       sum:  out[b] = sum_{i in P} w_i * table[ids[i]]            (added in position order)
//       mean: out[b] = (sum_{i in P} w_i * table[ids[i]]) / W,  W = psw ? sum w_i : |P|;
//             zeros when P is empty or W == 0
//       max:  out[b, k] = max_{i in P} table[ids[i], k]; argmax[b, k] (if argmax != null) =
//             the id of the first i reaching it; out[b] = 0 and argmax[b] = -1 when P is empty
//             (psw must be null for max).  NaN propagates as in numpy's max: a NaN at
//             any position of the bag gives NaN, and argmax is the first row holding a
//             NaN there (so its gradient goes to that row).  +-Inf are ordinary values.
//             Ties (-0.0 and +0.0 included) keep the first row reaching the maximum.
//     table: rows x dim, row r at table + r*stride (dim contiguous elements).
//     ids: int32/int64, each read once; out: B x dim C-contiguous (every element written);
//     argmax: B x dim int64 or null.  Neither may overlap the table.
//     Returns -1, or the first position whose id is outside [0, rows) (out is then
//     partly written: callers hand out a fresh array and drop it on error), or
//     kInterrupted when intr.poll() asked it to stop.  Polled between pieces of bags of
//     about kPollBytes of rows read; a bag is never split, so one bag of hundreds of
//     millions of ids is pooled before the next poll.
//     Thread safety: reads table/ids/psw only.  Parallel over bags: each bag is pooled by
//     one thread in position order, so the result is bit-identical for any thread count.
//
//   The table gradient of one bag_forward call for the output gradient grad (B x dim), in
//   two steps so that the caller can allocate the (zeroed) output in between:
//   bag_backward_plan<T, I>(dim, ids, layout, mode, psw, mask_zero, argmax, rows, &g, intr)
//       -> int64
//     Lists the contributions:
//       sum/mean: every pooled position i of bag b contributes  grad[b] * s_i  to row ids[i],
//                 s_i = w_i (sum) or w_i / W_b (mean; 0 when W_b == 0)
//       max:      grad[b, k] goes to row argmax[b, k], column k (nothing when it is -1)
//     and coalesces their rows: g.plan.unique = the sorted unique rows receiving one.
//     Returns -1, or the first position (into ids, or into argmax for max) holding a row
//     outside [0, rows), or kInterrupted (g is then unusable).
//   bag_backward_sum<T>(g, grad, dim, mode, out, intr) -> bool
//     out[s, :] (|unique| x dim, C-contiguous, every element written) = the sum of the
//     contributions to row unique[s], added in position order (b-major for max) starting
//     from +0.0.  Each row is summed by one thread: deterministic for any thread count.
//     Returns false when interrupted (out is then partly written).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <type_traits>
#include <vector>

#include "fe/common.hpp"
#include "fe/interrupt.hpp"
#include "fe/parallel.hpp"
#include "fe/scatter.hpp"
#include "fe/scratch.hpp"

namespace fe {

enum class BagMode { Sum = 0, Mean = 1, Max = 2 };

enum OffsetError { kOffsetOk = 0, kOffsetFirst = 1, kOffsetDecreasing = 2, kOffsetPastEnd = 3 };

struct BagLayout {
  const int64_t* offsets = nullptr;  // nbags entries, or null for fixed-size bags
  int64_t nbags = 0;
  int64_t fixed = 0;  // bag length when offsets is null
  int64_t n = 0;      // number of ids

  int64_t begin(int64_t b) const noexcept { return offsets ? offsets[b] : b * fixed; }
  int64_t end(int64_t b) const noexcept {
    return offsets ? (b + 1 < nbags ? offsets[b + 1] : n) : (b + 1) * fixed;
  }
};

inline int64_t check_offsets(const int64_t* offsets, int64_t nbags, int64_t n,
                             int* kind) noexcept {
  *kind = kOffsetOk;
  for (int64_t b = 0; b < nbags; ++b) {
    const int64_t o = offsets[b];
    if (b == 0 && o != 0) { *kind = kOffsetFirst; return 0; }
    if (b > 0 && o < offsets[b - 1]) { *kind = kOffsetDecreasing; return b; }
    if (o > n) { *kind = kOffsetPastEnd; return b; }
  }
  return -1;
}

namespace bag_detail {

constexpr int64_t kAhead = 20;  // ids to look ahead when prefetching rows (measured: 16-24 best)
constexpr int64_t kGrainBytes = 128 * 1024;    // work per chunk before threads pay off

// The end of the piece of work that starts at b0: the smallest b1 in (b0, nb] with
// cost(b1) >= units, else nb.  cost(b1), the work of [b0, b1), must increase with b1.
template <class Cost>
int64_t piece_end(int64_t b0, int64_t nb, int64_t units, Cost&& cost) {
  int64_t lo = b0 + 1, hi = nb;
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo) / 2;
    if (cost(mid) >= units) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

template <class T>
FE_INLINE void prefetch_row(const T* row, int64_t bytes) noexcept {
  const char* p = reinterpret_cast<const char*>(row);
  for (int64_t o = 0; o < bytes; o += 64) prefetch_read(p + o);
}

#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
#define FE_BAG_AVX2 1
#endif

// The pooling loops are also compiled for AVX2 (half the adds per row) and chosen at run
// time; FASTEMBED_CPU=baseline forces the baseline build.  Both do the same additions in
// the same order, so their results are bit-identical.
inline bool bag_use_avx2() noexcept {
#ifdef FE_BAG_AVX2
  static const bool use = [] {
    const char* env = std::getenv("FASTEMBED_CPU");
    if (env && std::strcmp(env, "baseline") == 0) return false;
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") != 0;
  }();
  return use;
#else
  return false;
#endif
}

// Pools the bags [b0, b1); FD > 0 is the compile-time row width (accumulators stay in
// registers), FD == 0 uses the runtime `dim_rt` and accumulates in the output row.
template <class T, class I, int64_t FD, BagMode M, bool W, bool MASK, bool ARG>
FE_INLINE int64_t pool_range(const T* FE_RESTRICT table, int64_t rows, int64_t dim_rt, int64_t stride,
                   const I* ids, const BagLayout& lay, const T* psw, T* FE_RESTRICT out,
                   int64_t* FE_RESTRICT argmax, int64_t b0, int64_t b1) {
  const int64_t dim = FD > 0 ? FD : dim_rt;
  const int64_t row_bytes = dim * static_cast<int64_t>(sizeof(T));
  const int64_t pend = b1 > b0 ? lay.end(b1 - 1) : 0;
  constexpr int64_t AD = FD > 0 ? FD : 1;
  T accf[AD] = {};  // set before use in every mode; zeroed to keep -Wuninitialized quiet
  int64_t amf[ARG && FD > 0 ? AD : 1] = {};
  for (int64_t b = b0; b < b1; ++b) {
    const int64_t s = lay.begin(b), e = lay.end(b);
    T* FE_RESTRICT o = out + b * dim;
    T* acc = FD > 0 ? accf : o;  // based on o when FD == 0: not restrict
    int64_t* am = nullptr;
    if (ARG) am = FD > 0 ? amf : argmax + b * dim;
    if (M != BagMode::Max)
      for (int64_t k = 0; k < dim; ++k) acc[k] = T(0);
    T wsum = T(0);
    int64_t count = 0;
    for (int64_t i = s; i < e; ++i) {
      if (i + kAhead < pend) {
        const int64_t f = static_cast<int64_t>(ids[i + kAhead]);
        if (id_ok(f, rows)) prefetch_row(table + f * stride, row_bytes);
      }
      const int64_t id = load_once(ids, i);
      if (!id_ok(id, rows)) return i;
      if (MASK && id == 0) continue;
      const T* FE_RESTRICT r = table + id * stride;
      if (M == BagMode::Max) {
        if (count == 0) {
          for (int64_t k = 0; k < dim; ++k) acc[k] = r[k];
          if (ARG)
            for (int64_t k = 0; k < dim; ++k) am[k] = id;
        } else if (ARG) {
          // Take the row when it is greater, or NaN while the max is not NaN yet: NaN
          // propagates from any position (as numpy's max does; torch's embedding_bag does
          // not) and argmax keeps the first row that supplied it.
          for (int64_t k = 0; k < dim; ++k) {
            const bool take = !(r[k] <= acc[k]) && acc[k] == acc[k];
            acc[k] = take ? r[k] : acc[k];
            am[k] = take ? id : am[k];
          }
        } else {
          for (int64_t k = 0; k < dim; ++k)
            acc[k] = !(r[k] <= acc[k]) && acc[k] == acc[k] ? r[k] : acc[k];
        }
        ++count;
      } else if (W) {
        const T w = psw[i];
        for (int64_t k = 0; k < dim; ++k) acc[k] += w * r[k];
        wsum += w;
        ++count;
      } else {
        for (int64_t k = 0; k < dim; ++k) acc[k] += r[k];
        ++count;
      }
    }
    if (M == BagMode::Max) {
      if (count == 0) {
        for (int64_t k = 0; k < dim; ++k) o[k] = T(0);
        if (ARG)
          for (int64_t k = 0; k < dim; ++k) argmax[b * dim + k] = -1;
      } else if (FD > 0) {
        for (int64_t k = 0; k < dim; ++k) o[k] = acc[k];
        if (ARG)
          for (int64_t k = 0; k < dim; ++k) argmax[b * dim + k] = am[k];
      }
    } else if (M == BagMode::Mean) {
      const T den = W ? wsum : static_cast<T>(count);
      if (count == 0 || den == T(0)) {
        for (int64_t k = 0; k < dim; ++k) o[k] = T(0);
      } else {
        for (int64_t k = 0; k < dim; ++k) o[k] = acc[k] / den;
      }
    } else if (FD > 0) {
      for (int64_t k = 0; k < dim; ++k) o[k] = acc[k];
    }
  }
  return -1;
}

// GCC turns the fixed-width "zero the accumulators" and "store them" loops into memset /
// memcpy calls, which forces the accumulators out of registers onto the stack (measured:
// ~10% slower sums); keep them as plain loops.
#if defined(__GNUC__) && !defined(__clang__)
#define FE_BAG_NO_IDIOMS \
  __attribute__((optimize("no-tree-loop-distribute-patterns", "no-loop-unroll-and-jam")))
#else
#define FE_BAG_NO_IDIOMS
#endif

template <class T, class I, int64_t FD, BagMode M, bool W, bool MASK, bool ARG>
FE_BAG_NO_IDIOMS int64_t pool_range_base(const T* table, int64_t rows, int64_t dim, int64_t stride,
                        const I* ids, const BagLayout& lay, const T* psw, T* out,
                        int64_t* argmax, int64_t b0, int64_t b1) {
  return pool_range<T, I, FD, M, W, MASK, ARG>(table, rows, dim, stride, ids, lay, psw, out,
                                               argmax, b0, b1);
}

#ifdef FE_BAG_AVX2
template <class T, class I, int64_t FD, BagMode M, bool W, bool MASK, bool ARG>
__attribute__((target("avx2"))) FE_BAG_NO_IDIOMS int64_t pool_range_avx2(
    const T* table, int64_t rows, int64_t dim, int64_t stride, const I* ids,
    const BagLayout& lay, const T* psw, T* out, int64_t* argmax, int64_t b0, int64_t b1) {
  return pool_range<T, I, FD, M, W, MASK, ARG>(table, rows, dim, stride, ids, lay, psw, out,
                                               argmax, b0, b1);
}
#endif

template <class F>
auto dispatch_bag_dim(int64_t dim, F&& f) {
  switch (dim) {
    case 16: return f(std::integral_constant<int64_t, 16>{});
    case 32: return f(std::integral_constant<int64_t, 32>{});
    case 64: return f(std::integral_constant<int64_t, 64>{});
    case 128: return f(std::integral_constant<int64_t, 128>{});
    default: return f(std::integral_constant<int64_t, 0>{});
  }
}

template <class T, class I, BagMode M, bool W, bool MASK, bool ARG>
int64_t pool_all(const T* table, int64_t rows, int64_t dim, int64_t stride, const I* ids,
                  const BagLayout& lay, const T* psw, T* out, int64_t* argmax,
                  const Interrupt& intr) {
  const int64_t nb = lay.nbags;
  if (nb <= 0) return -1;
  const int64_t avg_len = std::max<int64_t>(1, lay.n / nb);
  const int64_t row_bytes = std::max<int64_t>(
      1, mul_sat(std::max<int64_t>(dim, 1), static_cast<int64_t>(sizeof(T))));
  const int64_t per_bag = std::max<int64_t>(1, mul_sat(avg_len, row_bytes));
  const int64_t grain = std::max<int64_t>(1, kGrainBytes / per_bag);
  // Pieces between polls: about kPollBytes of rows read and written (ids + bags rows).
  const int64_t units = std::max<int64_t>(1, kPollBytes / row_bytes);
  auto piece_cost = [&](int64_t b0, int64_t b1) {
    return lay.end(b1 - 1) - lay.begin(b0) + (b1 - b0);
  };
  return dispatch_bag_dim(dim, [&](auto fd) -> int64_t {
    constexpr int64_t FD = decltype(fd)::value;
    const bool avx2 = bag_use_avx2();
    auto range = [&](int64_t b, int64_t e) {
#ifdef FE_BAG_AVX2
      if (avx2)
        return pool_range_avx2<T, I, FD, M, W, MASK, ARG>(table, rows, dim, stride, ids, lay,
                                                          psw, out, argmax, b, e);
#endif
      return pool_range_base<T, I, FD, M, W, MASK, ARG>(table, rows, dim, stride, ids, lay, psw,
                                                        out, argmax, b, e);
    };
    for (int64_t b0 = 0; b0 < nb;) {
      if (b0 > 0 && intr.poll()) return kInterrupted;
      const int64_t b1 =
          lay.offsets ? piece_end(b0, nb, units, [&](int64_t b) { return piece_cost(b0, b); })
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
          if (f >= 0) return f;  // chunks are in bag order, so this is the first bad position
      }
      b0 = b1;
    }
    return -1;
  });
}

template <class T, class I, BagMode M>
int64_t pool_mode(const T* table, int64_t rows, int64_t dim, int64_t stride, const I* ids,
                  const BagLayout& lay, const T* psw, bool mask, T* out, int64_t* argmax,
                  const Interrupt& intr) {
  if (M == BagMode::Max) {
    if (argmax)
      return mask ? pool_all<T, I, M, false, true, true>(table, rows, dim, stride, ids, lay,
                                                         nullptr, out, argmax, intr)
                  : pool_all<T, I, M, false, false, true>(table, rows, dim, stride, ids, lay,
                                                          nullptr, out, argmax, intr);
    return mask ? pool_all<T, I, M, false, true, false>(table, rows, dim, stride, ids, lay,
                                                        nullptr, out, nullptr, intr)
                : pool_all<T, I, M, false, false, false>(table, rows, dim, stride, ids, lay,
                                                         nullptr, out, nullptr, intr);
  }
  if (psw)
    return mask ? pool_all<T, I, M, true, true, false>(table, rows, dim, stride, ids, lay, psw,
                                                       out, nullptr, intr)
                : pool_all<T, I, M, true, false, false>(table, rows, dim, stride, ids, lay, psw,
                                                        out, nullptr, intr);
  return mask ? pool_all<T, I, M, false, true, false>(table, rows, dim, stride, ids, lay,
                                                      nullptr, out, nullptr, intr)
              : pool_all<T, I, M, false, false, false>(table, rows, dim, stride, ids, lay,
                                                       nullptr, out, nullptr, intr);
}

}  // namespace bag_detail

template <class T, class I>
int64_t bag_forward(const T* table, int64_t rows, int64_t dim, int64_t stride, const I* ids,
                    const BagLayout& lay, BagMode mode, const T* psw, bool mask_zero, T* out,
                    int64_t* argmax, const Interrupt& intr = {}) {
  using namespace bag_detail;
  switch (mode) {
    case BagMode::Sum:
      return pool_mode<T, I, BagMode::Sum>(table, rows, dim, stride, ids, lay, psw, mask_zero,
                                           out, nullptr, intr);
    case BagMode::Mean:
      return pool_mode<T, I, BagMode::Mean>(table, rows, dim, stride, ids, lay, psw, mask_zero,
                                            out, nullptr, intr);
    default:
      return pool_mode<T, I, BagMode::Max>(table, rows, dim, stride, ids, lay, nullptr,
                                           mask_zero, out, argmax, intr);
  }
}

template <class T>
struct BagGrad {
  CoalescePlan plan;          // unique rows and, per contribution, its slot
  big_vector<int64_t> src;    // per contribution: grad row (sum/mean) or grad element (max)
  big_vector<T> scale;        // per contribution (sum/mean)
};

template <class T, class I>
int64_t bag_backward_plan(int64_t dim, const I* ids, const BagLayout& lay, BagMode mode,
                          const T* psw, bool mask_zero, const int64_t* argmax, int64_t rows,
                          BagGrad<T>& g, const Interrupt& intr = {}) {
  // Contributions listed between two polls.
  constexpr int64_t kPollEvery = kPollBytes / 32;
  g.plan.unique.clear();
  g.plan.slot.clear();
  g.src.clear();
  g.scale.clear();
  big_vector<int64_t> crow;
  if (mode == BagMode::Max) {
    int64_t total;
    if (!mul_ok(lay.nbags, dim, &total)) return 0;  // argmax cannot be that large
    for (int64_t e = 0; e < total; ++e) {
      if (e % kPollEvery == 0 && e > 0 && intr.poll()) return kInterrupted;
      const int64_t r = load_once(argmax, e);
      if (r == -1) continue;
      if (!id_ok(r, rows)) return e;
      crow.push_back(r);
      g.src.push_back(e);
    }
  } else {
    crow.reserve(static_cast<size_t>(lay.n));
    g.src.reserve(static_cast<size_t>(lay.n));
    g.scale.reserve(static_cast<size_t>(lay.n));
    int64_t next_poll = kPollEvery;
    for (int64_t b = 0; b < lay.nbags; ++b) {
      const int64_t s = lay.begin(b), e = lay.end(b);
      if (e >= next_poll) {
        next_poll = e + kPollEvery;
        if (intr.poll()) return kInterrupted;
      }
      const size_t first = crow.size();
      T wsum = T(0);
      for (int64_t i = s; i < e; ++i) {
        const int64_t id = load_once(ids, i);
        if (!id_ok(id, rows)) return i;
        if (mask_zero && id == 0) continue;
        const T w = psw ? psw[i] : T(1);
        crow.push_back(id);
        g.src.push_back(b);
        g.scale.push_back(w);
        wsum += w;
      }
      if (mode == BagMode::Mean) {
        const T den = psw ? wsum : static_cast<T>(crow.size() - first);
        for (size_t j = first; j < crow.size(); ++j)
          g.scale[j] = den == T(0) ? T(0) : g.scale[j] / den;
      }
    }
  }
  if (crow.empty()) return -1;
  // rows are >= 0 here, so coalesce_plan cannot fail; it may be interrupted.
  return coalesce_plan(crow.data(), static_cast<int64_t>(crow.size()), g.plan, intr);
}

namespace bag_detail {

// Sums the contributions of slots [s0, s1) into their output rows, one row at a time in
// registers.  src / scale are grouped by slot (slot s owns [start[s], start[s+1])), in
// position order within a slot.
template <class T, int64_t FD, bool MAX>
FE_INLINE void sum_slots(const int64_t* start, const int64_t* src, const T* scale,
               const T* FE_RESTRICT grad, int64_t dim_rt, T* FE_RESTRICT out, int64_t s0,
               int64_t s1) {
  const int64_t dim = FD > 0 ? FD : dim_rt;
  constexpr int64_t AD = FD > 0 ? FD : 1;
  T accf[AD] = {};  // set before use in every mode; zeroed to keep -Wuninitialized quiet
  for (int64_t sl = s0; sl < s1; ++sl) {
    T* FE_RESTRICT o = out + sl * dim;
    T* acc = FD > 0 ? accf : o;  // based on o when FD == 0: not restrict
    for (int64_t k = 0; k < dim; ++k) acc[k] = T(0);
    for (int64_t q = start[sl]; q < start[sl + 1]; ++q) {
      if (MAX) {
        const int64_t e = src[q];
        acc[e % dim] += grad[e];
      } else {
        const T* FE_RESTRICT gr = grad + src[q] * dim;
        const T sc = scale[q];
        for (int64_t k = 0; k < dim; ++k) acc[k] += gr[k] * sc;
      }
    }
    if (FD > 0)
      for (int64_t k = 0; k < dim; ++k) o[k] = acc[k];
  }
}

template <class T, int64_t FD, bool MAX>
FE_BAG_NO_IDIOMS void sum_slots_entry(const int64_t* start, const int64_t* src, const T* scale,
                                      const T* grad, int64_t dim, T* out, int64_t s0,
                                      int64_t s1) {
  sum_slots<T, FD, MAX>(start, src, scale, grad, dim, out, s0, s1);
}

}  // namespace bag_detail

template <class T>
bool bag_backward_sum(const BagGrad<T>& g, const T* grad, int64_t dim, BagMode mode, T* out,
                      const Interrupt& intr = {}) {
  using namespace bag_detail;
  constexpr int64_t kPollEvery = kPollBytes / 32;
  const int64_t nc = static_cast<int64_t>(g.plan.slot.size());
  const int64_t nu = static_cast<int64_t>(g.plan.unique.size());
  if (nu == 0 || dim == 0) return true;
  // Group the contributions by slot (a stable counting sort keeps position order within
  // each slot), so that every output row is summed in registers and written once instead
  // of being read and written at random for each contribution.
  const int64_t* slot = g.plan.slot.data();
  big_vector<int64_t> start(static_cast<size_t>(nu + 1), 0);
  for (int64_t j = 0; j < nc; ++j) {
    if (j % kPollEvery == 0 && j > 0 && intr.poll()) return false;
    ++start[slot[j] + 1];
  }
  for (int64_t u = 0; u < nu; ++u) start[u + 1] += start[u];
  const bool is_max = mode == BagMode::Max;
  big_vector<int64_t> src(static_cast<size_t>(nc));
  big_vector<T> scale(is_max ? 0 : static_cast<size_t>(nc));
  {
    big_vector<int64_t> next(start.begin(), start.end() - 1);
    for (int64_t j = 0; j < nc; ++j) {
      if (j % kPollEvery == 0 && j > 0 && intr.poll()) return false;
      const int64_t q = next[slot[j]]++;
      src[q] = g.src[j];
      if (!is_max) scale[q] = g.scale[j];
    }
  }
  const int64_t row_bytes = mul_sat(dim, static_cast<int64_t>(sizeof(T)));
  const int64_t per_contrib = is_max ? static_cast<int64_t>(sizeof(T)) : row_bytes;
  const int64_t per_slot = std::max<int64_t>(1, mul_sat(std::max<int64_t>(1, nc / nu), per_contrib));
  const int64_t grain = std::max<int64_t>(1, kGrainBytes / per_slot);
  // Pieces of slots between polls: about kPollBytes of contributions read and rows written.
  const int64_t units = std::max<int64_t>(1, kPollBytes / std::max<int64_t>(per_contrib, row_bytes));
  return dispatch_bag_dim(dim, [&](auto fd) -> bool {
    constexpr int64_t FD = decltype(fd)::value;
    for (int64_t s0 = 0; s0 < nu;) {
      if (s0 > 0 && intr.poll()) return false;
      const int64_t s1 = piece_end(s0, nu, units, [&](int64_t s) {
        return start[s] - start[s0] + (s - s0);
      });
      parallel_for(s1 - s0, grain, [&](int64_t b, int64_t e, int) {
        if (is_max)
          sum_slots_entry<T, FD, true>(start.data(), src.data(), nullptr, grad, dim, out,
                                       s0 + b, s0 + e);
        else
          sum_slots_entry<T, FD, false>(start.data(), src.data(), scale.data(), grad, dim, out,
                                        s0 + b, s0 + e);
      });
      s0 = s1;
    }
    return true;
  });
}

// The supported instantiations live in fe/bag.cpp (compiled into fe_kernels with the other
// kernels); every other includer only declares them.
#define FE_BAG_INSTANCES(PREFIX)                                                              \
  FE_BAG_INST_TI(PREFIX, float, int32_t)                                                      \
  FE_BAG_INST_TI(PREFIX, float, int64_t)                                                      \
  FE_BAG_INST_TI(PREFIX, double, int32_t)                                                     \
  FE_BAG_INST_TI(PREFIX, double, int64_t)                                                     \
  PREFIX template bool bag_backward_sum<float>(const BagGrad<float>&, const float*, int64_t,  \
                                               BagMode, float*, const Interrupt&);            \
  PREFIX template bool bag_backward_sum<double>(const BagGrad<double>&, const double*,        \
                                                int64_t, BagMode, double*, const Interrupt&);
#define FE_BAG_INST_TI(PREFIX, T, I)                                                          \
  PREFIX template int64_t bag_forward<T, I>(const T*, int64_t, int64_t, int64_t, const I*,    \
                                            const BagLayout&, BagMode, const T*, bool, T*,    \
                                            int64_t*, const Interrupt&);                      \
  PREFIX template int64_t bag_backward_plan<T, I>(int64_t, const I*, const BagLayout&,        \
                                                  BagMode, const T*, bool, const int64_t*,    \
                                                  int64_t, BagGrad<T>&, const Interrupt&);
#ifndef FE_BAG_DEFINE_INSTANCES
FE_BAG_INSTANCES(extern)
#endif

}  // namespace fe
