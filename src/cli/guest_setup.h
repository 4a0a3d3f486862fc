#pragma once

// What runs inside guests (setup/), prepared for a set of guests and run one guest at a time:
// by `sync guests`, and by `create` once a guest has started. Preparing expands every recipe
// (its errors are the estate's, reported before anything runs), opens every channel and makes
// the artifacts; run() is safe to call for different guests from several threads.

#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <variant>
#include <vector>

#include "cli/context.h"
#include "cli/engines.h"
#include "deliver/deliver.h"
#include "features/recipe.h"
#include "setup/setup.h"

namespace phoenix::cli {

struct SetupSettings {
  bool no_health = false;
  double health_scale = 0;  // > 0: scales every health check's deadline
};

class GuestSetup {
 public:
  struct Work {
    std::vector<features::Plan> plans;
    std::vector<features::HealthCheck> health;
  };

  // The setup of `ids` (templates left out), or the exit code once the problem is reported.
  static std::variant<std::unique_ptr<GuestSetup>, int> prepare(
      const GlobalOptions& g, LoadedEstate& loaded, const std::vector<model::GuestId>& ids,
      const SetupSettings& settings);

  // Features, application script, health checks; the first failure.
  base::Result<void> run(const model::Guest& guest);

  bool changed() const;
  nlohmann::json actions_json(model::GuestId id) const;
  void print(const model::Guest& guest, const base::Result<void>& result) const;

 private:
  GuestSetup(const GlobalOptions& g, const model::Estate& e, const SetupSettings& settings)
      : g_(g), estate_(e), settings_(settings), channels_(e) {}

  // The artifacts and health options for one guest's run, the internal root fetched first when
  // it is needed and not had yet (the CA may have been set up by an earlier guest's run).
  std::pair<setup::Artifacts, setup::HealthOptions> artifacts_now(bool need_root);
  // step-ca, made on first use (its root may come from a guest set up earlier in this run).
  base::Result<ca::CertificateAuthority*> authority();
  // The guest's own certificates (cert, chain, key), issued or kept before its features run, so
  // that the services the recipes start find them (a docker_proxy engine, the gateway's site).
  setup::Report deliver_certificates(guest::GuestChannel& ch,
                                     const std::vector<deliver::CertDelivery>& certs,
                                     const setup::Options& opt);

  const GlobalOptions& g_;
  const model::Estate& estate_;
  SetupSettings settings_;
  GuestChannels channels_;
  std::map<model::GuestId, Work> work_;
  std::map<model::GuestId, guest::GuestChannel*> open_;
  setup::Artifacts artifacts_;
  guest::GuestChannel* ca_channel_ = nullptr;  // the CA's guest, where its root is read
  std::map<model::GuestId, std::vector<deliver::CertDelivery>> certs_;
  std::unique_ptr<ca::CertificateAuthority> authority_;
  setup::HealthOptions health_;
  std::unique_ptr<setup::Prober> prober_;
  mutable std::mutex mu_;
  std::map<model::GuestId, std::vector<setup::Report>> reports_;
};

}  // namespace phoenix::cli
