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

  FaultOptions options() const {
    std::lock_guard lock(mu_);
    return opts_;
  }
  // New rates (and latency) from now on, e.g. a lab that turns faults on for one run
  // (PUT /_sim/faults); the generator goes on from where it is.
  void set_options(const FaultOptions& opts) {
    std::lock_guard lock(mu_);
    opts_ = opts;
  }
  bool drop_request() { return roll(&FaultOptions::drop_rate); }
  bool fail_request() { return roll(&FaultOptions::fail_rate); }
  bool fail_task() { return roll(&FaultOptions::task_fail_rate); }
  bool lock_guest() { return roll(&FaultOptions::lock_rate); }
  int transient_status() {
    std::lock_guard lock(mu_);
    return draw() < 0.5 ? 503 : 500;
  }

 private:
  bool roll(double FaultOptions::*rate) {
    std::lock_guard lock(mu_);
    return opts_.*rate > 0 && draw() < opts_.*rate;
  }
  double draw() { return std::uniform_real_distribution<double>(0, 1)(rng_); }

  FaultOptions opts_;
  mutable std::mutex mu_;
  std::mt19937_64 rng_;
};

}  // namespace phoenix::pvesim
