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

#include <cstdint>

#include "fe/interrupt.hpp"
#include "fe/scatter.hpp"  // CoalescePlan
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

template <class T>
struct BagGrad {
  CoalescePlan plan;          // unique rows and, per contribution, its slot
  big_vector<int64_t> src;    // per contribution: grad row (sum/mean) or grad element (max)
  big_vector<T> scale;        // per contribution (sum/mean)
};

template <class T, class I>
int64_t bag_forward(const T* table, int64_t rows, int64_t dim, int64_t stride, const I* ids,
                    const BagLayout& lay, BagMode mode, const T* psw, bool mask_zero, T* out,
                    int64_t* argmax, const Interrupt& intr = {});

template <class T, class I>
int64_t bag_backward_plan(int64_t dim, const I* ids, const BagLayout& lay, BagMode mode,
                          const T* psw, bool mask_zero, const int64_t* argmax, int64_t rows,
                          BagGrad<T>& g, const Interrupt& intr = {});

template <class T>
bool bag_backward_sum(const BagGrad<T>& g, const T* grad, int64_t dim, BagMode mode, T* out,
                      const Interrupt& intr = {});

}  // namespace fe
