#include "base/tally.h"

#include <mutex>

namespace phoenix::base {
namespace {

std::mutex& tally_mutex() {
  static std::mutex mu;
  return mu;
}

std::map<std::string, RequestTally, std::less<>>& tallies() {
  static std::map<std::string, RequestTally, std::less<>> all;
  return all;
}

}  // namespace

void tally_request(std::string_view provider, bool mutating) {
  std::lock_guard lock(tally_mutex());
  auto& all = tallies();
  auto it = all.find(provider);
  if (it == all.end()) it = all.emplace(std::string(provider), RequestTally{}).first;
  ++it->second.total;
  it->second.mutating += mutating;
}

std::map<std::string, RequestTally> request_tallies() {
  std::lock_guard lock(tally_mutex());
  return {tallies().begin(), tallies().end()};
}

}  // namespace phoenix::base
