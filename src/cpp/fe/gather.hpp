// Forward lookup (gather).
//
//   gather(table, rows, dim, row_stride, ids, n, out, intr) -> int64
//     for i in [0, n): out[i*dim : (i+1)*dim] = table[ids[i]*row_stride : ... + dim]
//     table: `rows` rows of `dim` contiguous elements, row r at table + r*row_stride.
//     ids:   n ids, int32 or int64, read once each.
//     out:   n*dim elements, C-contiguous, must not overlap the table.
//     Returns -1 on success, else the position of the first id outside [0, rows), or
//     kInterrupted when intr.poll() asked it to stop (polled between pieces of about
//     kPollBytes; `out` is then partly written).  Small calls are one piece, never polled.
//     On failure rows of `out` may have been written: callers that promise an untouched
//     `out` run find_bad_id first (and this check-at-use still guards against ids that
//     change in between).
//     Thread safety: reads only; parallel over ids above a grain.  Deterministic.
//
//   find_bad_id(ids, n, rows, intr) -> int64: the first position whose id is outside
//     [0, rows), or -1 (or kInterrupted).  Parallel above a grain; returns the smallest
//     bad position.
#pragma once

#include <cstdint>

#include "fe/interrupt.hpp"

namespace fe {

template <class I>
int64_t find_bad_id(const I* ids, int64_t n, int64_t rows, const Interrupt& intr = {});

template <class T, class I>
int64_t gather(const T* table, int64_t rows, int64_t dim, int64_t row_stride, const I* ids,
               int64_t n, T* out, const Interrupt& intr = {});

}  // namespace fe
