// Definitions and explicit instantiations of the scatter-add and coalesce kernels
// (contracts in scatter.hpp), for (float, double) x (int32_t, int64_t).
#include "fe/scatter.hpp"

#include <algorithm>
#include <limits>
#include <vector>

#include "fe/common.hpp"
#include "fe/gather.hpp"  // find_bad_id
#include "fe/parallel.hpp"
#include "fe/tuning.hpp"

namespace fe {
namespace {

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

// Owner-computes loop of worker `part` of `parts`: calls add(i, id) for every i in
// [0, n), in order, whose id (read once) is in [0, rows) and owned by `part`, and
// calls prefetch(id) kAhead calls ahead when PF.  A block of positions is
// first compacted to the owned ones without branches: with two or more workers, ownership
// of a random id is a coin flip that a branch would mispredict every other id.
template <bool PF, class I, class Prefetch, class Add>
FE_INLINE void for_owned(const I* ids, int64_t n, int64_t rows, int part, int parts,
                         Prefetch&& prefetch, Add&& add) {
  constexpr int64_t kBlock = 1024;
  int64_t pos[kBlock], val[kBlock];
  for (int64_t s = 0; s < n; s += kBlock) {
    const int64_t t = s + kBlock < n ? s + kBlock : n;
    int64_t k = 0;
    for (int64_t i = s; i < t; ++i) {
      const int64_t id = load_once(ids, i);
      pos[k] = i;
      val[k] = id;
      k += static_cast<int64_t>(id_ok(id, rows) & (owner_of(id, parts) == part));
    }
    for (int64_t j = 0; j < k; ++j) {
      if (PF && j + kAhead < k) prefetch(val[j + kAhead]);
      add(pos[j], val[j]);
    }
  }
}

// Columns [c0, c1) of worker p of `parts` when rows of `dim` elements of `elem` bytes
// are cut at the cache-line boundaries of the memory at `base` (rows are whole lines).
FE_INLINE void column_range(const void* base, int64_t dim, int64_t elem, int p, int parts,
                            int64_t& c0, int64_t& c1) {
  const int64_t line = 64 / elem;
  const int64_t misalign = static_cast<int64_t>(reinterpret_cast<uintptr_t>(base) % 64);
  const int64_t first = misalign == 0 ? line : (64 - misalign) / elem;  // first cut > 0
  // Cuts: first, first + line, ... below dim; segments between 0, the cuts and dim.
  const int64_t segs = first >= dim ? 1 : 1 + (dim - first + line - 1) / line;
  auto cut = [&](int64_t k) { return k <= 0 ? 0 : k >= segs ? dim : first + (k - 1) * line; };
  c0 = cut(segs * p / parts);
  c1 = cut(segs * (p + 1) / parts);
}

// The wide-row form of coalesce's summing: target[row_of(i)] += values[i] for i in
// [0, n) in order, worker p taking its own columns of every row.  Workers then read
// disjoint columns of `values` and write disjoint cache lines of `target`, where splitting
// rows by owner would make each of them stream all of `values` (measured: 25% faster
// for a Zipf coalesce (1M, 64, 1M); for scatter_add into a large table it was slower, so
// that keeps owners).  Every element still gets its additions in index order.  Returns
// false, doing nothing, when rows are not whole cache lines or are narrower than a line
// per worker.
template <class T, class RowOf>
bool add_by_columns(T* target, int64_t dim, const T* values, int64_t n, int parts, bool pf,
                    RowOf&& row_of) {
  constexpr int64_t kLine = 64 / static_cast<int64_t>(sizeof(T));
  if (parts < 2 || dim % kLine != 0 || dim < kLine * parts) return false;
  parallel_parts(parts, [&](int p) {
    int64_t c0, c1;
    column_range(target, dim, static_cast<int64_t>(sizeof(T)), p, parts, c0, c1);
    if (c0 >= c1) return;
    dispatch_dim(RowWidths{}, c1 - c0, [&](auto fw) {
      constexpr int64_t FW = decltype(fw)::value;
      T* t = target + c0;
      const T* v = values + c0;
      for (int64_t i = 0; i < n; ++i) {
        if (pf && i + kAhead < n) prefetch_write(t + row_of(i + kAhead) * dim);
        add_row1<T, FW>(t + row_of(i) * dim, v + i * dim, c1 - c0);
      }
      return 0;
    });
  });
  return true;
}

template <class T, class I, int64_t FD, bool PF>
void scatter_part(T* target, int64_t rows, int64_t dim_rt, const I* ids, int64_t n,
                  const T* values, T scale, int part, int parts) {
  const int64_t dim = FD > 0 ? FD : dim_rt;
  if (parts > 1 && dim * static_cast<int64_t>(sizeof(T)) <= kCompactRowBytes) {
    for_owned<PF>(
        ids, n, rows, part, parts, [&](int64_t id) { prefetch_write(target + id * dim); },
        [&](int64_t i, int64_t id) { add_row<T, FD>(target + id * dim, values + i * dim, scale, dim); });
    return;
  }
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

// Scratch of coalesce_plan kept by each thread between calls: a fresh large block costs a
// page fault per page on every call, which for coalesce cost as much as the work (a plan
// of 1M ids, one thread, torch imported: 21 ms fresh, 10 ms reused).  But a thread keeps
// it for its whole life, so only up to half of kKeepScratchBytes (the caller's plan takes
// the other half); above that it is freed, and being mmap'ed (scratch.hpp) it goes back
// to the OS at once.
struct CoalesceScratch {
  big_vector<int64_t> local;
  big_vector<uint64_t> bits;
  big_vector<int32_t> map;
  big_vector<int64_t> sorted, merged;
  size_t held() const noexcept {
    return held_bytes(local) + held_bytes(bits) + held_bytes(map) + held_bytes(sorted) +
           held_bytes(merged);
  }
  void trim() noexcept {
    if (held() > kKeepScratchBytes / 2) {
      release(local);
      release(bits);
      release(map);
      release(sorted);
      release(merged);
    }
  }
};

CoalesceScratch& thread_scratch() {
  static thread_local CoalesceScratch s;
  return s;
}

// Runs fn(b, e, part) over [0, n) in pieces of `piece` positions, each piece split in
// `parts` chunks as parallel_chunks does (parts fixed for the whole run, so per-part state
// stays valid), and polls intr between pieces.  Chunks of one part see increasing
// positions.  Returns false when interrupted.
template <class Fn>
bool for_pieces(int64_t n, int64_t piece, int parts, const Interrupt& intr, Fn&& fn) {
  piece = std::max<int64_t>(1, piece);
  for (int64_t s = 0; s < n; s += piece) {
    if (s > 0 && intr.poll()) return false;
    const int64_t e = std::min(n, s + std::min(piece, n - s));
    parallel_chunks(e - s, parts, [&](int64_t b, int64_t f, int p) { fn(s + b, s + f, p); });
  }
  return true;
}

// Bits set in m (portable: the baseline x86-64 target has no popcnt instruction).
FE_INLINE int64_t popcount64(uint64_t m) noexcept {
  m = m - ((m >> 1) & 0x5555555555555555ull);
  m = (m & 0x3333333333333333ull) + ((m >> 2) & 0x3333333333333333ull);
  m = (m + (m >> 4)) & 0x0f0f0f0f0f0f0f0full;
  return static_cast<int64_t>((m * 0x0101010101010101ull) >> 56);
}

}  // namespace

template <class T, class I>
int64_t scatter_add(T* target, int64_t rows, int64_t dim, const I* ids, int64_t n,
                    const T* values, T scale) {
  if (n <= 0) return -1;
  const int64_t bad = find_bad_id(ids, n, rows);
  if (bad >= 0 || dim == 0) return bad;
  const bool pf = mul_sat(mul_sat(rows, dim), static_cast<int64_t>(sizeof(T))) > kPrefetchTableBytes;
  const int parts = plan_parts(n, grain_rows(mul_sat(dim, static_cast<int64_t>(sizeof(T)))));
  dispatch_dim(RowWidths{}, dim, [&](auto fd) {
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
int64_t coalesce_plan(const I* ids, int64_t n, CoalescePlan& plan, const Interrupt& intr) {
  plan.unique.clear();
  if (n <= 0) {
    plan.slot.clear();
    return -1;
  }
  const int parts = plan_parts(n, kIdGrain);
  CoalesceScratch& scratch = thread_scratch();
  struct TrimAtExit {
    CoalesceScratch& s;
    ~TrimAtExit() { s.trim(); }
  } trim_at_exit{scratch};
  // References, so that the lambdas run by workers see this thread's vectors, not their own.
  auto& local = scratch.local;
  auto& bits = scratch.bits;
  auto& map = scratch.map;
  auto stop = [&]() {
    plan.slot.clear();
    plan.unique.clear();
    return kInterrupted;
  };
  // A private copy: every later pass reads it, never the caller's buffer.  Grown, never
  // shrunk or cleared: only its first n entries are read.
  if (static_cast<int64_t>(local.size()) < n) local.resize(static_cast<size_t>(n));
  std::vector<int64_t> lo_p(parts, std::numeric_limits<int64_t>::max()), hi_p(parts, -1);
  int64_t lo = std::numeric_limits<int64_t>::max(), hi = -1;
  for (int64_t s = 0; s < n; s += kCoalescePiece) {
    if (s > 0 && intr.poll()) return stop();
    const int64_t m = std::min(kCoalescePiece, n - s);
    std::vector<int64_t> neg_p(parts, -1);
    parallel_chunks(m, parts, [&](int64_t b, int64_t e, int p) {
      int64_t l = lo_p[p], h = hi_p[p], neg = -1;
      for (int64_t i = s + b; i < s + e; ++i) {
        const int64_t v = load_once(ids, i);
        local[i] = v;
        if (v < 0 && neg < 0) neg = i;
        l = std::min(l, v);
        h = std::max(h, v);
      }
      lo_p[p] = l;
      hi_p[p] = h;
      neg_p[p] = neg;
    });
    for (int64_t ng : neg_p) {
      if (ng >= 0) {  // parts are in position order: the first hit is the smallest
        plan.slot.clear();
        return ng;
      }
    }
  }
  lo = *std::min_element(lo_p.begin(), lo_p.end());
  hi = *std::max_element(hi_p.begin(), hi_p.end());
  plan.slot.resize(static_cast<size_t>(n));  // every entry is written below
  int64_t* slot = plan.slot.data();
  const int64_t dense_limit = std::max<int64_t>(mul_sat(4, n), int64_t(1) << 20);
  if (hi - lo < dense_limit && hi - lo < (int64_t(1) << 31)) {
    // Dense: ids in [lo, hi] (at most 4n + 1M of them).  Each part marks its ids in a
    // bitmap of its own (small enough to stay in L2, and no atomics), the bitmaps are
    // ORed and counted per word, the set bits numbered in id order into `map` (id ->
    // slot; entries of unmarked ids are never read, so it is not cleared), and every
    // position looks its slot up.
    const int64_t span = hi - lo + 1;
    const int64_t words = (span + 63) / 64;
    bits.assign(static_cast<size_t>(parts * words), 0);
    if (static_cast<int64_t>(map.size()) < span) map.resize(static_cast<size_t>(span));
    uint64_t* bw = bits.data();
    int32_t* mp = map.data();
    const int64_t* loc = local.data();
    if (!for_pieces(n, kCoalescePiece, parts, intr, [&](int64_t b, int64_t e, int p) {
          uint64_t* w = bw + p * words;
          for (int64_t i = b; i < e; ++i) {
            const int64_t j = loc[i] - lo;
            w[j >> 6] |= uint64_t(1) << (j & 63);
          }
        }))
      return stop();
    if (intr.poll()) return stop();
    // first[w] = number of marked ids below word w.
    big_vector<int64_t> first(static_cast<size_t>(words) + 1);
    int64_t total = 0;
    for (int64_t w = 0; w < words; ++w) {
      uint64_t m = bw[w];
      for (int p = 1; p < parts; ++p) m |= bw[p * words + w];
      bw[w] = m;
      first[static_cast<size_t>(w)] = total;
      total += popcount64(m);
    }
    first[static_cast<size_t>(words)] = total;
    if (intr.poll()) return stop();
    plan.unique.resize(static_cast<size_t>(total));
    int64_t* u = plan.unique.data();
    parallel_chunks(words, plan_parts(words, kIdGrain / 64), [&](int64_t b, int64_t e, int) {
      for (int64_t w = b; w < e; ++w) {
        int64_t k = first[static_cast<size_t>(w)];
        for (uint64_t m = bw[w]; m != 0; m &= m - 1) {
          const int64_t j = w * 64 + __builtin_ctzll(m);
          mp[j] = static_cast<int32_t>(k);
          u[k++] = j + lo;
        }
      }
    });
    if (!for_pieces(n, kCoalescePiece, parts, intr, [&](int64_t b, int64_t e, int) {
          for (int64_t i = b; i < e; ++i) slot[i] = mp[loc[i] - lo];
        }))
      return stop();
  } else {
    // Sparse: a merge sort whose leaves are sorted by std::sort, so that it can be polled
    // between leaves and between merges (a single std::sort of 100M ids takes seconds).
    auto& sorted = scratch.sorted;
    auto& merged = scratch.merged;
    sorted.assign(local.begin(), local.begin() + n);
    for (int64_t s = 0; s < n; s += kSortLeaf) {
      if (s > 0 && intr.poll()) return stop();
      std::sort(sorted.begin() + s, sorted.begin() + std::min(n, s + kSortLeaf));
    }
    if (n > kSortLeaf) merged.resize(static_cast<size_t>(n));
    for (int64_t width = kSortLeaf; width < n; width *= 2) {
      for (int64_t s = 0; s < n; s += 2 * width) {
        if (intr.poll()) return stop();
        const int64_t m = std::min(n, s + width), e = std::min(n, s + 2 * width);
        std::merge(sorted.begin() + s, sorted.begin() + m, sorted.begin() + m,
                   sorted.begin() + e, merged.begin() + s);
      }
      sorted.swap(merged);
    }
    const int64_t nu = std::unique(sorted.begin(), sorted.begin() + n) - sorted.begin();
    plan.unique.assign(sorted.begin(), sorted.begin() + nu);
    const int64_t* u = plan.unique.data();
    const int64_t* loc = local.data();
    // A binary search per position, each step a likely cache miss (~1 us per position
    // for millions of unique ids): smaller pieces.
    if (!for_pieces(n, kCoalescePiece / 4, plan_parts(n, 1 << 14), intr,
                    [&](int64_t b, int64_t e, int) {
                      for (int64_t i = b; i < e; ++i)
                        slot[i] = std::lower_bound(u, u + nu, loc[i]) - u;
                    }))
      return stop();
  }
  return -1;
}

size_t coalesce_scratch_held() noexcept { return thread_scratch().held(); }

template <class T>
bool coalesce_sum(const CoalescePlan& plan, const T* values, int64_t dim, T* out,
                  const Interrupt& intr) {
  const int64_t n = static_cast<int64_t>(plan.slot.size());
  if (n == 0 || dim == 0) return true;
  const int64_t* slot = plan.slot.data();
  const int64_t nu = static_cast<int64_t>(plan.unique.size());
  const int64_t row_bytes = mul_sat(dim, static_cast<int64_t>(sizeof(T)));
  const int64_t out_bytes = mul_sat(nu, row_bytes);
  const bool pf = out_bytes > kPrefetchTableBytes;
  const int parts = plan_parts(n, grain_rows(row_bytes));
  // A fresh output's page faults, taken here in order on one thread: taken by several
  // workers at once they cost about twice as much (measured).
  if (out_bytes >= kPrefaultBytes) {
    volatile char* c = reinterpret_cast<volatile char*>(out);
    for (int64_t o = 0; o < out_bytes; o += 4096) {
      if (o % kPollBytes == 0 && o > 0 && intr.poll()) return false;
      c[o] = 0;  // out is zero-filled
    }
  }
  // Positions per piece between polls (a piece reads its values rows and adds them to out
  // rows).  Pieces run one after the other, each row's additions stay in index order.
  // Bounded by count too: each position is a random read-modify-write of an out row.
  const int64_t piece = std::max<int64_t>(
      2 * grain_rows(row_bytes),
      std::min<int64_t>(int64_t(1) << 18,
                        kPollBytes / std::max<int64_t>(1, mul_sat(row_bytes, 2) + 8)));
  for (int64_t s0 = 0; s0 < n; s0 += piece) {
    if (s0 > 0 && intr.poll()) return false;
    const int64_t m = std::min(piece, n - s0);
    const int64_t* sl = slot + s0;
    const T* vals = values + s0 * dim;
    auto slot_of = [&](int64_t i) { return sl[i]; };
    if (add_by_columns(out, dim, vals, m, parts, pf, slot_of)) continue;
    dispatch_dim(RowWidths{}, dim, [&](auto fd) {
      constexpr int64_t FD = decltype(fd)::value;
      parallel_parts(parts, [&](int p) {
        auto prefetch = [&](int64_t s) { prefetch_write(out + s * dim); };
        auto add = [&](int64_t i, int64_t s) { add_row1<T, FD>(out + s * dim, vals + i * dim, dim); };
        if (parts > 1 && row_bytes <= kCompactRowBytes) {
          if (pf)
            for_owned<true>(sl, m, nu, p, parts, prefetch, add);
          else
            for_owned<false>(sl, m, nu, p, parts, prefetch, add);
          return;
        }
        for (int64_t i = 0; i < m; ++i) {
          if (pf && i + kAhead < m) {
            const int64_t f = sl[i + kAhead];
            if (parts == 1 || owner_of(f, parts) == p) prefetch(f);
          }
          const int64_t s = sl[i];
          if (parts > 1 && owner_of(s, parts) != p) continue;
          add(i, s);
        }
      });
      return 0;
    });
  }
  return true;
}

#define FE_INST_I(I) \
  template int64_t coalesce_plan<I>(const I*, int64_t, CoalescePlan&, const Interrupt&);
#define FE_INST_TI(T, I) \
  template int64_t scatter_add<T, I>(T*, int64_t, int64_t, const I*, int64_t, const T*, T);

FE_FOR_IDS(FE_INST_I)
FE_FOR_FLOATS_IDS(FE_INST_TI)
template bool coalesce_sum<float>(const CoalescePlan&, const float*, int64_t, float*,
                                  const Interrupt&);
template bool coalesce_sum<double>(const CoalescePlan&, const double*, int64_t, double*,
                                   const Interrupt&);

}  // namespace fe
