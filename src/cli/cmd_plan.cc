#include <iostream>
#include <iterator>
#include <set>

#include "base/fs.h"
#include "base/hash.h"
#include "base/strings.h"
#include "cli/commands.h"
#include "cli/engines.h"
#include "compile/desired.h"
#include "plan/plan.h"
#include "provision/provision.h"
#include "render/render.h"

namespace phoenix::cli {
namespace {

std::vector<compile::Resource> desired_resources(const model::Estate& estate) {
  compile::Desired desired = compile::compile_estate(estate);
  auto files =
      render::file_resources(render::render_all(desired, render::Scope::kDelivered), desired);
  std::vector<compile::Resource> resources = std::move(desired.resources);
  resources.insert(resources.end(), std::make_move_iterator(files.begin()),
                   std::make_move_iterator(files.end()));
  return resources;
}

struct SwarmPlan {
  std::string endpoint;
  std::vector<swarm::DeployReport> stacks;
  std::vector<std::string> errors;  // stacks that could not be converted
  std::vector<std::pair<std::string, std::vector<std::string>>> members;  // VM, what it needs
  docker::RequestCounts requests;
};

// Every stack of the estate against the swarm: one list request per kind for all of them.
base::Result<SwarmPlan> plan_swarm(const GlobalOptions& g, const model::Estate& e,
                                   const std::set<compile::GuestId>& only) {
  const model::Guest* manager = swarm_manager(e);
  if (!manager) {
    return base::fail(base::ErrorKind::kInvalidInput,
                      "--swarm: no VM has \"swarm_role\": \"manager\"");
  }
  auto engine = PHX_TRY(open_engine(g, e, *manager));
  SwarmPlan out;
  out.endpoint = engine->describe();
  nlohmann::json info = PHX_TRY(engine->get("/info"));
  const nlohmann::json& state = info.value("Swarm", nlohmann::json::object());
  if (state.value("LocalNodeState", "") != "active" || !state.value("ControlAvailable", false)) {
    out.errors.push_back(manager->label() +
                         " has no active swarm that it manages (phoenix swarm init creates it)");
    out.requests = engine->counts();
    return out;
  }
  nlohmann::json nodes = PHX_TRY(engine->get("/nodes"));
  for (const model::Guest& vm : e.guests) {
    if (!vm.is_vm() || vm.is_template.value || !vm.swarm_role.present) continue;
    if (!only.empty() && !only.contains(vm.id)) continue;
    out.members.emplace_back(vm.label(), swarm::plan_member(nodes, swarm_member(vm)));
  }
  swarm::SwarmObservation observed = PHX_TRY(swarm::observe_swarm(*engine));
  compile::Desired desired = compile::compile_estate(e, compile::CompileOptions{false});
  std::vector<compile::StackDeployment> stacks = std::move(desired.stacks);
  if (auto portainer = compile::portainer_stack(e)) stacks.push_back(std::move(*portainer));
  for (const compile::StackDeployment& d : stacks) {
    if (!only.empty() && !only.contains(d.vm)) continue;
    auto spec = stack_spec(e, d);
    if (!spec) {
      out.errors.push_back(spec.error().message());
      continue;
    }
    out.stacks.push_back(swarm::plan_stack(observed, *spec));
  }
  out.requests = engine->counts();
  return out;
}

bool is_proxmox_kind(const std::string& kind) {
  return kind == "lxc" || kind == "vm" || kind == "firewall";
}

// Guests and firewalls as Proxmox has them: one GET /cluster/resources, then the config of each
// selected guest that exists, and the options and rules of each firewall whose guest exists.
// Entries replace those of `observed`; a guest Proxmox does not have is removed from it.
base::Result<proxmox::RequestCounts> observe_proxmox(const model::Estate& e,
                                                     const std::vector<compile::Resource>& desired,
                                                     const std::set<compile::GuestId>& only,
                                                     plan::Observed& observed) {
  auto pve = PHX_TRY(open_proxmox(e));
  provision::Inventory inventory = PHX_TRY(provision::read_inventory(*pve));
  provision::Target t;
  t.node = proxmox_node(e);
  t.vm = pveconf::vm_context(e);
  provision::Provisioner p(*pve, std::move(t));
  for (const compile::Resource& r : desired) {
    if (!is_proxmox_kind(r.kind)) continue;
    if (!only.empty() && r.owner && !only.contains(*r.owner)) continue;
    observed.resources.erase(r.id);
    const model::Guest* guest = r.owner ? e.guest(*r.owner) : nullptr;
    if (r.kind == "firewall" && !guest) {
      observed.resources[r.id] = PHX_TRY(p.observe_firewall(nullptr, r.fields));
      continue;
    }
    auto it = guest ? inventory.find(guest->id) : inventory.end();
    if (it == inventory.end()) continue;
    if (r.kind == "firewall") {
      observed.resources[r.id] = PHX_TRY(p.observe_firewall(guest, r.fields));
    } else {
      observed.resources[r.id] = PHX_TRY(p.observe_guest(*guest, it->second, r.fields));
    }
  }
  return pve->counts();
}

// A delivered file that differs from what Phoenix renders, with its lines.
struct FileDrift {
  std::string id;     // "file/102:/etc/traefik/dynamic/dynamic_conf.yml"
  std::string where;  // "LXC 102 (Traefik-Internal)" or "the node"
  std::string path;
  std::vector<std::string> diff;  // empty: missing
};

// The delivered files (DNS records on the node, Traefik's and the gateway's configuration in
// their guests) as they are, read through their channels: entries of `observed` with the
// content's hash and size, a missing file left out (the plan creates it). Every file that
// differs gets its lines in `drifts`.
base::Result<void> observe_files(const model::Estate& e, const std::set<compile::GuestId>& only,
                                 plan::Observed& observed, std::vector<FileDrift>& drifts) {
  compile::Desired desired = compile::compile_estate(e);
  auto artifacts = render::render_all(desired, render::Scope::kDelivered);
  auto resources = render::file_resources(artifacts, desired);
  GuestChannels channels(e);
  std::unique_ptr<guest::GuestChannel> node = open_node_channel(e);
  for (std::size_t k = 0; k < artifacts.size(); ++k) {
    const render::Artifact& a = artifacts[k];
    if (a.target.empty()) continue;
    if (!only.empty() && (!a.guest || !only.contains(*a.guest))) continue;
    auto r = std::find_if(resources.begin(), resources.end(), [&](const compile::Resource& x) {
      return x.name == (a.guest ? std::to_string(*a.guest) : "host") + ":" + a.target;
    });
    if (r == resources.end()) continue;
    guest::GuestChannel* ch = node.get();
    std::string where = "the node";
    if (a.guest) {
      ch = PHX_TRY(channels.get(*a.guest));
      where = e.guest(*a.guest)->label();
    }
    observed.resources.erase(r->id);
    auto content = ch->read_file(a.target);
    if (!content) {
      if (content.error().kind() != base::ErrorKind::kNotFound) {
        return base::fail(content.error().kind(), "reading " + a.target + " in " + where + ": " +
                                                      content.error().message());
      }
      drifts.push_back({r->id, where, a.target, {}});
      continue;
    }
    plan::ObservedResource seen;
    seen.fields = r->fields;
    seen.fields["sha256"] = base::sha256_hex(*content);
    seen.fields["size"] = content->size();
    observed.resources[r->id] = std::move(seen);
    if (*content != a.content) {
      drifts.push_back({r->id, where, a.target, base::line_diff(*content, a.content)});
    }
  }
  return {};
}

}  // namespace

int run_plan(const GlobalOptions& g, const PlanOptions& o) {
  plan::PlanOptions popts;
  for (const std::string& id : o.ids) {
    auto n = base::parse_uint(id);
    if (!n || *n > 999999999) {
      print_error(g, "\"" + id + "\" is not a guest id; give LXC or VM ids such as 101 1002");
      return kExitInvalid;
    }
    popts.only.insert(static_cast<compile::GuestId>(*n));
  }
  plan::Observed observed;
  if (o.observed_file) {
    auto text = base::read_file(*o.observed_file);
    if (!text) {
      print_error(g, text.error().describe());
      return kExitInvalid;
    }
    nlohmann::json doc = nlohmann::json::parse(*text, nullptr, false);
    if (doc.is_discarded()) {
      print_error(g, *o.observed_file + ": not valid JSON");
      return kExitInvalid;
    }
    auto parsed = plan::parse_snapshot(doc);
    if (!parsed) {
      print_error(g, *o.observed_file + ": " + parsed.error().message());
      return kExitInvalid;
    }
    observed = std::move(*parsed);
  }

  LoadedEstate& loaded = keep_until_exit(load_and_validate(g));
  if (loaded.diags.has_errors()) return report_invalid(g, loaded);
  std::vector<compile::Resource>& desired = keep_until_exit(desired_resources(*loaded.estate));
  std::optional<proxmox::RequestCounts> pve_requests;
  std::vector<FileDrift> drifts;
  if (o.files) {
    if (auto r = observe_files(*loaded.estate, popts.only, observed, drifts); !r) {
      print_error(g, "observing the delivered files: " + r.error().message());
      return r.error().kind() == base::ErrorKind::kInvalidInput ? kExitInvalid
                                                                : provider_exit(r.error());
    }
  }
  if (o.proxmox) {
    auto counts = observe_proxmox(*loaded.estate, desired, popts.only, observed);
    if (!counts) {
      print_error(g, "observing Proxmox: " + remote_error(counts.error()));
      return provider_exit(counts.error());
    }
    pve_requests = *counts;
  }
  // Without a snapshot for the rest, the plan covers what was observed.
  if ((o.proxmox || o.files) && !o.observed_file) {
    std::erase_if(desired, [&](const compile::Resource& r) {
      return !((o.proxmox && is_proxmox_kind(r.kind)) || (o.files && r.kind == "file"));
    });
    if (!o.proxmox && !popts.only.empty()) {
      // Files alone: the selection is theirs (the planner selects through guest resources).
      std::erase_if(desired, [&](const compile::Resource& r) {
        return !r.owner || !popts.only.contains(*r.owner);
      });
      popts.only.clear();
    }
  }
  auto& p = keep_until_exit(plan::make_plan(desired, observed, popts));
  if (!p) {
    print_error(g, p.error().message());
    return kExitInvalid;
  }
  std::optional<SwarmPlan> swarm_plan;
  if (o.swarm) {
    auto sp = plan_swarm(g, *loaded.estate, popts.only);
    if (!sp) {
      print_error(g, remote_error(sp.error()));
      return sp.error().retryable() ? kExitUnreachable : kExitInvalid;
    }
    swarm_plan = std::move(*sp);
  }
  if (g.output == OutputFormat::kJson) {
    nlohmann::json doc = plan::plan_to_json(*p);
    doc["observed"] = o.observed_file ? nlohmann::json(*o.observed_file) : nlohmann::json(nullptr);
    if (pve_requests) {
      doc["proxmox"] = {{"requests", pve_requests->total}, {"mutating", pve_requests->mutating}};
    }
    if (swarm_plan) {
      nlohmann::json stacks = nlohmann::json::array();
      for (const auto& r : swarm_plan->stacks) stacks.push_back(stack_report_json(r));
      doc["swarm"] = {
          {"endpoint", swarm_plan->endpoint},
          {"stacks", stacks},
          {"errors", swarm_plan->errors},
          {"requests",
           {{"total", swarm_plan->requests.total}, {"mutating", swarm_plan->requests.mutating}}}};
    }
    if (o.files) {
      nlohmann::json files = nlohmann::json::array();
      for (const FileDrift& d : drifts) {
        files.push_back({{"id", d.id},
                         {"where", d.where},
                         {"path", d.path},
                         {"missing", d.diff.empty()},
                         {"diff", d.diff}});
      }
      doc["files"] = files;
    }
    print_json(doc);
  } else {
    print_diagnostics(loaded, g);
    if (pve_requests && !o.observed_file) {
      std::cout << "(Guests and firewalls as observed on Proxmox, in " << pve_requests->total
                << " requests.)\n\n";
    } else if (o.files && !o.observed_file) {
      std::cout << "(Delivered files as read in the node and the guests.)\n\n";
    } else if (!o.observed_file) {
      std::cout << "(No observed state given: planning against an empty platform. Pass "
                   "--proxmox to observe the guests, or --observed FILE to compare with a "
                   "snapshot.)\n\n";
    }
    std::cout << plan::format_plan(*p, {g.colour, g.verbose > 0});
    if (!drifts.empty()) std::cout << "\nDelivered files that differ from the estate:\n";
    for (const FileDrift& d : drifts) {
      std::cout << "  " << d.path << " in " << d.where
                << (d.diff.empty() ? ": missing\n" : ": (- as it is, + as the estate says)\n");
      for (const std::string& line : d.diff) std::cout << "      " << line << '\n';
    }
    if (swarm_plan) {
      std::cout << "\nStacks on the swarm (observed through " << swarm_plan->endpoint << ", "
                << swarm_plan->requests.total << " requests):\n";
      for (const std::string& err : swarm_plan->errors) std::cout << "  error: " << err << '\n';
      for (const auto& [vm, needs] : swarm_plan->members) {
        std::cout << "  " << vm << ": " << (needs.empty() ? "in the swarm, labelled" : "") << '\n';
        for (const std::string& n : needs) std::cout << "    needs: " << n << '\n';
      }
      for (const auto& r : swarm_plan->stacks) {
        std::size_t n = change_count(r);
        std::cout << "  stack " << r.stack << ": "
                  << (n == 0 ? (r.converged ? "no changes" : "no changes, but not every task runs")
                             : std::to_string(n) + " change(s)")
                  << '\n';
        std::cout << format_stack_changes(r, "    ");
      }
    }
  }
  return p->errors.empty() ? kExitOk : kExitInvalid;
}

int run_snapshot(const GlobalOptions& g) {
  LoadedEstate loaded = load_and_validate(g);
  if (loaded.diags.has_errors()) return report_invalid(g, loaded);
  print_json(plan::make_snapshot(desired_resources(*loaded.estate)));
  return kExitOk;
}

}  // namespace phoenix::cli
