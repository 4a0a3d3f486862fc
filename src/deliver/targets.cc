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
  const model::NginxGatewaySettings& settings = estate.platform.nginx_gateway;
  out.delivery.test = argv_or(settings.test, default_gateway_test());
  out.delivery.reload = argv_or(settings.reload, default_gateway_reload());
  for (const std::string* path : {&g.cert_path, &g.key_path}) {
    if (!path->empty()) out.delivery.needs.push_back(*path);
  }
  return out;
}

}  // namespace phoenix::deliver
