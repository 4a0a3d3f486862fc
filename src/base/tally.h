#pragma once

// How many requests this process made to each provider (the Proxmox API, the Docker engines,
// the certificate authority, commands in guests), counted where each transport sends one, for
// what `sync all` reports and the benchmarks print. Safe from any thread.

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

namespace phoenix::base {

struct RequestTally {
  std::uint64_t total = 0;
  std::uint64_t mutating = 0;
};

// One request to `provider` ("proxmox", "docker", "ca", "guest").
void tally_request(std::string_view provider, bool mutating);
// Every provider's counts so far.
std::map<std::string, RequestTally> request_tallies();

}  // namespace phoenix::base
