// Backward pass: scatter-add and coalesce.
//
//   scatter_add(target, rows, dim, ids, n, values, scale) -> int64
//     for i in [0, n) in order: target[ids[i], :] += scale * values[i, :]
//     target: rows x dim, C-contiguous, written in place.  values: n x dim, C-contiguous,
//     must not overlap target.  ids: int32/int64.
//     All ids are validated before any write: returns the first bad position (nothing
//     written) or -1.  Each row's additions happen in index order on one thread (rows
//     are owned by workers), so the result is bit-identical for any thread count, and
//     equal to numpy's np.add.at(target, ids, scale * values).
//     If another thread changes ids during the call, bad ids found at use are skipped.
//
//     Never interrupted: an in-place update runs to its end (see interrupt.hpp).
//
//   coalesce, in two steps so the caller can allocate the outputs in between:
//   coalesce_plan(ids, n, plan, intr) -> int64
//     Finds the sorted unique ids and, for every position, the slot of its id.  Returns
//     the first position holding a negative id (and fills nothing), -1, or kInterrupted
//     (the plan is then unusable).  Its scratch is kept by the calling thread between
//     calls up to kKeepScratchBytes (tuning.hpp); more is returned to the OS at the end.
//   coalesce_sum(plan, values, dim, out, intr) -> bool
//     out[s, :] = sum of values[i, :] over the positions i of slot s, added in index
//     order starting from +0.0 (so it equals np.add.at on a zero array bit for bit).
//     out: plan.unique.size() x dim, C-contiguous, zero-filled by the caller.  Returns
//     false when interrupted (out is then partly summed).
//   Both poll intr between pieces of about kPollBytes, from the calling thread.
#pragma once

#include <cstdint>
#include <vector>

#include "fe/interrupt.hpp"
#include "fe/scratch.hpp"

namespace fe {

template <class T, class I>
int64_t scatter_add(T* target, int64_t rows, int64_t dim, const I* ids, int64_t n,
                    const T* values, T scale);

struct CoalescePlan {
  big_vector<int64_t> unique;  // sorted unique ids
  big_vector<int64_t> slot;    // slot[i] = index of ids[i] in `unique`

  size_t held() const noexcept { return held_bytes(unique) + held_bytes(slot); }
  // For a plan kept between calls: frees its vectors if together they hold more than
  // `bytes`.
  void trim(size_t bytes) noexcept {
    if (held() > bytes) {
      release(unique);
      release(slot);
    }
  }
};

// Bytes of coalesce scratch the calling thread keeps cached between calls (tests).
size_t coalesce_scratch_held() noexcept;

template <class I>
int64_t coalesce_plan(const I* ids, int64_t n, CoalescePlan& plan, const Interrupt& intr = {});

template <class T>
bool coalesce_sum(const CoalescePlan& plan, const T* values, int64_t dim, T* out,
                  const Interrupt& intr = {});

}  // namespace fe
