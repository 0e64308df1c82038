#include "fe/parallel.hpp"

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <new>
#include <thread>
#include <vector>

namespace fe {
namespace {

// Waking a sleeping thread costs tens of microseconds (a futex round trip, more in a VM),
// as much as a small kernel call takes.  So a worker that finished a task, and a caller
// waiting for workers, first poll for this long before they sleep: back-to-back calls
// (a training loop, a benchmark) then find the workers awake.
constexpr auto kSpin = std::chrono::microseconds(200);

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// Polls `ready` until it returns true or kSpin has passed; returns its last value.
template <class F>
bool spin_until(F&& ready) {
  const auto end = std::chrono::steady_clock::now() + kSpin;
  for (;;) {
    for (int k = 0; k < 64; ++k) {
      if (ready()) return true;
      cpu_relax();
    }
    if (std::chrono::steady_clock::now() >= end) return ready();
  }
}

class Pool {
 public:
  Pool() : threads_(available_cores()) {}

  int threads() const noexcept { return threads_.load(std::memory_order_relaxed); }

  void set_threads(int n) {
    std::lock_guard<std::mutex> dispatch(*dispatch_);
    stop_workers();
    threads_.store(n, std::memory_order_relaxed);
  }

  // Runs task(part) for part in [0, parts); returns false (doing nothing) if the pool is
  // busy, so the caller runs the parts inline.
  bool run(int parts, const std::function<void(int)>& task) {
    std::unique_lock<std::mutex> dispatch(*dispatch_, std::try_to_lock);
    if (!dispatch.owns_lock()) return false;
    ensure_workers(parts - 1);
    uint32_t gen;
    {
      std::lock_guard<std::mutex> lk(*mu_);
      task_ = &task;
      parts_ = parts;
      pending_.store(parts - 1, std::memory_order_relaxed);
      error_ = nullptr;
      gen = static_cast<uint32_t>(generation_.load(std::memory_order_relaxed) + 1);
      claim_.store(static_cast<uint64_t>(gen) << 32 | 1u, std::memory_order_relaxed);  // part 0 is ours
      generation_.store(gen, std::memory_order_release);
    }
    wake_->notify_all();
    run_part(task, 0);
    // Help with the remaining parts, then wait for workers still busy.
    for (int p; (p = claim(gen, parts)) >= 0;) {
      run_part(task, p);
      finish_part();
    }
    spin_until([&] { return pending_.load(std::memory_order_acquire) == 0; });
    std::exception_ptr err;
    {
      std::unique_lock<std::mutex> lk(*mu_);
      done_->wait(lk, [&] { return pending_.load(std::memory_order_acquire) == 0; });
      task_ = nullptr;
      err = error_;
      error_ = nullptr;
    }
    if (err) std::rethrow_exception(err);
    return true;
  }

  // In a forked child: the workers are gone and the locks may be held by threads that
  // no longer exist.  Forget both without touching them.
  void reset_after_fork() noexcept {
    workers_ = new std::vector<std::thread>();  // the old vector is leaked on purpose
    dispatch_ = new std::mutex();
    mu_ = new std::mutex();
    wake_ = new std::condition_variable();
    done_ = new std::condition_variable();
    stopping_ = false;
    task_ = nullptr;
    generation_.store(0, std::memory_order_relaxed);
  }

 private:
  void run_part(const std::function<void(int)>& task, int p) {
    try {
      task(p);
    } catch (...) {
      std::lock_guard<std::mutex> lk(*mu_);
      if (!error_) error_ = std::current_exception();
    }
  }

  // Claims the next unrun part of generation `gen`, or returns -1 when none is left.  The
  // generation tag keeps a worker that is late from the previous run from taking a part
  // of the next one.
  int claim(uint32_t gen, int parts) {
    uint64_t v = claim_.load(std::memory_order_acquire);
    for (;;) {
      if (static_cast<uint32_t>(v >> 32) != gen) return -1;
      const int p = static_cast<int>(v & 0xffffffffu);
      if (p >= parts) return -1;
      if (claim_.compare_exchange_weak(v, v + 1, std::memory_order_acq_rel)) return p;
    }
  }

  // Taking mu_ before notifying means a caller between its check of pending_ and its
  // wait cannot miss the wake-up.
  void finish_part() {
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      { std::lock_guard<std::mutex> lk(*mu_); }
      done_->notify_all();
    }
  }

