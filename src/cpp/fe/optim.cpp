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
  // torch kinds
  T wd, decay, buf_mom, buf_damp, b2, neg_step, bias2_sqrt;
  explicit Consts(const OptHyper& h)
      : lr(static_cast<T>(h.lr)),
        neg_lr(static_cast<T>(-h.lr)),
        mom(static_cast<T>(h.momentum)),
        b1c(static_cast<T>(1.0 - h.beta1)),
        b2c(static_cast<T>(1.0 - h.beta2)),
        eps(static_cast<T>(h.eps)),
        step(static_cast<T>(h.step_size)),
        wd(static_cast<T>(h.weight_decay)),
        decay(static_cast<T>(h.decay)),
        // torch's first momentum step clones the gradient: 0 * 0 + 1 * g is g exactly
        // (the buffer is still all zeros then), so one formula serves both steps.
        buf_mom(h.init_buf ? T(0) : static_cast<T>(h.momentum)),
        buf_damp(h.init_buf ? T(1) : static_cast<T>(1.0 - h.dampening)),
        b2(static_cast<T>(h.beta2)),
        neg_step(static_cast<T>(-h.step_size)),
        bias2_sqrt(static_cast<T>(h.bias2_sqrt)) {}
};

constexpr bool is_torch_kind(OptKind k) noexcept {
  return static_cast<int>(k) >= static_cast<int>(OptKind::kTorchSGD);
}

// One row (or run of elements) of the update; FD > 0 is the compile-time width.
// The torch.optim forms (optim.hpp); WD is the weight decay mode (0 none, 1 L2, 2 decoupled).
template <OptKind K, int WD, class T, int64_t FD>
FE_INLINE void update_torch(const Consts<T>& c, T* FE_RESTRICT w, T* FE_RESTRICT s0,
                            T* FE_RESTRICT s1, const T* FE_RESTRICT g, int64_t n_rt) {
  const int64_t n = FD > 0 ? FD : n_rt;
  (void)s0;
  (void)s1;
  for (int64_t j = 0; j < n; ++j) {
    T wj = w[j];
    T gj = g[j];
    if constexpr (WD == 1) gj = gj + c.wd * wj;
    if constexpr (WD == 2) wj = wj * c.decay;
    if constexpr (K == OptKind::kTorchSGD) {
      w[j] = wj + c.neg_lr * gj;
    } else if constexpr (K == OptKind::kTorchMomentum) {
      const T b = c.buf_mom * s0[j] + c.buf_damp * gj;
      s0[j] = b;
      w[j] = wj + c.neg_lr * b;
    } else if constexpr (K == OptKind::kTorchNesterov) {
      const T b = c.buf_mom * s0[j] + c.buf_damp * gj;
      s0[j] = b;
      w[j] = wj + c.neg_lr * (gj + c.mom * b);
    } else if constexpr (K == OptKind::kTorchAdagrad) {
      const T a = s0[j] + gj * gj;
      s0[j] = a;
      w[j] = wj + c.neg_lr * (gj / (std::sqrt(a) + c.eps));
    } else {
      static_assert(K == OptKind::kTorchAdam, "a torch kind");
      const T m = s0[j] + c.b1c * (gj - s0[j]);
      const T v = s1[j] * c.b2 + (c.b2c * gj) * gj;
      s0[j] = m;
      s1[j] = v;
      w[j] = wj + c.neg_step * (m / (std::sqrt(v) / c.bias2_sqrt + c.eps));
    }
  }
}

