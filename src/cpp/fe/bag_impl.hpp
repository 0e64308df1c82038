// The loops shared by the pooling kernels of float tables (bag.cpp) and of reduced-precision
// and quantized tables (lowp.cpp): the run-time options of a call turned into template
// flags, and the driver that pools the bags in polled pieces split among threads.
// Internal to the kernel library (contracts in bag.hpp and lowp.hpp).
#pragma once

#include <algorithm>
#include <cstdint>

#include "fe/bag.hpp"
#include "fe/common.hpp"
#include "fe/parallel.hpp"
#include "fe/tuning.hpp"

// GCC turns the fixed-width "zero the accumulators" and "store them" loops into memset /
// memcpy calls, which forces the accumulators out of registers onto the stack (measured:
// ~10% slower sums); keep them as plain loops.
#if defined(__GNUC__) && !defined(__clang__)
#define FE_BAG_NO_IDIOMS \
  __attribute__((optimize("no-tree-loop-distribute-patterns", "no-loop-unroll-and-jam")))
#else
#define FE_BAG_NO_IDIOMS
#endif

namespace fe {
namespace bag_detail {

// The compile-time options of one pooling loop.
template <BagMode M, bool W, bool MASK, bool ARG>
struct PoolFlags {
  static constexpr BagMode mode = M;
  static constexpr bool weighted = W;  // per-sample weights (sum, mean)
  static constexpr bool mask = MASK;   // leave id 0 out
  static constexpr bool argmax = ARG;  // record the row of each maximum (max)
};

template <BagMode M, bool W, bool ARG, class F>
int64_t with_mask(bool mask, F& f) {
  return mask ? f(PoolFlags<M, W, true, ARG>{}) : f(PoolFlags<M, W, false, ARG>{});
}

// Calls f(PoolFlags<...>{}) for a call's mode and options.  Weights are only read by sum
// and mean and argmax only by max, so only those combinations are compiled (a loop reads
// its weights pointer only when `weighted`, its argmax pointer only when `argmax`).
template <class F>
int64_t dispatch_pool(BagMode mode, bool weighted, bool mask, bool argmax, F&& f) {
  switch (mode) {
    case BagMode::Sum:
      return weighted ? with_mask<BagMode::Sum, true, false>(mask, f)
                      : with_mask<BagMode::Sum, false, false>(mask, f);
    case BagMode::Mean:
      return weighted ? with_mask<BagMode::Mean, true, false>(mask, f)
                      : with_mask<BagMode::Mean, false, false>(mask, f);
    default:
      return argmax ? with_mask<BagMode::Max, false, true>(mask, f)
                    : with_mask<BagMode::Max, false, false>(mask, f);
  }
}

// Pools the lay.nbags bags: range(b, e) pools bags [b, e) and returns the first bad
// position in them or -1.  The bags go in pieces of about kPollBytes of rows read (a bag
// is never split), with intr polled between pieces, and each piece is split among threads
// in chunks of about kBagGrainBytes.  row_bytes: the bytes of one stored row (>= 1).
// Returns -1, the first bad position, or kInterrupted.
template <class Range>
int64_t pool_pieces(const BagLayout& lay, int64_t row_bytes, const Interrupt& intr,
                    Range&& range) {
  const int64_t nb = lay.nbags;
  if (nb <= 0) return -1;
  const int64_t avg_len = std::max<int64_t>(1, lay.n / nb);
  const int64_t per_bag = std::max<int64_t>(1, mul_sat(avg_len, row_bytes));
  const int64_t grain = std::max<int64_t>(1, kBagGrainBytes / per_bag);
  // Work units (ids + bags) per piece.
  const int64_t units = std::max<int64_t>(1, kPollBytes / row_bytes);
  for (int64_t b0 = 0; b0 < nb;) {
    if (b0 > 0 && intr.poll()) return kInterrupted;
    const int64_t b1 =
        lay.offsets ? piece_end(b0, nb, units,
                                [&](int64_t b) { return lay.end(b - 1) - lay.begin(b0) + (b - b0); })
                    : std::min(nb, b0 + std::max<int64_t>(1, units / (lay.fixed + 1)));
    const int64_t f = first_hit(b1 - b0, plan_parts(b1 - b0, grain),
                                [&](int64_t b, int64_t e) { return range(b0 + b, b0 + e); });
    if (f >= 0) return f;
    b0 = b1;
  }
  return -1;
}

}  // namespace bag_detail
}  // namespace fe