  void ensure_workers(int want) {
    int have = static_cast<int>(workers_->size());
    int cap = threads() - 1;
    want = std::min(want, cap);
    for (int i = have; i < want; ++i) workers_->emplace_back([this] { worker_loop(); });
  }

  void stop_workers() {
    {
      std::lock_guard<std::mutex> lk(*mu_);
      stopping_ = true;
    }
    wake_->notify_all();
    for (auto& t : *workers_) t.join();
    workers_->clear();
    std::lock_guard<std::mutex> lk(*mu_);
    stopping_ = false;
  }

  void worker_loop() {
    uint32_t seen;
    {
      std::lock_guard<std::mutex> lk(*mu_);
      seen = generation_.load(std::memory_order_relaxed);
    }
    for (;;) {
      spin_until([&] { return generation_.load(std::memory_order_acquire) != seen; });
      const std::function<void(int)>* task;
      int parts;
      {
        std::unique_lock<std::mutex> lk(*mu_);
        wake_->wait(lk, [&] {
          return stopping_ || generation_.load(std::memory_order_relaxed) != seen;
        });
        if (stopping_) return;
        seen = generation_.load(std::memory_order_relaxed);
        task = task_;
        parts = parts_;
      }
      if (task == nullptr) continue;  // that run has ended already
      for (int p; (p = claim(seen, parts)) >= 0;) {
        run_part(*task, p);
        finish_part();
      }
    }
  }

  std::atomic<int> threads_;
  std::vector<std::thread>* workers_ = new std::vector<std::thread>();
  std::mutex* dispatch_ = new std::mutex();
  std::mutex* mu_ = new std::mutex();
  std::condition_variable* wake_ = new std::condition_variable();
  std::condition_variable* done_ = new std::condition_variable();
  bool stopping_ = false;
  // The current run, set under mu_.
  const std::function<void(int)>* task_ = nullptr;
  int parts_ = 0;
  std::atomic<uint32_t> generation_{0};
  // (generation << 32) | next part to claim.
  std::atomic<uint64_t> claim_{0};
  // Parts handed to workers and not finished yet.
  std::atomic<int> pending_{0};
  std::exception_ptr error_;
};

// Leaked on purpose: worker threads must never be joined from a static destructor at
// interpreter exit.
Pool& pool() {
  static Pool* p = [] {
    Pool* q = new Pool();
    pthread_atfork(nullptr, nullptr, [] { pool().reset_after_fork(); });
    return q;
  }();
  return *p;
}

}  // namespace

int available_cores() noexcept {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
  unsigned hc = std::thread::hardware_concurrency();
  return hc > 0 ? static_cast<int>(hc) : 1;
}

int get_num_threads() noexcept { return pool().threads(); }

void set_num_threads(int n) {
  if (n < 1) n = 1;
  if (n > 256) n = 256;
  pool().set_threads(n);
}

// floor(n * p / parts) without forming n * p, which overflows int64 for n above 2^55.
static int64_t cut(int64_t n, int p, int parts) noexcept {
  return (n / parts) * p + (n % parts) * p / parts;
}

int plan_parts(int64_t n, int64_t grain) noexcept {
  if (grain < 1) grain = 1;
  int t = get_num_threads();
  if (t <= 1 || n < 2 * grain) return 1;
  int64_t by_grain = n / grain;
  return static_cast<int>(std::min<int64_t>(t, by_grain));
}

int parallel_for(int64_t n, int64_t grain, const RangeFn& fn) {
  if (n <= 0) return 0;
  int parts = plan_parts(n, grain);
  auto chunk = [&](int p) {
    int64_t b = cut(n, p, parts);
    int64_t e = cut(n, p + 1, parts);
    if (b < e) fn(b, e, p);
  };
  if (parts == 1) {
    fn(0, n, 0);
    return 1;
  }
  std::function<void(int)> task = chunk;
  if (!pool().run(parts, task)) {
    fn(0, n, 0);
    return 1;
  }
  return parts;
}

void parallel_chunks(int64_t n, int parts, const RangeFn& fn) {
  if (n <= 0 || parts <= 0) return;
  parallel_parts(parts, [&](int p) {
    const int64_t b = cut(n, p, parts);
    const int64_t e = cut(n, p + 1, parts);
    if (b < e) fn(b, e, p);
  });
}

void parallel_parts(int parts, const std::function<void(int)>& fn) {
  if (parts <= 1) {
    if (parts == 1) fn(0);
    return;
  }
  if (!pool().run(parts, fn)) {
    for (int p = 0; p < parts; ++p) fn(p);
  }
}

}  // namespace fe
