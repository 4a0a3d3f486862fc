#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <random>

namespace phoenix::pvesim {

struct FaultOptions {
  std::chrono::milliseconds latency{0};  // added to every request
  double fail_rate = 0;                  // fraction of requests answered 500/503
  double drop_rate = 0;                  // fraction of connections closed without an answer
  double task_fail_rate = 0;             // fraction of tasks ending with an error exitstatus
  double lock_rate = 0;  // fraction of guest-locking calls that find the lock held by a phantom
  std::uint64_t seed = 1;
};

// Decides which requests and tasks fail. One seeded generator, so a serial client sees the same
// faults on every run with the same --seed.
class Faults {
 public:
  explicit Faults(FaultOptions opts) : opts_(opts), rng_(opts.seed) {}

  const FaultOptions& options() const { return opts_; }
  bool roll(double rate) {
    if (rate <= 0) return false;
    std::lock_guard lock(mu_);
    return std::uniform_real_distribution<double>(0, 1)(rng_) < rate;
  }
  bool drop_request() { return roll(opts_.drop_rate); }
  bool fail_request() { return roll(opts_.fail_rate); }
  bool fail_task() { return roll(opts_.task_fail_rate); }
  bool lock_guest() { return roll(opts_.lock_rate); }
  int transient_status() { return roll(0.5) ? 503 : 500; }

 private:
  FaultOptions opts_;
  std::mutex mu_;
  std::mt19937_64 rng_;
};

}  // namespace phoenix::pvesim
