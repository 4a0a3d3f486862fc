#include "certs/renewal.h"

#include <algorithm>
#include <ctime>

namespace phoenix::certs {
namespace {

std::vector<std::string> sorted_unique(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
  return v;
}

}  // namespace

std::string_view to_string(Verdict verdict) {
  switch (verdict) {
    case Verdict::kKeep:
      return "keep";
    case Verdict::kIssue:
      return "issue";
    case Verdict::kRenew:
      return "renew";
  }
  return "?";
}

std::vector<std::string> wanted_names(const compile::Certificate& want) {
  std::vector<std::string> names = want.sans;
  if (!want.common_name.empty()) names.push_back(want.common_name);
  return sorted_unique(std::move(names));
}

std::string format_time(std::int64_t unix_time) {
  std::time_t t = static_cast<std::time_t>(unix_time);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return buf;
}

Decision decide(const compile::Certificate& want, const std::optional<Held>& have,
                std::int64_t now) {
  if (!have) return {Verdict::kIssue, "missing", 0};
  std::vector<std::string> wanted = wanted_names(want);
  std::vector<std::string> held = sorted_unique(have->names);
  if (wanted != held) {
    std::string reason = "names changed:";
    for (const auto& n : wanted) {
      if (!std::binary_search(held.begin(), held.end(), n)) reason += " +" + n;
    }
    for (const auto& n : held) {
      if (!std::binary_search(wanted.begin(), wanted.end(), n)) reason += " -" + n;
    }
    return {Verdict::kRenew, reason, 0};
  }
  std::int64_t lifetime = std::max<std::int64_t>(0, have->not_after - have->not_before);
  std::int64_t renew_at = have->not_before + lifetime * 2 / 3;
  if (now >= have->not_after) {
    return {Verdict::kRenew, "expired on " + format_time(have->not_after), renew_at};
  }
  if (now >= renew_at) {
    return {Verdict::kRenew, "2/3 of its lifetime passed on " + format_time(renew_at), renew_at};
  }
  return {Verdict::kKeep,
          "valid until " + format_time(have->not_after) + "; renews after " + format_time(renew_at),
          renew_at};
}

}  // namespace phoenix::certs
