// Definitions and explicit instantiations of the fused optimizer kernels (float, double).
// Contracts are in optim.hpp.
#include "fe/optim.hpp"

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "fe/common.hpp"
#include "fe/parallel.hpp"
#include "fe/tuning.hpp"

namespace fe {
namespace {

template <class T>
struct Consts {
  T lr, neg_lr, mom, b1c, b2c, eps, step;
  explicit Consts(const OptHyper& h)
      : lr(static_cast<T>(h.lr)),
        neg_lr(static_cast<T>(-h.lr)),
        mom(static_cast<T>(h.momentum)),
        b1c(static_cast<T>(1.0 - h.beta1)),
        b2c(static_cast<T>(1.0 - h.beta2)),
        eps(static_cast<T>(h.eps)),
        step(static_cast<T>(h.step_size)) {}
};

// One row (or run of elements) of the update; FD > 0 is the compile-time width.
template <OptKind K, class T, int64_t FD>
FE_INLINE void update(const Consts<T>& c, T* FE_RESTRICT w, T* FE_RESTRICT s0,
                      T* FE_RESTRICT s1, const T* FE_RESTRICT g, int64_t n_rt) {
  const int64_t n = FD > 0 ? FD : n_rt;
  if constexpr (K == OptKind::kSGD) {
    (void)s0;
    (void)s1;
    for (int64_t j = 0; j < n; ++j) w[j] += c.neg_lr * g[j];
  } else if constexpr (K == OptKind::kMomentum) {
    (void)s1;
    for (int64_t j = 0; j < n; ++j) {
      const T v = c.mom * s0[j] - c.lr * g[j];
      s0[j] = v;
      w[j] += v;
    }
  } else if constexpr (K == OptKind::kNesterov) {
    (void)s1;
    for (int64_t j = 0; j < n; ++j) {
      const T lg = c.lr * g[j];
      const T v = c.mom * s0[j] - lg;
      s0[j] = v;
      w[j] += c.mom * v - lg;
    }
  } else if constexpr (K == OptKind::kAdagrad) {
    (void)s1;
    for (int64_t j = 0; j < n; ++j) {
      const T a = s0[j] + g[j] * g[j];
      s0[j] = a;
      w[j] -= c.lr * g[j] / std::sqrt(a + c.eps);
    }
  } else {
    for (int64_t j = 0; j < n; ++j) {
      const T gj = g[j];
      const T m = s0[j] + (gj - s0[j]) * c.b1c;
      const T v = s1[j] + (gj * gj - s1[j]) * c.b2c;
      s0[j] = m;
      s1[j] = v;
      w[j] -= c.step * (m / (std::sqrt(v) + c.eps));
    }
  }
}

FE_INLINE void prefetch_row(const void* p, int64_t bytes) {
  const char* c = static_cast<const char*>(p);
  for (int64_t o = 0; o < bytes; o += 64) prefetch_write(c + o);
}

template <OptKind K, class T, int64_t FD>
void rows_range(const Consts<T>& c, T* w, T* s0, T* s1, int64_t dim_rt, const int64_t* idx,
                int64_t b, int64_t e, const T* g) {
  const int64_t dim = FD > 0 ? FD : dim_rt;
  const int64_t bytes = dim * static_cast<int64_t>(sizeof(T));
  constexpr int slots = K == OptKind::kSGD ? 0 : (K == OptKind::kAdam ? 2 : 1);
  for (int64_t i = b; i < e; ++i) {
    if (i + kOptimAhead < e) {
      const int64_t f = idx[i + kOptimAhead] * dim;
      prefetch_row(w + f, bytes);
      if (slots >= 1) prefetch_row(s0 + f, bytes);
      if (slots >= 2) prefetch_row(s1 + f, bytes);
    }
    const int64_t o = idx[i] * dim;
    update<K, T, FD>(c, w + o, slots >= 1 ? s0 + o : nullptr, slots >= 2 ? s1 + o : nullptr,
                     g + i * dim, dim);
  }
}

template <class F>
void dispatch_kind(OptKind k, F&& f) {
  switch (k) {
    case OptKind::kSGD: f(std::integral_constant<OptKind, OptKind::kSGD>{}); break;
    case OptKind::kMomentum: f(std::integral_constant<OptKind, OptKind::kMomentum>{}); break;
    case OptKind::kNesterov: f(std::integral_constant<OptKind, OptKind::kNesterov>{}); break;
    case OptKind::kAdagrad: f(std::integral_constant<OptKind, OptKind::kAdagrad>{}); break;
    case OptKind::kAdam: f(std::integral_constant<OptKind, OptKind::kAdam>{}); break;
  }
}

int64_t grain_for(int64_t row_bytes, OptKind k) {
  const int64_t touched = row_bytes * (2 + opt_num_slots(k));
  return std::max<int64_t>(16, kOptimGrainBytes / std::max<int64_t>(1, touched));
}

}  // namespace

template <class I>
int64_t optim_copy_ids(const I* ids, int64_t k, int64_t rows, int64_t* out,
                       bool* sorted_unique) {
  bool inc = true;
  int64_t prev = -1;
  for (int64_t i = 0; i < k; ++i) {
    const int64_t v = load_once(ids, i);
    if (!id_ok(v, rows)) return i;
    out[i] = v;
    inc &= v > prev;
    prev = v;
  }
  *sorted_unique = inc;
  return -1;
}

template <class T>
void optim_rows(const OptHyper& h, T* w, T* s0, T* s1, int64_t dim, const int64_t* idx,
                int64_t k, const T* g) {
  if (k <= 0 || dim <= 0) return;
  const Consts<T> c(h);
  const int64_t grain = grain_for(dim * static_cast<int64_t>(sizeof(T)), h.kind);
  dispatch_kind(h.kind, [&](auto kc) {
    constexpr OptKind K = decltype(kc)::value;
    dispatch_dim(dim, [&](auto fd) {
      constexpr int64_t FD = decltype(fd)::value;
      parallel_for(k, grain, [&](int64_t b, int64_t e, int) {
        rows_range<K, T, FD>(c, w, s0, s1, dim, idx, b, e, g);
      });
      return 0;
    });
  });
}

template <class T>
void optim_all_rows(const OptHyper& h, T* w, T* s0, T* s1, int64_t rows, int64_t dim,
                    const int64_t* idx, int64_t k, const T* g) {
  if (rows <= 0 || dim <= 0) return;
  const Consts<T> c(h);
  const int64_t grain = grain_for(dim * static_cast<int64_t>(sizeof(T)), h.kind);
  dispatch_kind(h.kind, [&](auto kc) {
    constexpr OptKind K = decltype(kc)::value;
    constexpr int slots = K == OptKind::kSGD ? 0 : (K == OptKind::kAdam ? 2 : 1);
    dispatch_dim(dim, [&](auto fd) {
      constexpr int64_t FD = decltype(fd)::value;
      parallel_for(rows, grain, [&](int64_t b, int64_t e, int) {
        std::vector<T> zero(static_cast<size_t>(dim), T(0));
        int64_t pos = std::lower_bound(idx, idx + k, b) - idx;
        for (int64_t r = b; r < e; ++r) {
          const T* gr = zero.data();
          if (pos < k && idx[pos] == r) gr = g + (pos++) * dim;
          const int64_t o = r * dim;
          update<K, T, FD>(c, w + o, slots >= 1 ? s0 + o : nullptr,
                           slots >= 2 ? s1 + o : nullptr, gr, dim);
        }
      });
      return 0;
    });
  });
}

template <class T>
void optim_dense(const OptHyper& h, T* w, T* s0, T* s1, int64_t n, const T* g) {
  if (n <= 0) return;
  const Consts<T> c(h);
  const int64_t grain = grain_for(static_cast<int64_t>(sizeof(T)), h.kind);
  dispatch_kind(h.kind, [&](auto kc) {
    constexpr OptKind K = decltype(kc)::value;
    constexpr int slots = K == OptKind::kSGD ? 0 : (K == OptKind::kAdam ? 2 : 1);
    parallel_for(n, grain, [&](int64_t b, int64_t e, int) {
      update<K, T, 0>(c, w + b, slots >= 1 ? s0 + b : nullptr, slots >= 2 ? s1 + b : nullptr,
                      g + b, e - b);
    });
  });
}

template int64_t optim_copy_ids<int32_t>(const int32_t*, int64_t, int64_t, int64_t*, bool*);
template int64_t optim_copy_ids<int64_t>(const int64_t*, int64_t, int64_t, int64_t*, bool*);
template void optim_rows<float>(const OptHyper&, float*, float*, float*, int64_t,
                                const int64_t*, int64_t, const float*);
template void optim_rows<double>(const OptHyper&, double*, double*, double*, int64_t,
                                 const int64_t*, int64_t, const double*);
template void optim_all_rows<float>(const OptHyper&, float*, float*, float*, int64_t, int64_t,
                                    const int64_t*, int64_t, const float*);
template void optim_all_rows<double>(const OptHyper&, double*, double*, double*, int64_t,
                                     int64_t, const int64_t*, int64_t, const double*);
template void optim_dense<float>(const OptHyper&, float*, float*, float*, int64_t,
                                 const float*);
template void optim_dense<double>(const OptHyper&, double*, double*, double*, int64_t,
                                  const double*);

}  // namespace fe
