// Definitions and explicit instantiations of the gather / scatter / coalesce kernels
// (float, double) x (int32_t, int64_t).  Contracts are in the headers.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <vector>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "fe/common.hpp"
#include "fe/gather.hpp"
#include "fe/parallel.hpp"
#include "fe/scatter.hpp"

namespace fe {
namespace {

// Work below this many bytes of rows runs on the calling thread: waking a worker costs
// more than it saves.
constexpr int64_t kGrainBytes = 256 * 1024;
// Tables larger than this are not cache resident: prefetch rows a few ids ahead.
constexpr int64_t kPrefetchTableBytes = 8 * 1024 * 1024;
constexpr int64_t kAhead = 12;

int64_t grain_rows(int64_t row_bytes) {
  return std::max<int64_t>(1, kGrainBytes / std::max<int64_t>(1, row_bytes));
}

// Output larger than this is written with non-temporal stores (when rows are 16-byte
// multiples and the output is 16-byte aligned): it will not be read back from cache
// before it is evicted anyway, and streaming stores skip the read-for-ownership.
constexpr int64_t kStreamOutBytes = 16 * 1024 * 1024;

template <int64_t RB>
FE_INLINE void copy_row(void* FE_RESTRICT dst, const void* FE_RESTRICT src, int64_t bytes,
                        bool stream) {
  const int64_t nb = RB > 0 ? RB : bytes;
#if defined(__SSE2__)
  if (stream) {
    auto* d = static_cast<__m128i*>(dst);
    auto* s = static_cast<const __m128i*>(src);
    for (int64_t k = 0; k < nb / 16; ++k) _mm_stream_si128(d + k, _mm_loadu_si128(s + k));
    return;
  }
#else
  (void)stream;
#endif
  std::memcpy(dst, src, static_cast<size_t>(nb));
}

FE_INLINE void stream_fence() {
#if defined(__SSE2__)
  _mm_sfence();
#endif
}

template <class T, class I, int64_t FD, bool PF, bool NT>
int64_t gather_range(const T* FE_RESTRICT table, int64_t rows, int64_t dim_rt, int64_t stride,
                     const I* ids, int64_t b, int64_t e, T* FE_RESTRICT out) {
  const int64_t dim = FD > 0 ? FD : dim_rt;
  for (int64_t i = b; i < e; ++i) {
    if (PF && i + kAhead < e) {
      const int64_t f = static_cast<int64_t>(ids[i + kAhead]);
      if (id_ok(f, rows)) prefetch_read(table + f * stride);
    }
    const int64_t id = load_once(ids, i);
    if (!id_ok(id, rows)) {
      if (NT) stream_fence();
      return i;
    }
    copy_row<FD * static_cast<int64_t>(sizeof(T))>(out + i * dim, table + id * stride,
                                                    dim * static_cast<int64_t>(sizeof(T)), NT);
  }
  if (NT) stream_fence();
  return -1;
}

template <class T, int64_t FD>
FE_INLINE void add_row(T* FE_RESTRICT t, const T* FE_RESTRICT v, T scale, int64_t dim_rt) {
  const int64_t dim = FD > 0 ? FD : dim_rt;
  for (int64_t k = 0; k < dim; ++k) t[k] += scale * v[k];
}

template <class T, int64_t FD>
FE_INLINE void add_row1(T* FE_RESTRICT t, const T* FE_RESTRICT v, int64_t dim_rt) {
  const int64_t dim = FD > 0 ? FD : dim_rt;
  for (int64_t k = 0; k < dim; ++k) t[k] += v[k];
}

template <class T, class I, int64_t FD, bool PF>
void scatter_part(T* target, int64_t rows, int64_t dim_rt, const I* ids, int64_t n,
                  const T* values, T scale, int part, int parts) {
  const int64_t dim = FD > 0 ? FD : dim_rt;
  for (int64_t i = 0; i < n; ++i) {
    if (PF && i + kAhead < n) {
      const int64_t f = static_cast<int64_t>(ids[i + kAhead]);
      if (id_ok(f, rows) && (parts == 1 || owner_of(f, parts) == part))
        prefetch_write(target + f * dim);
    }
    const int64_t id = load_once(ids, i);
    if (!id_ok(id, rows)) continue;  // only possible if ids changed after validation
    if (parts > 1 && owner_of(id, parts) != part) continue;
    add_row<T, FD>(target + id * dim, values + i * dim, scale, dim);
  }
}

}  // namespace

template <class I>
int64_t find_bad_id(const I* ids, int64_t n, int64_t rows) {
  if (n <= 0) return -1;
  int parts = plan_parts(n, 1 << 16);
  if (parts == 1) return find_bad_id_range(ids, 0, n, rows);
  std::vector<int64_t> first(parts, -1);
  parallel_chunks(n, parts, [&](int64_t b, int64_t e, int p) {
    first[p] = find_bad_id_range(ids, b, e, rows);
  });
  for (int64_t f : first)
    if (f >= 0) return f;  // parts are in position order: the first hit is the smallest
  return -1;
}

template <class T, class I>
int64_t gather(const T* table, int64_t rows, int64_t dim, int64_t row_stride, const I* ids,
               int64_t n, T* out) {
  if (n <= 0) return -1;
  if (dim == 0) return find_bad_id(ids, n, rows);
  const int64_t row_bytes = dim * static_cast<int64_t>(sizeof(T));
  const bool pf = rows * row_stride * static_cast<int64_t>(sizeof(T)) > kPrefetchTableBytes;
  const bool nt = row_bytes % 16 == 0 && reinterpret_cast<uintptr_t>(out) % 16 == 0 &&
                  n * row_bytes >= kStreamOutBytes && !std::getenv("FASTEMBED_NO_STREAM");
  const int64_t grain = grain_rows(row_bytes);
  return dispatch_dim(dim, [&](auto fd) -> int64_t {
    constexpr int64_t FD = decltype(fd)::value;
    auto range = [&](int64_t b, int64_t e) {
      if (nt)
        return pf ? gather_range<T, I, FD, true, true>(table, rows, dim, row_stride, ids, b, e, out)
                  : gather_range<T, I, FD, false, true>(table, rows, dim, row_stride, ids, b, e, out);
      return pf ? gather_range<T, I, FD, true, false>(table, rows, dim, row_stride, ids, b, e, out)
                : gather_range<T, I, FD, false, false>(table, rows, dim, row_stride, ids, b, e, out);
    };
    int parts = plan_parts(n, grain);
    if (parts == 1) return range(0, n);
    std::vector<int64_t> first(parts, -1);
    parallel_chunks(n, parts, [&](int64_t b, int64_t e, int p) { first[p] = range(b, e); });
    for (int64_t f : first)
      if (f >= 0) return f;
    return -1;
  });
}

template <class T, class I>
int64_t scatter_add(T* target, int64_t rows, int64_t dim, const I* ids, int64_t n,
                    const T* values, T scale) {
  if (n <= 0) return -1;
  const int64_t bad = find_bad_id(ids, n, rows);
  if (bad >= 0 || dim == 0) return bad;
  const bool pf = rows * dim * static_cast<int64_t>(sizeof(T)) > kPrefetchTableBytes;
  const int parts = plan_parts(n, grain_rows(dim * static_cast<int64_t>(sizeof(T))));
  dispatch_dim(dim, [&](auto fd) {
    constexpr int64_t FD = decltype(fd)::value;
    parallel_parts(parts, [&](int p) {
      if (pf)
        scatter_part<T, I, FD, true>(target, rows, dim, ids, n, values, scale, p, parts);
      else
        scatter_part<T, I, FD, false>(target, rows, dim, ids, n, values, scale, p, parts);
    });
    return 0;
  });
  return -1;
}

template <class I>
int64_t coalesce_plan(const I* ids, int64_t n, CoalescePlan& plan) {
  plan.unique.clear();
  plan.slot.clear();
  if (n <= 0) return -1;
  constexpr int64_t kGrain = 1 << 16;
  const int parts = plan_parts(n, kGrain);
  // A private copy: every later pass reads it, never the caller's buffer.
  std::vector<int64_t> local(static_cast<size_t>(n));
  std::vector<int64_t> lo_p(parts, std::numeric_limits<int64_t>::max()), hi_p(parts, -1),
      neg_p(parts, -1);
  parallel_chunks(n, parts, [&](int64_t b, int64_t e, int p) {
    int64_t lo = lo_p[p], hi = hi_p[p], neg = -1;
    for (int64_t i = b; i < e; ++i) {
      const int64_t v = load_once(ids, i);
      local[i] = v;
      if (v < 0 && neg < 0) neg = i;
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
    lo_p[p] = lo;
    hi_p[p] = hi;
    neg_p[p] = neg;
  });
  for (int64_t ng : neg_p)
    if (ng >= 0) return ng;  // parts are in position order: the first hit is the smallest
  const int64_t lo = *std::min_element(lo_p.begin(), lo_p.end());
  const int64_t hi = *std::max_element(hi_p.begin(), hi_p.end());
  plan.slot.resize(static_cast<size_t>(n));
  int64_t* slot = plan.slot.data();
  const int64_t dense_limit = std::max<int64_t>(4 * n, int64_t(1) << 20);
  if (hi - lo < dense_limit && hi - lo < (int64_t(1) << 31)) {
    // Dense: a map over [lo, hi] (at most 4n + 1M entries) of id -> slot.
    const int64_t span = hi - lo + 1;
    std::vector<int32_t> map(static_cast<size_t>(span), 0);
    int32_t* mp = map.data();
    // Marking is idempotent: concurrent stores of the same value (relaxed atomics).
    parallel_chunks(n, parts, [&](int64_t b, int64_t e, int) {
      for (int64_t i = b; i < e; ++i) __atomic_store_n(mp + (local[i] - lo), 1, __ATOMIC_RELAXED);
    });
    // Slots in id order: count marks per chunk of the map, then number them.
    const int sparts = plan_parts(span, kGrain);
    std::vector<int64_t> first(static_cast<size_t>(sparts) + 1, 0);
    parallel_chunks(span, sparts, [&](int64_t b, int64_t e, int p) {
      int64_t c = 0;
      for (int64_t j = b; j < e; ++j) c += mp[j];
      first[p + 1] = c;
    });
    for (int p = 0; p < sparts; ++p) first[p + 1] += first[p];
    plan.unique.resize(static_cast<size_t>(first[sparts]));
    int64_t* u = plan.unique.data();
    parallel_chunks(span, sparts, [&](int64_t b, int64_t e, int p) {
      int64_t k = first[p];
      for (int64_t j = b; j < e; ++j) {
        if (mp[j]) {
          mp[j] = static_cast<int32_t>(k);
          u[k++] = j + lo;
        }
      }
    });
    parallel_chunks(n, parts, [&](int64_t b, int64_t e, int) {
      for (int64_t i = b; i < e; ++i) slot[i] = mp[local[i] - lo];
    });
  } else {
    std::vector<int64_t> sorted(local);
    std::sort(sorted.begin(), sorted.end());
    sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
    plan.unique = std::move(sorted);
    const int64_t* u = plan.unique.data();
    const int64_t nu = static_cast<int64_t>(plan.unique.size());
    parallel_for(n, 1 << 14, [&](int64_t b, int64_t e, int) {
      for (int64_t i = b; i < e; ++i)
        slot[i] = std::lower_bound(u, u + nu, local[i]) - u;
    });
  }
  return -1;
}

template <class T>
void coalesce_sum(const CoalescePlan& plan, const T* values, int64_t dim, T* out) {
  const int64_t n = static_cast<int64_t>(plan.slot.size());
  if (n == 0 || dim == 0) return;
  const int64_t* slot = plan.slot.data();
  const int64_t nu = static_cast<int64_t>(plan.unique.size());
  const bool pf = nu * dim * static_cast<int64_t>(sizeof(T)) > kPrefetchTableBytes;
  const int parts = plan_parts(n, grain_rows(dim * static_cast<int64_t>(sizeof(T))));
  dispatch_dim(dim, [&](auto fd) {
    constexpr int64_t FD = decltype(fd)::value;
    parallel_parts(parts, [&](int p) {
      for (int64_t i = 0; i < n; ++i) {
        if (pf && i + kAhead < n) {
          const int64_t f = slot[i + kAhead];
          if (parts == 1 || owner_of(f, parts) == p) prefetch_write(out + f * dim);
        }
        const int64_t s = slot[i];
        if (parts > 1 && owner_of(s, parts) != p) continue;
        add_row1<T, FD>(out + s * dim, values + i * dim, dim);
      }
    });
    return 0;
  });
}

#define FE_INST_I(I)                                                                  \
  template int64_t find_bad_id<I>(const I*, int64_t, int64_t);                        \
  template int64_t coalesce_plan<I>(const I*, int64_t, CoalescePlan&);
#define FE_INST_TI(T, I)                                                              \
  template int64_t gather<T, I>(const T*, int64_t, int64_t, int64_t, const I*, int64_t, \
                                T*);                                                  \
  template int64_t scatter_add<T, I>(T*, int64_t, int64_t, const I*, int64_t, const T*, T);

FE_INST_I(int32_t)
FE_INST_I(int64_t)
FE_INST_TI(float, int32_t)
FE_INST_TI(float, int64_t)
FE_INST_TI(double, int32_t)
FE_INST_TI(double, int64_t)
template void coalesce_sum<float>(const CoalescePlan&, const float*, int64_t, float*);
template void coalesce_sum<double>(const CoalescePlan&, const double*, int64_t, double*);

}  // namespace fe
