#pragma once

// What `sync dns` and `sync gateways` deliver, derived from the estate and its desired state
// without I/O: the rendered files (render/), where they go, and the commands that load them,
// each overridable in phoenix_hypervisor_config.json.

#include <optional>

#include "compile/desired.h"
#include "deliver/deliver.h"
#include "model/estate.h"

namespace phoenix::deliver {

// dnsmasq reads address= lines only when it starts (SIGHUP re-reads hosts files, never
// configuration files), so the default reload is a restart.
Argv default_dns_reload();       // systemctl restart dnsmasq
Argv default_gateway_test();     // nginx -t
Argv default_gateway_reload();   // systemctl reload nginx
Argv default_traefik_restart();  // systemctl restart traefik

// The records of every guest and routed host name (render_dnsmasq), for the host:
// dns_server.records_file (default compile::Paths::kDnsRecords), dns_server.reload.
DnsDelivery dns_delivery(const model::Estate& estate, const compile::Desired& desired);

template <class T>
struct GuestDelivery {
  model::GuestId guest = 0;
  T delivery;
};

// traefik.yml and dynamic_conf.yml for the Traefik guest (compile::Paths), traefik.restart.
// nullopt without a Traefik guest.
std::optional<GuestDelivery<TraefikDelivery>> traefik_delivery(const model::Estate& estate,
                                                               const compile::Desired& desired);

// The Nginx site for the gateway guest (compile::Paths::kNginxSite), needing its certificate and
// key; nginx_gateway.test and nginx_gateway.reload. nullopt without a gateway.
std::optional<GuestDelivery<GatewayDelivery>> gateway_delivery(const model::Estate& estate,
                                                               const compile::Desired& desired);

// Every certificate of the estate with its owner and the reload of the service that reads it:
// the gateway's by nginx_gateway.reload, Traefik's by traefik.restart, the Docker API's by
// restarting docker, vLLM's by restarting vllm; route backends' (/etc/phoenix/ssl) by nothing;
// certificates.reload, when given, replaces them all.
std::vector<GuestDelivery<CertDelivery>> certificate_deliveries(const model::Estate& estate,
                                                                const compile::Desired& desired);

Argv default_trust_update();  // update-ca-certificates
// certificates.trust_update, else the default.
Argv trust_update(const model::Estate& estate);
// certificates.reload as given (it replaces every certificate's own reload).
Argv certificate_reload(const model::Estate& estate);
// What reloads Traefik after a file it reads at start changed (its certificates, the internal
// root): certificates.reload when given, else traefik.restart, else the default.
Argv traefik_cert_reload(const model::Estate& estate);

}  // namespace phoenix::deliver
