// Definitions and explicit instantiations of the embedding_bag kernels (contracts in
// bag.hpp), for (float, double) x (int32_t, int64_t).
#include "fe/bag.hpp"

#include <algorithm>
#include <cstdint>
#include <vector>

#include "fe/bag_impl.hpp"
#include "fe/common.hpp"
#include "fe/parallel.hpp"
#include "fe/tuning.hpp"

#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
#define FE_BAG_AVX2 1
#endif

namespace fe {
namespace bag_detail {
namespace {

// The pooling loops are also compiled for AVX2 (half the adds per row) and chosen at run
// time; FASTEMBED_CPU=baseline forces the baseline build.  Both do the same additions in
// the same order, so their results are bit-identical.
bool bag_use_avx2() noexcept {
#ifdef FE_BAG_AVX2
  static const bool use = [] {
    if (!simd_allowed()) return false;
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
      if (i + kBagAhead < pend) {
        const int64_t f = static_cast<int64_t>(ids[i + kBagAhead]);
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
          // The same result: r > acc ? r : acc is a max instruction that keeps a NaN
          // already in acc, and a blend takes a NaN from r.  NaN propagation costs a
          // compare and a blend per vector: measured (one thread, AVX2, 20k bags of 20
          // from a cached 1000 x 64 table) 2.4 -> 3.9 ms; with argmax 28 -> 10 ms (that
          // form vectorizes better than the old one).  Tables that do not fit in cache
          // are bound by memory either way.
          for (int64_t k = 0; k < dim; ++k) {
            const T m = r[k] > acc[k] ? r[k] : acc[k];
            acc[k] = r[k] != r[k] ? r[k] : m;
          }
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

template <class T, class I>
int64_t pool_all(const T* table, int64_t rows, int64_t dim, int64_t stride, const I* ids,
                 const BagLayout& lay, BagMode mode, const T* psw, bool mask, T* out,
                 int64_t* argmax, const Interrupt& intr) {
  const int64_t row_bytes = std::max<int64_t>(
      1, mul_sat(std::max<int64_t>(dim, 1), static_cast<int64_t>(sizeof(T))));
  const bool avx2 = bag_use_avx2();
  return dispatch_dim(BagWidths{}, dim, [&](auto fd) -> int64_t {
    constexpr int64_t FD = decltype(fd)::value;
    return dispatch_pool(mode, psw != nullptr, mask, argmax != nullptr, [&](auto flags) {
      using F = decltype(flags);
      return pool_pieces(lay, row_bytes, intr, [&](int64_t b, int64_t e) {
#ifdef FE_BAG_AVX2
        if (avx2)
          return pool_range_avx2<T, I, FD, F::mode, F::weighted, F::mask, F::argmax>(
              table, rows, dim, stride, ids, lay, psw, out, argmax, b, e);
#else
        (void)avx2;
#endif
        return pool_range_base<T, I, FD, F::mode, F::weighted, F::mask, F::argmax>(
            table, rows, dim, stride, ids, lay, psw, out, argmax, b, e);
      });
    });
  });
}

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


}  // namespace
}  // namespace bag_detail

template <class T, class I>
int64_t bag_forward(const T* table, int64_t rows, int64_t dim, int64_t stride, const I* ids,
                    const BagLayout& lay, BagMode mode, const T* psw, bool mask_zero, T* out,
                    int64_t* argmax, const Interrupt& intr) {
  return bag_detail::pool_all(table, rows, dim, stride, ids, lay, mode, psw, mask_zero, out,
                              argmax, intr);
}

template <class T, class I>
int64_t bag_backward_plan(int64_t dim, const I* ids, const BagLayout& lay, BagMode mode,
                          const T* psw, bool mask_zero, const int64_t* argmax, int64_t rows,
                          BagGrad<T>& g, const Interrupt& intr) {
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

template <class T>
bool bag_backward_sum(const BagGrad<T>& g, const T* grad, int64_t dim, BagMode mode, T* out,
                      const Interrupt& intr) {
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
  const int64_t grain = std::max<int64_t>(1, kBagGrainBytes / per_slot);
  // Pieces of slots between polls: about kPollBytes of contributions read and rows written.
  const int64_t units = std::max<int64_t>(1, kPollBytes / std::max<int64_t>(per_contrib, row_bytes));
  return dispatch_dim(BagWidths{}, dim, [&](auto fd) -> bool {
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

#define FE_BAG_INST_TI(T, I)                                                                  \
  template int64_t bag_forward<T, I>(const T*, int64_t, int64_t, int64_t, const I*,           \
                                     const BagLayout&, BagMode, const T*, bool, T*, int64_t*, \
                                     const Interrupt&);                                       \
  template int64_t bag_backward_plan<T, I>(int64_t, const I*, const BagLayout&, BagMode,      \
                                           const T*, bool, const int64_t*, int64_t,           \
                                           BagGrad<T>&, const Interrupt&);

FE_FOR_FLOATS_IDS(FE_BAG_INST_TI)
template bool bag_backward_sum<float>(const BagGrad<float>&, const float*, int64_t, BagMode,
                                      float*, const Interrupt&);
template bool bag_backward_sum<double>(const BagGrad<double>&, const double*, int64_t, BagMode,
                                       double*, const Interrupt&);

}  // namespace fe