template <OptKind K, int WD, class T, int64_t FD>
FE_INLINE void update(const Consts<T>& c, T* FE_RESTRICT w, T* FE_RESTRICT s0,
                      T* FE_RESTRICT s1, const T* FE_RESTRICT g, int64_t n_rt) {
  const int64_t n = FD > 0 ? FD : n_rt;
  if constexpr (is_torch_kind(K)) {
    (void)n;
    update_torch<K, WD, T, FD>(c, w, s0, s1, g, n_rt);
  } else if constexpr (K == OptKind::kSGD) {
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

template <OptKind K, int WD, class T, int64_t FD>
void rows_range(const Consts<T>& c, T* w, T* s0, T* s1, int64_t dim_rt, const int64_t* idx,
                int64_t b, int64_t e, const T* g) {
  const int64_t dim = FD > 0 ? FD : dim_rt;
  const int64_t bytes = dim * static_cast<int64_t>(sizeof(T));
  constexpr int slots = opt_num_slots(K);
  for (int64_t i = b; i < e; ++i) {
    if (i + kOptimAhead < e) {
      const int64_t f = idx[i + kOptimAhead] * dim;
      prefetch_row(w + f, bytes);
      if (slots >= 1) prefetch_row(s0 + f, bytes);
      if (slots >= 2) prefetch_row(s1 + f, bytes);
    }
    const int64_t o = idx[i] * dim;
    update<K, WD, T, FD>(c, w + o, slots >= 1 ? s0 + o : nullptr,
                         slots >= 2 ? s1 + o : nullptr, g + i * dim, dim);
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
    case OptKind::kTorchSGD: f(std::integral_constant<OptKind, OptKind::kTorchSGD>{}); break;
    case OptKind::kTorchMomentum:
      f(std::integral_constant<OptKind, OptKind::kTorchMomentum>{});
      break;
    case OptKind::kTorchNesterov:
      f(std::integral_constant<OptKind, OptKind::kTorchNesterov>{});
      break;
    case OptKind::kTorchAdagrad:
      f(std::integral_constant<OptKind, OptKind::kTorchAdagrad>{});
      break;
    case OptKind::kTorchAdam: f(std::integral_constant<OptKind, OptKind::kTorchAdam>{}); break;
  }
}

// Calls f(kind, wd) with both as compile-time constants.  Weight decay exists for the
// torch kinds only, and decoupled decay for kTorchAdam only (the caller checks; other
// combinations run without decay), which keeps the number of instantiations down.
template <class F>
void dispatch_kind_wd(const OptHyper& h, F&& f) {
  dispatch_kind(h.kind, [&](auto kc) {
    constexpr OptKind K = decltype(kc)::value;
    if constexpr (!is_torch_kind(K)) {
      f(kc, std::integral_constant<int, 0>{});
    } else if constexpr (K == OptKind::kTorchAdam) {
      if (h.wd_mode == 1) f(kc, std::integral_constant<int, 1>{});
      else if (h.wd_mode == 2) f(kc, std::integral_constant<int, 2>{});
      else f(kc, std::integral_constant<int, 0>{});
    } else {
      if (h.wd_mode == 1) f(kc, std::integral_constant<int, 1>{});
      else f(kc, std::integral_constant<int, 0>{});
    }
  });
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
  dispatch_kind_wd(h, [&](auto kc, auto wdc) {
    constexpr OptKind K = decltype(kc)::value;
    constexpr int WD = decltype(wdc)::value;
    dispatch_dim(dim, [&](auto fd) {
      constexpr int64_t FD = decltype(fd)::value;
      parallel_for(k, grain, [&](int64_t b, int64_t e, int) {
        rows_range<K, WD, T, FD>(c, w, s0, s1, dim, idx, b, e, g);
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
  dispatch_kind_wd(h, [&](auto kc, auto wdc) {
    constexpr OptKind K = decltype(kc)::value;
    constexpr int WD = decltype(wdc)::value;
    constexpr int slots = opt_num_slots(K);
    dispatch_dim(dim, [&](auto fd) {
      constexpr int64_t FD = decltype(fd)::value;
      parallel_for(rows, grain, [&](int64_t b, int64_t e, int) {
        std::vector<T> zero(static_cast<size_t>(dim), T(0));
        int64_t pos = std::lower_bound(idx, idx + k, b) - idx;
        for (int64_t r = b; r < e; ++r) {
          const T* gr = zero.data();
          if (pos < k && idx[pos] == r) gr = g + (pos++) * dim;
          const int64_t o = r * dim;
          update<K, WD, T, FD>(c, w + o, slots >= 1 ? s0 + o : nullptr,
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
  dispatch_kind_wd(h, [&](auto kc, auto wdc) {
    constexpr OptKind K = decltype(kc)::value;
    constexpr int WD = decltype(wdc)::value;
    constexpr int slots = opt_num_slots(K);
    parallel_for(n, grain, [&](int64_t b, int64_t e, int) {
      update<K, WD, T, 0>(c, w + b, slots >= 1 ? s0 + b : nullptr, slots >= 2 ? s1 + b : nullptr,
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
