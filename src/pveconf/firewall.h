#pragma once

// Proxmox VE firewall state reconciled through the API, rule by rule: no wipe-and-rewrite, order
// kept, and a second run changes nothing. Pure: no I/O.
//
// Proxmox's rules API (PVE::API2::Firewall::Rules), which the operations here are built for:
//   POST   .../firewall/rules           adds the rule at the TOP (position 0); `pos` is accepted
//                                       and ignored. Without enable=1 the rule is disabled.
//   PUT    .../firewall/rules/{pos}     with moveto=M moves the rule: it lands at M when moving
//                                       up (M < pos), at M - 1 when moving down (M > pos), last
//                                       when M >= the number of rules; M == pos changes nothing.
//   DELETE .../firewall/rules/{pos}     removes the rule at pos.
// Positions are 0-based, as the API and the web interface count them.

#include <cstddef>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "compile/desired.h"
#include "pveconf/lxc.h"

namespace phoenix::pveconf {

// A rule as Proxmox's API has it. Strings are empty when unset.
struct FwRule {
  std::string type;    // in | out | group (| forward)
  std::string action;  // ACCEPT | DROP | REJECT, or the security group's name for type group
  bool enable = true;
  std::string source, dest, proto, dport, sport, iface, macro, icmp_type, comment, log;
};

// The estate's rule: direction IN/OUT as type in/out, port as dport, enabled.
FwRule from_desired(const compile::FirewallRule& rule);
std::vector<FwRule> rules_from_desired(const compile::FirewallRuleset& set);

// An element of GET .../firewall/rules. `enable` absent means disabled (Proxmox lists it as 0
// or 1 on every rule); pos, digest and ipversion are not part of the rule. Never throws:
// members of an unexpected type are taken as unset.
FwRule from_api(const nlohmann::json& rule);
// The whole list, in `pos` order.
std::vector<FwRule> rules_from_api(const nlohmann::json& rules);

// `rule` as Proxmox stores it: type, proto and log in lower case; action in upper case unless
// it names a security group; spaces removed from dport and sport; the comment trimmed and on
// one line (Proxmox keeps a comment as the rest of the rule's line in the .fw file, trimmed).
FwRule normalized(FwRule rule);

// Whether the two rules mean the same to Proxmox (compared normalized; macro names without
// regard to case, as Proxmox resolves them).
bool same(const FwRule& a, const FwRule& b);

// The form parameters of POST .../firewall/rules: type, action, enable (always, 1 or 0), then
// each set field (macro, iface, source, dest, proto, dport, sport, icmp-type, log, comment).
Params to_params(const FwRule& rule);

// "in ACCEPT tcp 22 from 10.0.0.0/24 (SSH)": type, action (as MACRO(ACTION) with a macro),
// "on <iface>", proto, dport, "from <source>", "to <dest>", "sport <sport>",
// "icmp-type <type>", "log <level>", "disabled", "(<comment>)".
std::string describe(const FwRule& rule);

// ---- options -------------------------------------------------------------------------------

// The managed part of .../firewall/options. Policies are empty when unmanaged (desired) or when
// unknown (observed, then read as Proxmox's defaults).
struct FwOptions {
  std::optional<bool> enable;
  std::string policy_in, policy_out;
};

// What Proxmox applies when a policy is not set, on the cluster (host chains) and on guests
// alike (PVE::Firewall: `policy_in || 'DROP'`, `policy_out || 'ACCEPT'`).
inline constexpr const char* kDefaultPolicyIn = "DROP";
inline constexpr const char* kDefaultPolicyOut = "ACCEPT";

// enable from the ruleset; the policies where the estate sets them (the cluster's).
FwOptions from_desired(const compile::FirewallRuleset& set);
// GET .../firewall/options (cluster or guest): enable as 0/1 (absent: disabled), policies as
// Proxmox applies them (absent: the defaults above).
FwOptions options_from_api(const nlohmann::json& options);

// The parameters of PUT .../firewall/options that bring `observed` to `desired`: only the keys
// that differ (enable as 1/0, policy_in, policy_out); empty when converged. An unset desired
// value is not managed; policies compare without regard to case.
Params options_update(const FwOptions& desired, const FwOptions& observed);

// ---- rule list reconciliation --------------------------------------------------------------

enum class FwOpKind { kDelete, kInsert, kMove };

// One step of a reconciliation, applied to the list as the steps before it left it.
struct FwOp {
  FwOpKind kind = FwOpKind::kInsert;
  // kDelete, kMove: the rule's position now. kInsert: the position the new rule ends up at.
  std::size_t pos = 0;
  // kMove: Proxmox's moveto (the rule lands at moveto when moving up, moveto - 1 when moving
  // down).
  std::size_t moveto = 0;
  // kInsert: the rule to create. kDelete, kMove: the rule concerned (for plans).
  FwRule rule;
};

// The operations that turn `observed` into `desired`, in order, with as few as the lists
// allow: the rules desired has no use for are deleted (highest position first, so that the
// positions stay valid); the longest common subsequence of what remains stays where it is; every
// other desired rule is moved into place if observed has it, created otherwise. Lists compare
// as multisets (identical rules may repeat). Equal lists give no operations.
std::vector<FwOp> reconcile_rules(const std::vector<FwRule>& observed,
                                  const std::vector<FwRule>& desired);

// One request to the rules API.
struct FwCall {
  std::string method;              // POST | PUT | DELETE
  std::optional<std::size_t> pos;  // the {pos} of rules/{pos}; none for POST
  Params params;
};
// "rules" or "rules/{pos}", relative to .../firewall/.
std::string path(const FwCall& call);

// The requests that carry out `op`: DELETE rules/{pos}; PUT rules/{pos} moveto=M; and for an
// insert, POST rules (the rule lands at the top) followed, unless it belongs at 0, by
// PUT rules/0 moveto=pos+1.
std::vector<FwCall> calls(const FwOp& op);

// Proxmox's handling of one request, on a rule list: POST adds the rule its parameters describe
// at the top, PUT with moveto moves, DELETE removes. False, and the list unchanged, where
// Proxmox answers "no rule at position N", and for a PUT without moveto (an update, which
// reconciliation does not use).
[[nodiscard]] bool simulate(std::vector<FwRule>& rules, const FwCall& call);
// Every call of `op`, in order; false at the first that fails.
[[nodiscard]] bool simulate(std::vector<FwRule>& rules, const FwOp& op);

// For plans: "add rule 2: in ACCEPT tcp 22 from 10.0.0.0/24 (SSH)", "remove rule 4: ...",
// "move rule 3 to 1: ..." (the position it ends up at).
std::string to_string(const FwOp& op);

}  // namespace phoenix::pveconf
