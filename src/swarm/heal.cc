#include "swarm/heal.h"

#include <thread>

namespace phoenix::swarm {
namespace {

using base::ErrorKind;
using base::Result;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr const char* kListenAddr = "0.0.0.0:2377";

struct Info {
  std::string state;
  std::string node_id;
  std::string cluster_id;
  std::string node_addr;
  bool control = false;
  std::string error;
};

Result<Info> info(docker::Engine& engine) {
  json i = PHX_TRY(engine.get("/info"));
  const json& s = i.value("Swarm", json::object());
  Info out;
  out.state = s.value("LocalNodeState", "");
  out.node_id = s.value("NodeID", "");
  out.node_addr = s.value("NodeAddr", "");
  out.control = s.value("ControlAvailable", false);
  out.error = s.value("Error", "");
  if (s.contains("Cluster") && s["Cluster"].is_object())
    out.cluster_id = s["Cluster"].value("ID", "");
  return out;
}

const json* find_node(const json& nodes, const std::string& id) {
  for (const json& n : nodes) {
    if (n.value("ID", "") == id) return &n;
  }
  return nullptr;
}

std::vector<std::string> missing_labels(const json& node,
                                        const std::map<std::string, std::string>& want) {
  std::vector<std::string> out;
  const json& have = node["Spec"].value("Labels", json::object());
  for (const auto& [k, v] : want) {
    auto it = have.find(k);
    if (it == have.end() || !it->is_string() || it->get<std::string>() != v)
      out.push_back(k + "=" + v);
  }
  return out;
}

// Sets the node's labels Phoenix owns; labels put there by others stay.
Result<void> label_node(docker::Engine& manager, const json& node, const SwarmMember& m,
                        const HealOptions& opt, HealReport& report) {
  auto missing = missing_labels(node, m.node_labels);
  if (missing.empty()) return {};
  report.actions.push_back("label node of " + m.label + ": " + [&] {
    std::string s;
    for (const auto& l : missing) s += (s.empty() ? "" : ", ") + l;
    return s;
  }());
  if (opt.dry_run) return {};
  if (opt.progress) opt.progress(report.actions.back());
  json spec = node["Spec"];
  if (!spec.contains("Labels") || !spec["Labels"].is_object()) spec["Labels"] = json::object();
  for (const auto& [k, v] : m.node_labels) spec["Labels"][k] = v;
  std::string version = std::to_string(node["Version"].value("Index", 0));
  PHX_TRY(manager.post("/nodes/" + node.value("ID", "") + "/update", spec, {{"version", version}}));
  return {};
}

}  // namespace

Result<HealReport> heal_manager(docker::Engine& manager, const SwarmMember& m,
                                const std::string& network, const HealOptions& opt) {
  HealReport report;
  auto say = [&](const std::string& s) {
    report.actions.push_back(s);
    if (opt.progress && !opt.dry_run) opt.progress(s);
  };
  Info i = PHX_TRY(info(manager));
  if (i.state == "locked") {
    return base::fail(ErrorKind::kConflict,
                      "the swarm on " + m.label +
                          " is locked (autolock); unlock it with "
                          "`docker swarm unlock` on the manager, then run this again");
  }
  if (i.state == "active" && !i.control) {
    return base::fail(ErrorKind::kConflict, m.label + " is a worker of its swarm (cluster " +
                                                i.cluster_id +
                                                "), not a manager; its swarm_role says manager");
  }
  if (i.state == "inactive" || i.state.empty()) {
    say("initialise a swarm on " + m.label + ", advertising " + m.advertise_addr);
    if (opt.dry_run) return report;
    PHX_TRY(manager.post("/swarm/init",
                         {{"ListenAddr", kListenAddr}, {"AdvertiseAddr", m.advertise_addr}}));
    i = PHX_TRY(info(manager));
  }

  auto nodes = manager.get("/nodes");
  if (!nodes) {
    // A manager that lost quorum answers 503 "The swarm does not have a leader".
    if (!opt.force_new_cluster) {
      return std::unexpected(base::Error(
          nodes.error().kind(), "the swarm on " + m.label + " has no working manager (" +
                                    nodes.error().message() +
                                    "); to recover it as a new single-manager swarm that keeps its "
                                    "services, run `phoenix swarm init --force-new-cluster`"));
    }
    say("recover the swarm on " + m.label + " as a new cluster (force-new-cluster)");
    if (opt.dry_run) return report;
    PHX_TRY(manager.post("/swarm/init", {{"ListenAddr", kListenAddr},
                                         {"AdvertiseAddr", m.advertise_addr},
                                         {"ForceNewCluster", true}}));
    i = PHX_TRY(info(manager));
    nodes = manager.get("/nodes");
    if (!nodes) return std::unexpected(nodes.error());
  }
  const json* self = find_node(*nodes, i.node_id);
  if (!self) {
    return base::fail(ErrorKind::kInternal,
                      "the manager's own node " + i.node_id + " is not in its node list");
  }
  if (!self->contains("ManagerStatus") || !(*self)["ManagerStatus"].value("Leader", false)) {
    return base::fail(ErrorKind::kConflict,
                      m.label +
                          " is a manager but not the swarm's leader; Phoenix manages a "
                          "swarm whose leader is the manager VM");
  }
  PHX_TRY(label_node(manager, *self, m, opt, report));

  json nets = PHX_TRY(manager.get("/networks", {{"filters", json{{"name", {network}}}.dump()}}));
  const json* found = nullptr;
  for (const json& n : nets) {
    if (n.value("Name", "") == network) found = &n;
  }
  if (!found) {
    say("create the attachable overlay network " + network);
    if (!opt.dry_run) {
      PHX_TRY(manager.post("/networks/create", {{"Name", network},
                                                {"Driver", "overlay"},
                                                {"Attachable", true},
                                                {"CheckDuplicate", true},
                                                {"Labels", {{kManagedLabel, "true"}}}}));
    }
  } else if (found->value("Driver", "") != "overlay" || !found->value("Attachable", false) ||
             found->value("Scope", "") != "swarm") {
    return base::fail(ErrorKind::kConflict,
                      "network " + network +
                          " exists but is not an attachable swarm overlay "
                          "network (driver " +
                          found->value("Driver", "") + ", attachable " +
                          (found->value("Attachable", false) ? "true" : "false") +
                          "); remove it when nothing uses it and run this again");
  }
  return report;
}

Result<HealReport> join_worker(docker::Engine& manager, docker::Engine& worker,
                               const SwarmMember& m, const HealOptions& opt) {
  HealReport report;
  Info mgr = PHX_TRY(info(manager));
  if (mgr.state != "active" || !mgr.control) {
    return base::fail(ErrorKind::kConflict,
                      "the manager has no active swarm; run `phoenix swarm init` first");
  }
  Info w = PHX_TRY(info(worker));
  // A worker's engine does not know its cluster's id; membership shows in the manager's nodes.
  if (w.state == "active") {
    json nodes = PHX_TRY(manager.get("/nodes"));
    if (!find_node(nodes, w.node_id)) {
      return base::fail(ErrorKind::kConflict,
                        m.label + " is in another swarm (its node " + w.node_id +
                            " is not one of the manager's); leave it on that VM (`docker swarm "
                            "leave`) and run this again");
    }
  }
  if (w.state == "locked") {
    return base::fail(ErrorKind::kConflict, m.label + "'s swarm state is locked");
  }
  if (w.state != "active" && w.state != "pending") {
    report.actions.push_back("join " + m.label + " to the swarm as a worker, advertising " +
                             m.advertise_addr);
    if (opt.dry_run) return report;
    if (opt.progress) opt.progress(report.actions.back());
    json swarm = PHX_TRY(manager.get("/swarm"));
    std::string token = swarm["JoinTokens"].value("Worker", "");
    std::string remote = mgr.node_addr + ":2377";
    // The token is a credential: it goes into the request body only.
    PHX_TRY(worker.post("/swarm/join", {{"ListenAddr", kListenAddr},
                                        {"AdvertiseAddr", m.advertise_addr},
                                        {"RemoteAddrs", {remote}},
                                        {"JoinToken", token}}));
  }
  // Joining returns once the node is accepted; it is active shortly after.
  auto deadline = Clock::now() + opt.deadline;
  while (true) {
    w = PHX_TRY(info(worker));
    if (w.state == "active") break;
    if (Clock::now() >= deadline) {
      return base::fail(ErrorKind::kTimeout,
                        m.label + " did not become an active swarm member in time (state " +
                            w.state + (w.error.empty() ? "" : ": " + w.error) + ")");
    }
    std::this_thread::sleep_for(opt.poll_interval);
  }
  json nodes = PHX_TRY(manager.get("/nodes"));
  const json* node = find_node(nodes, w.node_id);
  if (!node) {
    return base::fail(ErrorKind::kInternal, "node " + w.node_id + " of " + m.label +
                                                " is not in the manager's node list");
  }
  PHX_TRY(label_node(manager, *node, m, opt, report));
  return report;
}

std::vector<std::string> plan_member(const json& nodes, const SwarmMember& m) {
  const json* node = nullptr;
  for (const json& n : nodes) {
    std::string addr = n.value("Status", json::object()).value("Addr", "");
    std::string mgr = n.contains("ManagerStatus") ? n["ManagerStatus"].value("Addr", "") : "";
    if (addr == m.advertise_addr || mgr == m.advertise_addr + ":2377") node = &n;
  }
  if (!node) return {"not in the swarm (no node has the address " + m.advertise_addr + ")"};
  std::vector<std::string> out;
  for (const std::string& l : missing_labels(*node, m.node_labels))
    out.push_back("node label " + l);
  return out;
}

MemberStatus member_status(docker::Engine& engine, const SwarmMember& m, bool is_manager,
                           const std::string& cluster_id, const json& nodes) {
  MemberStatus st;
  st.label = m.label;
  st.endpoint = engine.describe();
  auto version = engine.api_version();
  if (!version) {
    st.error = version.error().message() +
               (version.error().retryable() ? " (temporary: a retry may succeed)" : "");
    st.problems.push_back("engine unreachable");
    return st;
  }
  st.reachable = true;
  st.api_version = *version;
  auto i = info(engine);
  if (!i) {
    st.error = i.error().message();
    st.problems.push_back("cannot read the engine's swarm state");
    return st;
  }
  st.state = i->state;
  st.node_id = i->node_id;
  st.cluster_id = i->cluster_id;
  st.manager = i->control;
  if (i->state != "active") {
    st.problems.push_back(is_manager ? "no active swarm (swarm init creates it)"
                                     : "not joined (swarm join adds it)");
    return st;
  }
  const json* node = find_node(nodes, i->node_id);
  if (!node) {
    // A worker's engine does not know its cluster's id; membership shows in the manager's nodes.
    st.problems.push_back(cluster_id.empty() ? "the manager has no swarm"
                                             : "in another swarm (not one of the manager's nodes)");
    return st;
  }
  st.leader = node->contains("ManagerStatus") && (*node)["ManagerStatus"].value("Leader", false);
  st.missing_labels = missing_labels(*node, m.node_labels);
  for (const std::string& l : st.missing_labels)
    st.problems.push_back("node label " + l + " missing");
  if (is_manager && !st.leader) st.problems.push_back("not the swarm's leader");
  if (is_manager && !st.manager) st.problems.push_back("a worker, not a manager");
  return st;
}

}  // namespace phoenix::swarm
