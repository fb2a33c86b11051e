// parallel_for over a persistent pool of worker threads (fork-join, no allocation per call).
#pragma once

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <cstddef>
#include <exception>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>

#include "lowbit/core/error.hpp"
#include "lowbit/core/matrix_view.hpp"

namespace lowbit::autograd {

/// Fork-join pool: parallel_for splits [0, n) into one contiguous range per thread,
/// runs the first on the caller and waits for the rest. Nested calls run serially.
/// Eigen is built without OpenMP here, so this is what makes GEMM and attention use
/// more than one core.
class ThreadPool {
 public:
  static ThreadPool& instance() {
    static ThreadPool pool;
    return pool;
  }

  /// Threads used by parallel_for, the caller included (≥ 1).
  void set_num_threads(int n) {
    lowbit::detail::check(n >= 1, "set_num_threads: need at least one thread, got ", n);
    std::lock_guard<std::mutex> call(call_mutex_);
    stop_workers();
    threads_ = 1;  // until every worker has started
    // Workers start from the current generation, read here and not in the new thread:
    // a job posted before a worker first runs must still be seen as new by it.
    const std::size_t start = generation_;
    workers_.reserve(static_cast<std::size_t>(n - 1));  // a bad_alloc here leaves no thread to join
    try {
      for (int i = 1; i < n; ++i) workers_.emplace_back([this, i, start] { work(i, start); });
    } catch (const std::system_error& e) {  // e.g. a process limit (ulimit -u)
      const auto started = workers_.size();
      stop_workers();
      threads_ = 1;
      lowbit::detail::fail("cannot start ", n - 1, " worker threads (", started, " started, then: ", e.what(),
                           "); use fewer threads");
    }
    threads_ = n;
  }
  [[nodiscard]] int num_threads() const { return threads_; }

  /// The most threads any of lowbit's settings accepts (--threads, LOWBIT_THREADS).
  static constexpr int max_threads = 1024;

  /// LOWBIT_THREADS when set (1 … max_threads), else the hardware's thread count.
  static int threads_from_environment() {
    const char* env = std::getenv("LOWBIT_THREADS");
    if (env == nullptr || *env == '\0') return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    char* end = nullptr;
    errno = 0;
    const long n = std::strtol(env, &end, 10);
    lowbit::detail::check(errno == 0 && *end == '\0' && n >= 1 && n <= max_threads,
                          "LOWBIT_THREADS: expected a thread count from 1 to ", max_threads, ", got '", env, "'");
    return static_cast<int>(n);
  }

  /// f(begin, end, thread) for a split of [0, n) into at most num_threads() ranges whose
  /// sizes (except the last) are multiples of `grain`.
  template <class F>
  void parallel_for(Index n, Index grain, F&& f) {
    if (n <= 0) return;
    grain = std::max<Index>(grain, 1);
    const Index blocks = (n + grain - 1) / grain;
    const int parts = static_cast<int>(std::min<Index>(threads_, blocks));
    if (parts <= 1 || inside_) {
      f(Index{0}, n, 0);
      return;
    }
    const Index per = (blocks + parts - 1) / parts * grain;
    auto run = [&](int t) {
      const Index b = std::min(n, per * t), e = std::min(n, per * (t + 1));
      if (b < e) f(b, e, t);
    };
    std::lock_guard<std::mutex> call(call_mutex_);
    Job job{&run, [](void* fn, int t) { (*static_cast<decltype(run)*>(fn))(t); }, parts};
    {
      std::lock_guard<std::mutex> lock(mutex_);
      job_ = &job;
      pending_ = parts - 1;
      ++generation_;
    }
    wake_.notify_all();
    inside_ = true;
    std::exception_ptr error;
    try {
      run(0);
    } catch (...) {
      error = std::current_exception();
    }
    inside_ = false;
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [&] { return pending_ == 0; });
    job_ = nullptr;
    if (!error) error = job.error;
    lock.unlock();
    if (error) std::rethrow_exception(error);
  }

  ~ThreadPool() { stop_workers(); }

 private:
  struct Job {
    void* fn;
    void (*invoke)(void*, int);
    int parts;
    std::exception_ptr error{};
  };

  // LOWBIT_THREADS, else all cores. Where a process limit refuses some threads, the
  // pool starts with fewer (one at worst) instead of failing, so that an explicit
  // set_num_threads(1) still works afterwards. The pool is the one thread setting:
  // lowbit::blas keeps the BLAS itself at one thread per call (backend/blas.hpp).
  ThreadPool() {
    const int wanted = threads_from_environment();
    try {
      set_num_threads(wanted);
    } catch (const Error&) {
      // set_num_threads left the pool at one thread
    }
  }


  void work(int index, std::size_t seen) {
    inside_ = true;
    for (;;) {
      Job* job = nullptr;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
        if (stop_) return;
        seen = generation_;
        job = job_;
      }
      if (job == nullptr || index >= job->parts) continue;
      std::exception_ptr error;
      try {
        job->invoke(job->fn, index);
      } catch (...) {
        error = std::current_exception();
      }
      std::lock_guard<std::mutex> lock(mutex_);
      if (error && !job->error) job->error = error;
      if (--pending_ == 0) done_.notify_one();
    }
  }

  void stop_workers() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    wake_.notify_all();
    for (auto& w : workers_) w.join();
    workers_.clear();
    stop_ = false;
  }

  std::mutex call_mutex_;  // one parallel_for at a time
  std::mutex mutex_;
  std::condition_variable wake_, done_;
  std::vector<std::thread> workers_;
  Job* job_ = nullptr;
  std::size_t generation_ = 0;
  int pending_ = 0;
  int threads_ = 1;
  bool stop_ = false;
  static inline thread_local bool inside_ = false;
};

inline void set_num_threads(int n) { ThreadPool::instance().set_num_threads(n); }
inline int num_threads() { return ThreadPool::instance().num_threads(); }

template <class F>
void parallel_for(Index n, Index grain, F&& f) {
  ThreadPool::instance().parallel_for(n, grain, std::forward<F>(f));
}

/// f(i0, i1) for each fixed chunk [i0, i1) of [0, n), `width` wide (the last one
/// shorter), the chunks spread over the pool. The cut depends on n and width alone,
/// so what each chunk computes does not depend on the thread count.
template <class F>
void parallel_chunks(Index n, Index width, F&& f) {
  if (n <= 0) return;
  const Index chunks = (n + width - 1) / width;
  parallel_for(chunks, 1, [&](Index k0, Index k1, int) {
    for (Index k = k0; k < k1; ++k) f(k * width, std::min(n, (k + 1) * width));
  });
}

}  // namespace lowbit::autograd
