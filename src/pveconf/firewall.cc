#include "pveconf/firewall.h"

#include <algorithm>
#include <cctype>
#include <string_view>
#include <utility>

#include "base/strings.h"

namespace phoenix::pveconf {
namespace {

using nlohmann::json;

std::string to_upper(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

bool is_space(char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; }

std::string without_spaces(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (!is_space(c)) out += c;
  }
  return out;
}

// Perl's \s, which Proxmox trims a comment of.
std::string trim_perl(std::string_view text) {
  while (!text.empty() && is_space(text.front())) text.remove_prefix(1);
  while (!text.empty() && is_space(text.back())) text.remove_suffix(1);
  return std::string(text);
}

// A member as text: strings as they are, numbers printed; anything else (or absent) is unset.
std::string text(const json& object, const char* key) {
  auto it = object.find(key);
  if (it == object.end()) return "";
  if (it->is_string()) return it->get_ref<const std::string&>();
  if (it->is_number_integer()) return std::to_string(it->get<std::int64_t>());
  if (it->is_number_unsigned()) return std::to_string(it->get<std::uint64_t>());
  if (it->is_number_float()) return it->dump();
  return "";
}

// A Proxmox boolean: 0/1 (as a number, a string or a JSON boolean); absent or anything else is
// false.
bool flag(const json& object, const char* key) {
  auto it = object.find(key);
  if (it == object.end()) return false;
  if (it->is_boolean()) return it->get<bool>();
  if (it->is_number_integer()) return it->get<std::int64_t>() != 0;
  if (it->is_number_unsigned()) return it->get<std::uint64_t>() != 0;
  if (it->is_string()) {
    auto n = base::parse_uint(it->get_ref<const std::string&>());
    return n && *n != 0;
  }
  return false;
}

bool same_normalized(const FwRule& a, const FwRule& b) {
  return a.type == b.type && a.action == b.action && a.enable == b.enable && a.source == b.source &&
         a.dest == b.dest && a.proto == b.proto && a.dport == b.dport && a.sport == b.sport &&
         a.iface == b.iface && base::to_lower(a.macro) == base::to_lower(b.macro) &&
         a.icmp_type == b.icmp_type && a.comment == b.comment && a.log == b.log;
}

// PVE::API2::Firewall::Rules' update_rule with moveto, on any list.
template <typename T>
void proxmox_move(std::vector<T>& list, std::size_t pos, std::size_t moveto) {
  if (moveto == pos) return;
  std::vector<T> out;
  out.reserve(list.size());
  for (std::size_t i = 0; i < list.size(); ++i) {
    if (i == pos) continue;
    if (i == moveto) out.push_back(list[pos]);
    out.push_back(list[i]);
  }
  if (moveto >= list.size()) out.push_back(list[pos]);
  list = std::move(out);
}

std::string policy_or(std::string_view policy, const char* fallback) {
  return policy.empty() ? std::string(fallback) : to_upper(policy);
}

}  // namespace

FwRule from_desired(const compile::FirewallRule& r) {
  FwRule out;
  out.type = base::to_lower(r.direction);
  out.action = r.action;
  out.source = r.source;
  out.dest = r.dest;
  out.proto = r.proto;
  out.dport = r.dport;
  out.iface = r.iface;
  out.comment = r.comment;
  return normalized(std::move(out));
}

std::vector<FwRule> rules_from_desired(const compile::FirewallRuleset& set) {
  std::vector<FwRule> out;
  out.reserve(set.rules.size());
  for (const compile::FirewallRule& r : set.rules) out.push_back(from_desired(r));
  return out;
}

FwRule from_api(const json& rule) {
  FwRule out;
  if (!rule.is_object()) {
    out.enable = false;
    return out;
  }
  out.type = text(rule, "type");
  out.action = text(rule, "action");
  out.enable = flag(rule, "enable");
  out.source = text(rule, "source");
  out.dest = text(rule, "dest");
  out.proto = text(rule, "proto");
  out.dport = text(rule, "dport");
  out.sport = text(rule, "sport");
  out.iface = text(rule, "iface");
  out.macro = text(rule, "macro");
  out.icmp_type = text(rule, "icmp-type");
  out.comment = text(rule, "comment");
  out.log = text(rule, "log");
  return normalized(std::move(out));
}

std::vector<FwRule> rules_from_api(const json& rules) {
  std::vector<std::pair<std::int64_t, FwRule>> indexed;
  if (rules.is_array()) {
    std::int64_t next = 0;
    for (const json& r : rules) {
      std::int64_t pos = next++;
      if (r.is_object()) {
        auto it = r.find("pos");
        if (it != r.end() && it->is_number_integer()) pos = it->get<std::int64_t>();
      }
      indexed.emplace_back(pos, from_api(r));
    }
  }
  std::stable_sort(indexed.begin(), indexed.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<FwRule> out;
  out.reserve(indexed.size());
  for (auto& [pos, rule] : indexed) out.push_back(std::move(rule));
  return out;
}

FwRule normalized(FwRule r) {
  r.type = base::to_lower(r.type);
  if (r.type != "group") r.action = to_upper(r.action);
  r.proto = base::to_lower(r.proto);
  r.log = base::to_lower(r.log);
  r.dport = without_spaces(r.dport);
  r.sport = without_spaces(r.sport);
  std::replace(r.comment.begin(), r.comment.end(), '\n', ' ');
  std::replace(r.comment.begin(), r.comment.end(), '\r', ' ');
  r.comment = trim_perl(r.comment);
  return r;
}

bool same(const FwRule& a, const FwRule& b) {
  return same_normalized(normalized(a), normalized(b));
}

Params to_params(const FwRule& r) {
  Params p;
  p.emplace_back("type", r.type);
  p.emplace_back("action", r.action);
  p.emplace_back("enable", r.enable ? "1" : "0");
  for (auto [key, value] : {std::pair{"macro", &r.macro},
                            {"iface", &r.iface},
                            {"source", &r.source},
                            {"dest", &r.dest},
                            {"proto", &r.proto},
                            {"dport", &r.dport},
                            {"sport", &r.sport},
                            {"icmp-type", &r.icmp_type},
                            {"log", &r.log},
                            {"comment", &r.comment}}) {
    if (!value->empty()) p.emplace_back(key, *value);
  }
  return p;
}

std::string describe(const FwRule& r) {
  std::vector<std::string> parts;
  parts.push_back(r.type);
  parts.push_back(r.macro.empty() ? r.action : r.macro + "(" + r.action + ")");
  if (!r.iface.empty()) parts.push_back("on " + r.iface);
  if (!r.proto.empty()) parts.push_back(r.proto);
  if (!r.dport.empty()) parts.push_back(r.dport);
  if (!r.source.empty()) parts.push_back("from " + r.source);
  if (!r.dest.empty()) parts.push_back("to " + r.dest);
  if (!r.sport.empty()) parts.push_back("sport " + r.sport);
  if (!r.icmp_type.empty()) parts.push_back("icmp-type " + r.icmp_type);
  if (!r.log.empty()) parts.push_back("log " + r.log);
  if (!r.enable) parts.push_back("disabled");
  if (!r.comment.empty()) parts.push_back("(" + r.comment + ")");
  return base::join(parts, " ");
}

// ---- options -------------------------------------------------------------------------------

FwOptions from_desired(const compile::FirewallRuleset& set) {
  FwOptions out;
  out.enable = set.enabled;
  out.policy_in = to_upper(set.policy_in);
  out.policy_out = to_upper(set.policy_out);
  return out;
}

FwOptions options_from_api(const json& options) {
  FwOptions out;
  out.enable = false;
  out.policy_in = kDefaultPolicyIn;
  out.policy_out = kDefaultPolicyOut;
  if (!options.is_object()) return out;
  out.enable = flag(options, "enable");
  out.policy_in = policy_or(text(options, "policy_in"), kDefaultPolicyIn);
  out.policy_out = policy_or(text(options, "policy_out"), kDefaultPolicyOut);
  return out;
}

Params options_update(const FwOptions& desired, const FwOptions& observed) {
  Params p;
  if (desired.enable && *desired.enable != observed.enable.value_or(false)) {
    p.emplace_back("enable", *desired.enable ? "1" : "0");
  }
  if (!desired.policy_in.empty()) {
    std::string want = to_upper(desired.policy_in);
    if (want != policy_or(observed.policy_in, kDefaultPolicyIn)) p.emplace_back("policy_in", want);
  }
  if (!desired.policy_out.empty()) {
    std::string want = to_upper(desired.policy_out);
    if (want != policy_or(observed.policy_out, kDefaultPolicyOut)) {
      p.emplace_back("policy_out", want);
    }
  }
  return p;
}

// ---- rule list reconciliation --------------------------------------------------------------

std::vector<FwOp> reconcile_rules(const std::vector<FwRule>& observed,
                                  const std::vector<FwRule>& desired) {
  std::vector<FwRule> have, want;
  for (const FwRule& r : observed) have.push_back(normalized(r));
  for (const FwRule& r : desired) want.push_back(normalized(r));
  const std::size_t n = have.size(), m = want.size();

  // lcs[i][j]: the longest common subsequence of have[i..] and want[j..].
  std::vector<std::vector<std::size_t>> lcs(n + 1, std::vector<std::size_t>(m + 1, 0));
  for (std::size_t i = n; i-- > 0;) {
    for (std::size_t j = m; j-- > 0;) {
      lcs[i][j] = same_normalized(have[i], want[j]) ? lcs[i + 1][j + 1] + 1
                                                    : std::max(lcs[i + 1][j], lcs[i][j + 1]);
    }
  }

  // Each desired rule's observed instance, if it has one; the subsequence's stay in place.
  std::vector<std::optional<std::size_t>> match(m);
  std::vector<bool> pinned(m, false), used(n, false);
  for (std::size_t i = 0, j = 0; i < n && j < m;) {
    if (same_normalized(have[i], want[j])) {
      match[j] = i;
      pinned[j] = true;
      used[i] = true;
      ++i;
      ++j;
    } else if (lcs[i + 1][j] >= lcs[i][j + 1]) {
      ++i;
    } else {
      ++j;
    }
  }
  for (std::size_t j = 0; j < m; ++j) {
    if (match[j]) continue;
    for (std::size_t i = 0; i < n; ++i) {
      if (!used[i] && same_normalized(have[i], want[j])) {
        match[j] = i;
        used[i] = true;
        break;
      }
    }
  }

  std::vector<FwOp> ops;
  for (std::size_t i = n; i-- > 0;) {
    if (!used[i]) ops.push_back({FwOpKind::kDelete, i, 0, observed[i]});
  }

  // The list as the operations leave it, as instances: observed rules by their index, created
  // ones as n + their desired index.
  std::vector<std::size_t> current;
  for (std::size_t i = 0; i < n; ++i) {
    if (used[i]) current.push_back(i);
  }
  auto instance = [&](std::size_t j) { return match[j] ? *match[j] : n + j; };
  auto position = [&](std::size_t id) {
    return static_cast<std::size_t>(std::find(current.begin(), current.end(), id) -
                                    current.begin());
  };
  // Desired rules are settled in order: each goes right after its settled predecessor, so the
  // settled ones are always in desired order, whatever unsettled rules lie between them.
  for (std::size_t j = 0; j < m; ++j) {
    if (pinned[j]) continue;
    std::size_t target = j == 0 ? 0 : position(instance(j - 1)) + 1;
    if (match[j]) {
      std::size_t pos = position(*match[j]);
      if (pos == target) continue;
      // Up, the rule lands at moveto; down, at moveto - 1, which is right after the
      // predecessor once the rule has left its place.
      ops.push_back({FwOpKind::kMove, pos, target, observed[*match[j]]});
      proxmox_move(current, pos, target);
    } else {
      ops.push_back({FwOpKind::kInsert, target, 0, want[j]});
      current.insert(current.begin() + static_cast<std::ptrdiff_t>(target), n + j);
    }
  }
  return ops;
}

std::string path(const FwCall& call) {
  return call.pos ? "rules/" + std::to_string(*call.pos) : "rules";
}

std::vector<FwCall> calls(const FwOp& op) {
  switch (op.kind) {
    case FwOpKind::kDelete:
      return {{"DELETE", op.pos, {}}};
    case FwOpKind::kMove:
      return {{"PUT", op.pos, {{"moveto", std::to_string(op.moveto)}}}};
    case FwOpKind::kInsert: {
      std::vector<FwCall> out{{"POST", std::nullopt, to_params(op.rule)}};
      // At the top now; moved down, it lands at moveto - 1.
      if (op.pos > 0) out.push_back({"PUT", 0, {{"moveto", std::to_string(op.pos + 1)}}});
      return out;
    }
  }
  return {};
}

bool simulate(std::vector<FwRule>& rules, const FwCall& call) {
  if (call.method == "POST") {
    // copy_rule_data: '' and '-' leave a field unset; enable is 0 unless given.
    json params = json::object();
    for (const auto& [key, value] : call.params) {
      if (!value.empty() && value != "-") params[key] = value;
    }
    rules.insert(rules.begin(), from_api(params));
    return true;
  }
  if (!call.pos || *call.pos >= rules.size()) return false;
  if (call.method == "DELETE") {
    rules.erase(rules.begin() + static_cast<std::ptrdiff_t>(*call.pos));
    return true;
  }
  if (call.method == "PUT") {
    for (const auto& [key, value] : call.params) {
      if (key != "moveto") continue;
      auto moveto = base::parse_uint(value);
      if (!moveto) return false;
      proxmox_move(rules, *call.pos, static_cast<std::size_t>(*moveto));
      return true;
    }
  }
  return false;
}

bool simulate(std::vector<FwRule>& rules, const FwOp& op) {
  for (const FwCall& call : calls(op)) {
    if (!simulate(rules, call)) return false;
  }
  return true;
}

std::string to_string(const FwOp& op) {
  switch (op.kind) {
    case FwOpKind::kDelete:
      return "remove rule " + std::to_string(op.pos) + ": " + describe(op.rule);
    case FwOpKind::kInsert:
      return "add rule " + std::to_string(op.pos) + ": " + describe(op.rule);
    case FwOpKind::kMove: {
      std::size_t lands = op.moveto > op.pos ? op.moveto - 1 : op.moveto;
      return "move rule " + std::to_string(op.pos) + " to " + std::to_string(lands) + ": " +
             describe(op.rule);
    }
  }
  return "";
}

}  // namespace phoenix::pveconf
