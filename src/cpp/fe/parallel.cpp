#include "fe/parallel.hpp"

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <new>
#include <thread>
#include <vector>

namespace fe {
namespace {

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
    {
      std::lock_guard<std::mutex> lk(*mu_);
      task_ = &task;
      parts_.store(parts, std::memory_order_relaxed);
      next_.store(1, std::memory_order_release);  // part 0 is the caller's
      pending_ = parts - 1;
      error_ = nullptr;
      ++generation_;
    }
    wake_->notify_all();
    run_part(0);
    // Help with the remaining parts, then wait for workers still busy.
    for (;;) {
      int p = next_.fetch_add(1, std::memory_order_acq_rel);
      if (p >= parts) break;
      run_part(p);
      std::lock_guard<std::mutex> lk(*mu_);
      --pending_;
    }
    std::exception_ptr err;
    {
      std::unique_lock<std::mutex> lk(*mu_);
      done_->wait(lk, [&] { return pending_ == 0; });
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
    generation_ = 0;
  }

 private:
  void run_part(int p) {
    try {
      (*task_)(p);
    } catch (...) {
      std::lock_guard<std::mutex> lk(*mu_);
      if (!error_) error_ = std::current_exception();
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
    uint64_t seen;
    {
      std::lock_guard<std::mutex> lk(*mu_);
      seen = generation_;
    }
    for (;;) {
      {
        std::unique_lock<std::mutex> lk(*mu_);
        wake_->wait(lk, [&] { return stopping_ || generation_ != seen; });
        if (stopping_) return;
        seen = generation_;
        if (task_ == nullptr) continue;
      }
      for (;;) {
        int p = next_.fetch_add(1, std::memory_order_acq_rel);
        if (p >= parts_.load(std::memory_order_relaxed)) break;
        run_part(p);
        std::lock_guard<std::mutex> lk(*mu_);
        if (--pending_ == 0) done_->notify_all();
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
  const std::function<void(int)>* task_ = nullptr;
  std::atomic<int> parts_{0};
  std::atomic<int> next_{0};
  int pending_ = 0;
  uint64_t generation_ = 0;
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
    int64_t b = n * p / parts;
    int64_t e = n * (p + 1) / parts;
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
    const int64_t b = n * p / parts;
    const int64_t e = n * (p + 1) / parts;
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
