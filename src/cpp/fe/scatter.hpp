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
//   coalesce, in two steps so the caller can allocate the outputs in between:
//   coalesce_plan(ids, n, plan) -> int64
//     Finds the sorted unique ids and, for every position, the slot of its id.  Returns
//     the first position holding a negative id (and fills nothing), or -1.  Keeps its
//     scratch vectors (up to 64 MB each) in the calling thread between calls.
//   coalesce_sum(plan, values, dim, out)
//     out[s, :] = sum of values[i, :] over the positions i of slot s, added in index
//     order starting from +0.0 (so it equals np.add.at on a zero array bit for bit).
//     out: plan.unique.size() x dim, C-contiguous, zero-filled by the caller.
#pragma once

#include <cstdint>
#include <vector>

namespace fe {

template <class T, class I>
int64_t scatter_add(T* target, int64_t rows, int64_t dim, const I* ids, int64_t n,
                    const T* values, T scale);

struct CoalescePlan {
  std::vector<int64_t> unique;  // sorted unique ids
  std::vector<int64_t> slot;    // slot[i] = index of ids[i] in `unique`

  // For a plan kept between calls: frees its vectors if together they hold more than
  // `bytes`.
  void trim(size_t bytes) {
    if ((unique.capacity() + slot.capacity()) * sizeof(int64_t) > bytes) {
      std::vector<int64_t>().swap(unique);
      std::vector<int64_t>().swap(slot);
    }
  }
};

template <class I>
int64_t coalesce_plan(const I* ids, int64_t n, CoalescePlan& plan);

template <class T>
void coalesce_sum(const CoalescePlan& plan, const T* values, int64_t dim, T* out);

}  // namespace fe
