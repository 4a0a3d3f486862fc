#include "deliver/targets.h"

#include "render/render.h"

namespace phoenix::deliver {
namespace {

Argv argv_or(const model::Argv& configured, Argv fallback) {
  if (!configured.present || configured.args.empty()) return fallback;
  Argv out;
  for (const auto& a : configured.args) out.push_back(a.value);
  return out;
}

}  // namespace

Argv default_dns_reload() { return {"systemctl", "restart", "dnsmasq"}; }
Argv default_gateway_test() { return {"nginx", "-t"}; }
Argv default_gateway_reload() { return {"systemctl", "reload", "nginx"}; }
Argv default_traefik_restart() { return {"systemctl", "restart", "traefik"}; }

DnsDelivery dns_delivery(const model::Estate& estate, const compile::Desired& desired) {
  const model::DnsServer& dns = estate.platform.dns_server;
  DnsDelivery out;
  out.records.path =
      dns.records_file.present ? dns.records_file.value : compile::Paths::kDnsRecords;
  out.records.content = render::render_dnsmasq(desired);
  out.reload = argv_or(dns.reload, default_dns_reload());
  return out;
}

std::optional<GuestDelivery<TraefikDelivery>> traefik_delivery(const model::Estate& estate,
                                                               const compile::Desired& desired) {
  if (!desired.traefik) return std::nullopt;
  GuestDelivery<TraefikDelivery> out;
  out.guest = desired.traefik->guest;
  out.delivery.static_config.path = compile::Paths::kTraefikStatic;
  out.delivery.static_config.content = render::render_traefik_static(desired);
  out.delivery.dynamic_config.path = compile::Paths::kTraefikDynamic;
  out.delivery.dynamic_config.content = render::render_traefik_dynamic(desired);
  out.delivery.restart = argv_or(estate.platform.traefik.restart, default_traefik_restart());
  return out;
}

std::optional<GuestDelivery<GatewayDelivery>> gateway_delivery(const model::Estate& estate,
                                                               const compile::Desired& desired) {
  if (!desired.gateway) return std::nullopt;
  const compile::Gateway& g = *desired.gateway;
  GuestDelivery<GatewayDelivery> out;
  out.guest = g.guest;
  out.delivery.site.path = compile::Paths::kNginxSite;
  out.delivery.site.content = render::render_nginx_site(g);
  out.delivery.enabled = compile::Paths::kNginxSiteEnabled;
  const model::NginxGatewaySettings& settings = estate.platform.nginx_gateway;
  out.delivery.test = argv_or(settings.test, default_gateway_test());
  out.delivery.reload = argv_or(settings.reload, default_gateway_reload());
  for (const std::string* path : {&g.cert_path, &g.key_path}) {
    if (!path->empty()) out.delivery.needs.push_back(*path);
  }
  return out;
}

Argv default_trust_update() { return {"update-ca-certificates"}; }

Argv trust_update(const model::Estate& estate) {
  return argv_or(estate.platform.certificates.trust_update, default_trust_update());
}

Argv certificate_reload(const model::Estate& e) {
  return argv_or(e.platform.certificates.reload, {});
}

Argv traefik_cert_reload(const model::Estate& e) {
  if (e.platform.certificates.reload.present) return certificate_reload(e);
  return argv_or(e.platform.traefik.restart, default_traefik_restart());
}

std::vector<GuestDelivery<CertDelivery>> certificate_deliveries(const model::Estate& e,
                                                                const compile::Desired& d) {
  std::vector<GuestDelivery<CertDelivery>> out;
  auto in = [](const compile::Certificate& c, std::string_view dir) {
    return c.cert_path.starts_with(std::string(dir) + "/");
  };
  for (const compile::Certificate& c : d.certificates) {
    CertDelivery cd;
    cd.cert = c;
    if (in(c, compile::Paths::kNginxCertDir)) {
      cd.reload = argv_or(e.platform.nginx_gateway.reload, default_gateway_reload());
    } else if (in(c, compile::Paths::kTraefikCertDir)) {
      cd.reload = traefik_cert_reload(e);
    } else if (in(c, "/etc/docker/ssl")) {
      cd.reload = {"systemctl", "restart", "docker"};
    } else if (in(c, compile::Paths::kVllmCertDir)) {
      cd.reload = {"systemctl", "restart", "vllm"};
    }
    if (e.platform.certificates.reload.present) cd.reload = certificate_reload(e);
    out.push_back({c.guest, std::move(cd)});
  }
  return out;
}

}  // namespace phoenix::deliver
