#pragma once

// What Phoenix installs and runs inside a guest, done: the guest's feature recipes (features/)
// applied step by step through its GuestChannel, its application script run once per change of
// its content, and its health checks polled until they pass. Every step looks before it acts,
// so a converged guest costs reads only and changes nothing.

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "base/error.h"
#include "features/recipe.h"
#include "providers/guest/channel.h"

namespace phoenix::setup {

// Files a recipe names by `artifact`: the internal root ("root_ca"), the step-ca password
// ("step_ca_password"), rendered files by their path in the guest. Reports show an artifact's
// size only, never its content.
struct Artifacts {
  std::map<std::string, std::string, std::less<>> files;
  // Those Phoenix could not make, with the reason, for the error of a recipe that needs one.
  std::map<std::string, std::string, std::less<>> unavailable;
};

struct Options {
  bool dry_run = false;
  // Progress, one line per change as it happens ("nginx: install nginx-light").
  std::function<void(const std::string&)> progress = {};
};

// One thing done (or, in a dry run, to be done) in the guest.
struct Action {
  std::string feature;  // "base_setup", "application script", "health"
  std::string what;     // install, write, fix, link, remove, daemon-reload, enable, start,
                        // restart, reload, run, skip, ok
  std::string detail;
  bool changed = false;
};

struct Report {
  std::vector<Action> actions;
  bool changed = false;
  std::optional<base::Error> error;  // the first failure; nothing after it was attempted
  bool ok() const { return !error; }
};

// Applies the plans in order. Host files (`from_host`) are read from this machine; artifacts
// come from `artifacts` (a missing one is an error naming what provides it).
Report apply_features(guest::GuestChannel& guest, const std::vector<features::Plan>& plans,
                      const Artifacts& artifacts, const Options& options);

// The application script: delivered to /usr/local/lib/phoenix/<name>, run once for each change
// of its content (its SHA-256 is kept in /var/lib/phoenix/application_script.sha256 after a
// successful run), with its output kept in /var/log/phoenix/application_script.log and in the
// report. A script that fails is run again next time.
Report run_application_script(guest::GuestChannel& guest, const std::string& name,
                              const std::string& content, const Options& options);

// Answers HTTP(S) and TCP health checks from this machine; `ca_pem` is the only trust anchor
// for HTTPS (the internal root). nullopt when the check passes, else why not.
class Prober {
 public:
  virtual ~Prober() = default;
  virtual std::optional<std::string> http(const features::HealthCheck& check,
                                          const std::string& ca_pem) = 0;
  virtual std::optional<std::string> tcp(const std::string& address, int port) = 0;
};
std::unique_ptr<Prober> curl_prober();

struct HealthOptions {
  std::string ca_pem;  // the internal root, for HTTPS checks
  std::chrono::milliseconds first_poll{250};
  std::chrono::milliseconds max_poll{2000};
  // Scales every check's deadline (tests shorten them; 1.0 in production).
  double deadline_scale = 1.0;
};

// Polls each check until it passes or its deadline passes; no fixed sleeps. The report has one
// action per check ("ok" with the time it took, or the last reason it failed).
Report wait_healthy(guest::GuestChannel& guest, const std::vector<features::HealthCheck>& checks,
                    Prober& prober, const HealthOptions& options);

}  // namespace phoenix::setup
