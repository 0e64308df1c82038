// Fused optimizer updates: SGD (momentum, nesterov), Adagrad, Adam.
//
// Every update is one pass over the rows (or elements) it touches; each row's slots and
// weights are read once and written once.  Formulas (Keras names; T is float or double,
// every operation is done in T, in this order, so results are reproducible):
//
//   SGD, momentum == 0          w += (-lr) * g                          (no slot)
//   SGD, momentum > 0           s0 = momentum * s0 - lr * g;  w += s0
//   SGD, nesterov               s0 = momentum * s0 - lr * g;  w += momentum * s0 - lr * g
//   Adagrad                     s0 += g * g;  w -= lr * g / sqrt(s0 + eps)
//   Adam                        s0 += (g - s0) * (1 - beta1)          (first moment m)
//                               s1 += (g * g - s1) * (1 - beta2)      (second moment v)
//                               w  -= step_size * (s0 / (sqrt(s1) + eps))
//     step_size = lr * sqrt(1 - beta2^t) / (1 - beta1^t) is computed by the caller (double)
//     with t the variable's step count; the Adam form is torch SparseAdam's, term for term.
//
// The torch.optim forms (fastembed.torch.optim; torch's names: buf, sum, exp_avg, exp_avg_sq).
// Weight decay first, per element of the row: L2 (wd_mode 1) g = g + weight_decay * w, or
// decoupled (wd_mode 2, Adam only) w = w * decay with decay = 1 - lr * weight_decay.
//   kTorchSGD                   w = w + (-lr) * g                       (no slot)
//   kTorchMomentum              buf = momentum * buf + (1 - dampening) * g   (buf = g when
//                               init_buf: torch's first step);  w = w + (-lr) * buf
//   kTorchNesterov              buf as above;  w = w + (-lr) * (g + momentum * buf)
//   kTorchAdagrad               sum = sum + g * g;  w = w + (-lr) * (g / (sqrt(sum) + eps))
//                               (lr is torch's clr = lr / (1 + (t - 1) * lr_decay))
//   kTorchAdam                  m = m + (1 - beta1) * (g - m)
//                               v = v * beta2 + ((1 - beta2) * g) * g
//                               w = w + (-step_size) * (m / (sqrt(v) / bias2_sqrt + eps))
//     step_size = lr / (1 - beta1^t), bias2_sqrt = sqrt(1 - beta2^t), computed by the caller
//     in double, as torch's _single_tensor_adam does.  torch's CPU kernels may fuse a
//     multiply-add (FMA) where these round twice, so results agree with torch.optim to an
//     ulp or so per step, not bit for bit (-ffp-contract=off keeps ours reproducible).
//
//   optim_copy_ids(ids, k, rows, out, sorted_unique) -> int64
//     Reads ids[0..k) once each into out[0..k) (int64) and checks each against [0, rows).
//     Returns the first bad position (out is then partly written, nothing else is) or -1.
//     *sorted_unique tells whether the ids are strictly increasing (already coalesced).
//     Later passes read only `out`, so a caller thread that changes `ids` meanwhile
//     cannot make a kernel write out of bounds.
//
//   optim_rows(h, w, s0, s1, dim, idx, k, g)
//     for i in [0, k): update row idx[i] of w (and of s0, s1) with gradient row g[i].
//     w, s0, s1: rows x dim C-contiguous tables (s0 / s1 null when the method has no such
//     slot); idx: k sorted-or-not but UNIQUE, in-range int64 ids; g: k x dim.
//     Rows are unique, so the parallel pass over i is deterministic for any thread count.
//     Rows not in idx are not read or written (lazy / torch SparseAdam semantics).
//
//   optim_all_rows(h, w, s0, s1, rows, dim, idx, k, g)
//     The dense (Keras) semantics of a sparse gradient: every row r in [0, rows) is
//     updated, with gradient g[i] if idx[i] == r and with a zero gradient otherwise (so
//     momentum and Adam moments decay everywhere).  idx: STRICTLY INCREASING, in range.
//     Parallel over row ranges; deterministic.
//
//   optim_dense(h, w, s0, s1, n, g)
//     The elementwise update of n contiguous elements (a dense gradient of any shape).
//     Parallel over element ranges; deterministic.
//
// Allocations: optim_all_rows takes one zero row of dim elements per chunk (at most one
// chunk per thread), and a parallel call its task state; nothing else is allocated, and
// nothing throws but std::bad_alloc from those.  w, s0, s1 and g must not overlap.
// Thread safety: callers serialize updates of one variable.
#pragma once

#include <cstdint>

namespace fe {

enum class OptKind : int {
  kSGD = 0, kMomentum = 1, kNesterov = 2, kAdagrad = 3, kAdam = 4,
  kTorchSGD = 5, kTorchMomentum = 6, kTorchNesterov = 7, kTorchAdagrad = 8, kTorchAdam = 9
};
constexpr int kOptKindLast = 9;

struct OptHyper {
  OptKind kind = OptKind::kSGD;
  double lr = 0.01;
  double momentum = 0.0;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-7;
  double step_size = 0.0;  // Adam only
  // torch kinds only (see above)
  int wd_mode = 0;           // 0 none, 1 L2, 2 decoupled (kTorchAdam)
  double weight_decay = 0.0;
  double decay = 1.0;        // decoupled: 1 - lr * weight_decay
  double dampening = 0.0;
  bool init_buf = false;
  double bias2_sqrt = 1.0;
};

// Slots a method needs: 0 (plain SGD), 1 (momentum, nesterov, Adagrad) or 2 (Adam).
constexpr int opt_num_slots(OptKind k) noexcept {
  return (k == OptKind::kSGD || k == OptKind::kTorchSGD)
             ? 0
             : ((k == OptKind::kAdam || k == OptKind::kTorchAdam) ? 2 : 1);
}

// The name of slot i (s0, s1) of a method, as the Python layer keys its state arrays
// (fastembed.optimizers' _slot_names, torch.optim's state keys); null past opt_num_slots.
inline const char* opt_slot_name(OptKind k, int i) noexcept {
  if (i >= opt_num_slots(k)) return nullptr;
  switch (k) {
    case OptKind::kAdagrad: return "accumulator";
    case OptKind::kAdam: return i == 0 ? "m" : "v";
    // torch.optim's state keys (fastembed.torch.optim).
    case OptKind::kTorchMomentum:
    case OptKind::kTorchNesterov: return "momentum_buffer";
    case OptKind::kTorchAdagrad: return "sum";
    case OptKind::kTorchAdam: return i == 0 ? "exp_avg" : "exp_avg_sq";
    default: return "momentum";
  }
}

template <class I>
int64_t optim_copy_ids(const I* ids, int64_t k, int64_t rows, int64_t* out, bool* sorted_unique);

template <class T>
void optim_rows(const OptHyper& h, T* w, T* s0, T* s1, int64_t dim, const int64_t* idx,
                int64_t k, const T* g);

template <class T>
void optim_all_rows(const OptHyper& h, T* w, T* s0, T* s1, int64_t rows, int64_t dim,
                    const int64_t* idx, int64_t k, const T* g);

template <class T>
void optim_dense(const OptHyper& h, T* w, T* s0, T* s1, int64_t n, const T* g);

}  // namespace fe
