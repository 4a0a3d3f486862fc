// phoenix sync dns | sync gateways | sync certs: the DNS records on the host, Traefik's
// configuration, the Nginx gateway's site and every certificate in their guests, delivered and
// loaded (deliver/).
//
// Channels: the node (where the DNS records live) is this machine, below
// proxmox_api.host_root (default /), or the node over SSH (proxmox_api.host_ssh). An LXC is
// reached through `pct exec` on the node, a VM through its QEMU guest agent over the Proxmox
// API; a guest's `local_root` (tests) stands for its / on this machine instead.

#include <algorithm>
#include <ctime>
#include <iostream>
#include <map>
#include <memory>
#include <utility>
#include <variant>

#include "cli/commands.h"
#include "cli/engines.h"
#include "compile/desired.h"
#include "deliver/deliver.h"
#include "deliver/targets.h"
#include "providers/ca/stepca.h"
#include "providers/guest/channel.h"

namespace phoenix::cli {
namespace {

using nlohmann::json;

struct Outcome {
  std::string title;  // "dns on the host", "gateway in LXC 101 (Nginx-Phoenix)"
  std::optional<model::GuestId> guest;
  deliver::Report report;
};

// A guest that cannot be reached: invalid input when the estate says how to reach it wrongly
// (no secret file, say), else what the provider's failure means.
int channel_exit(const base::Error& error) {
  return error.kind() == base::ErrorKind::kInvalidInput ? kExitInvalid : provider_exit(error);
}

deliver::Report skipped(std::string name, std::string why) {
  deliver::Report r;
  r.name = std::move(name);
  r.steps.push_back({"skip", std::move(why)});
  return r;
}

int finish(const GlobalOptions& g, const std::string& command,
           const std::vector<Outcome>& outcomes) {
  bool ok = true, changed = false;
  for (const Outcome& o : outcomes) {
    ok &= o.report.ok();
    changed |= o.report.changed;
  }
  if (g.output == OutputFormat::kJson) {
    json list = json::array();
    for (const Outcome& o : outcomes) {
      json steps = json::array();
      for (const deliver::Step& s : o.report.steps) {
        steps.push_back({{"what", s.what}, {"detail", s.detail}});
      }
      list.push_back({{"name", o.report.name},
                      {"where", o.report.where},
                      {"guest", o.guest ? json(*o.guest) : json(nullptr)},
                      {"changed", o.report.changed},
                      {"ok", o.report.ok()},
                      {"steps", steps},
                      {"error", o.report.error ? json(o.report.error->message()) : json(nullptr)}});
    }
    print_json({{"command", command},
                {"dry_run", g.dry_run},
                {"deliveries", list},
                {"changed", changed},
                {"ok", ok}});
  } else {
    for (const Outcome& o : outcomes) {
      std::cout << o.title;
      if (!o.report.where.empty()) std::cout << " (" << o.report.where << ")";
      std::cout << ":\n";
      for (const deliver::Step& s : o.report.steps) {
        std::cout << "  " << s.what << " " << s.detail << '\n';
      }
    }
    if (ok) {
      std::cout << (!changed    ? "no changes\n"
                    : g.dry_run ? "changes would be made\n"
                                : "converged\n");
    }
    for (const Outcome& o : outcomes) {
      if (o.report.error) print_error(g, o.report.name + ": " + o.report.error->message());
    }
  }
  return ok ? kExitOk : kExitPartial;
}

// The estate, valid, and its desired state; or the exit code once the problem is reported.
std::variant<std::pair<LoadedEstate, compile::Desired>, int> prepare(const GlobalOptions& g) {
  LoadedEstate loaded = load_and_validate(g);
  if (loaded.diags.has_errors()) return report_invalid(g, loaded);
  if (g.output == OutputFormat::kText) print_diagnostics(loaded, g);  // warnings
  compile::Desired desired = compile::compile_estate(*loaded.estate, {.resources = false});
  return std::pair{std::move(loaded), std::move(desired)};
}

}  // namespace

int run_sync_dns(const GlobalOptions& g) {
  auto prepared = prepare(g);
  if (auto* code = std::get_if<int>(&prepared)) return *code;
  auto& [loaded, desired] = std::get<0>(prepared);
  const model::Estate& e = *loaded.estate;
  deliver::Options options{g.dry_run};
  std::vector<Outcome> outcomes;
  const model::DnsServer& dns = e.platform.dns_server;
  if (dns.enabled.present && !dns.enabled.value) {
    outcomes.push_back({"dns on the host", std::nullopt,
                        skipped("dns", "dns_server.enabled is false: Phoenix leaves DNS alone")});
    return finish(g, "sync dns", outcomes);
  }
  auto host = open_node_channel(e);
  outcomes.push_back({"dns on the host", std::nullopt,
                      deliver::deliver_dns(*host, deliver::dns_delivery(e, desired), options)});
  return finish(g, "sync dns", outcomes);
}

int run_sync_gateways(const GlobalOptions& g) {
  auto prepared = prepare(g);
  if (auto* code = std::get_if<int>(&prepared)) return *code;
  auto& [loaded, desired] = std::get<0>(prepared);
  const model::Estate& e = *loaded.estate;
  deliver::Options options{g.dry_run};
  auto traefik = deliver::traefik_delivery(e, desired);
  auto gateway = deliver::gateway_delivery(e, desired);

  // Every channel first: a guest Phoenix cannot reach is an error, and nothing changes.
  GuestChannels channels(e);
  guest::GuestChannel *traefik_ch = nullptr, *gateway_ch = nullptr;
  for (auto [id, ch] :
       {std::pair{traefik ? std::optional(traefik->guest) : std::nullopt, &traefik_ch},
        std::pair{gateway ? std::optional(gateway->guest) : std::nullopt, &gateway_ch}}) {
    if (!id) continue;
    auto opened = channels.get(*id);
    if (!opened) {
      print_error(g, opened.error().message());
      return channel_exit(opened.error());
    }
    *ch = *opened;
  }

  std::vector<Outcome> outcomes;
  if (traefik) {
    outcomes.push_back({"traefik in " + e.guest(traefik->guest)->label(), traefik->guest,
                        deliver::deliver_traefik(*traefik_ch, traefik->delivery, options)});
  } else {
    outcomes.push_back({"traefik", std::nullopt,
                        skipped("traefik", "no guest with the traefik feature and an address")});
  }
  if (gateway) {
    outcomes.push_back({"gateway in " + e.guest(gateway->guest)->label(), gateway->guest,
                        deliver::deliver_gateway(*gateway_ch, gateway->delivery, options)});
  } else {
    outcomes.push_back({"gateway", std::nullopt,
                        skipped("gateway",
                                "no gateway: it needs a guest with the nginx_gateway feature, a "
                                "Traefik guest and domain_name")});
  }
  return finish(g, "sync gateways", outcomes);
}

int run_sync_certs(const GlobalOptions& g) {
  auto prepared = prepare(g);
  if (auto* code = std::get_if<int>(&prepared)) return *code;
  auto& [loaded, desired] = std::get<0>(prepared);
  const model::Estate& e = *loaded.estate;
  deliver::Options options{g.dry_run};

  const model::StepCa& sc = e.platform.step_ca;
  if (!sc.url.present || !sc.provisioner_name.present || !sc.provisioner_password_file.present) {
    print_error(g,
                "step_ca needs url, provisioner_name and provisioner_password_file for Phoenix to "
                "issue certificates through step-ca's JWK provisioner");
    return kExitInvalid;
  }
  // Every guest that is not a template holds the root in its trust store; the channels first:
  // a guest Phoenix cannot reach is an error, and nothing changes.
  auto certs = deliver::certificate_deliveries(e, desired);
  GuestChannels opened(e);
  std::map<model::GuestId, guest::GuestChannel*> channels;
  for (const model::Guest& guest : e.guests) {
    bool has_cert =
        std::any_of(certs.begin(), certs.end(), [&](const auto& c) { return c.guest == guest.id; });
    if (!has_cert && guest.is_template.value) continue;
    auto ch = opened.get(guest.id);
    if (!ch) {
      print_error(g, ch.error().message());
      return channel_exit(ch.error());
    }
    channels[guest.id] = *ch;
  }

  // The CA, trusted through step_ca.fingerprint or the root in its own guest.
  const model::Guest* ca_guest = step_ca_guest(e);
  auto ca_options = step_ca_options(
      e, ca_guest && channels.contains(ca_guest->id) ? channels.at(ca_guest->id) : nullptr);
  auto authority = ca_options ? ca::make_step_ca(*ca_options)
                              : base::Result<std::unique_ptr<ca::CertificateAuthority>>(
                                    std::unexpected(ca_options.error()));
  if (!authority) {
    print_error(g, authority.error().message());
    return authority.error().kind() == base::ErrorKind::kTransient ? kExitPartial : kExitInvalid;
  }

  std::vector<Outcome> outcomes;
  auto now = static_cast<std::int64_t>(std::time(nullptr));
  for (const auto& c : certs) {
    outcomes.push_back({"certificate " + c.delivery.cert.name + " in " + e.guest(c.guest)->label(),
                        c.guest,
                        deliver::deliver_certificate(*channels.at(c.guest), **authority, c.delivery,
                                                     now, options)});
  }
  // The internal root into every guest's trust store, and where Traefik's serversTransport
  // reads it to verify HTTPS backends.
  auto root = (*authority)->root_pem();
  if (desired.traefik && channels.contains(desired.traefik->guest)) {
    std::string path =
        std::string(compile::Paths::kTraefikCertDir) + "/" + compile::Paths::kRootCaName;
    deliver::Report r;
    if (root) {
      r = deliver::deliver_root_file(*channels.at(desired.traefik->guest), path, *root,
                                     deliver::traefik_cert_reload(e), options);
    } else {
      r.name = "root";
      r.error = root.error();
    }
    outcomes.push_back({"backend root for " + e.guest(desired.traefik->guest)->label(),
                        desired.traefik->guest, std::move(r)});
  }
  for (auto& [id, ch] : channels) {
    std::string title = "trusted root in " + e.guest(id)->label();
    if (!root) {
      deliver::Report r;
      r.name = "trust";
      r.error = root.error();
      outcomes.push_back({title, id, std::move(r)});
      continue;
    }
    outcomes.push_back(
        {title, id, deliver::deliver_trust(*ch, *root, deliver::trust_update(e), options)});
  }
  return finish(g, "sync certs", outcomes);
}

}  // namespace phoenix::cli
