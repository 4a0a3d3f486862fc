#pragma once

// Which certificates to issue, renew or keep: pure, from what the estate wants (compile/) and
// what the guest holds (its certificate's names and validity, read by the caller).
//
// A certificate is issued when the guest has none; renewed when it is past two thirds of its
// lifetime (or expired), or when its names are not exactly the ones wanted; kept otherwise.
// Nothing else triggers a new certificate: not a run of Phoenix, not a reload.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "compile/desired.h"

namespace phoenix::certs {

// What a certificate in the guest says of itself.
struct Held {
  std::vector<std::string> names;  // its common name and subject alternative names
  std::int64_t not_before = 0;     // unix time
  std::int64_t not_after = 0;
};

enum class Verdict { kKeep, kIssue, kRenew };
std::string_view to_string(Verdict verdict);  // "keep", "issue", "renew"

struct Decision {
  Verdict verdict = Verdict::kKeep;
  std::string reason;         // "missing", "names changed: +a.lan -b.lan", "2/3 of its lifetime
                              // passed on 2026-11-20 14:00:00 UTC", "valid; renews after ..."
  std::int64_t renew_at = 0;  // for kept ones: when two thirds of the lifetime will have passed
};

// The names a certificate must carry: its common name and SANs, sorted, without duplicates.
std::vector<std::string> wanted_names(const compile::Certificate& want);

Decision decide(const compile::Certificate& want, const std::optional<Held>& have,
                std::int64_t now);

// "2026-11-20 14:00:00 UTC".
std::string format_time(std::int64_t unix_time);

}  // namespace phoenix::certs
