#include "setup/setup.h"

#include <algorithm>
#include <cstdio>
#include <set>
#include <thread>

#include "base/fs.h"
#include "base/hash.h"
#include "base/strings.h"

namespace phoenix::setup {
namespace {

using base::ErrorKind;
using features::AbsentStep;
using features::CommandStep;
using features::FileContent;
using features::FileStep;
using features::LinkStep;
using features::PackagesStep;
using features::ServiceStep;

constexpr const char* kScriptDir = "/usr/local/lib/phoenix";
// Files larger than this are compared through `sha256sum` in the guest.
constexpr std::size_t kCompareByHash = 256 * 1024;
constexpr const char* kScriptHash = "/var/lib/phoenix/application_script.sha256";
constexpr const char* kScriptLog = "/var/log/phoenix/application_script.log";
// The owed markers (guest::kOwedDir) of changed paths hold the path, and go once a whole run
// has acted on the change. This lists their contents.
using guest::kOwedDir;
constexpr const char* kListOwed =
    "for f in \"$1\"/*; do [ -f \"$f\" ] && cat -- \"$f\"; done; exit 0";

std::string tail(std::string text, std::size_t n = 600) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  if (text.size() > n) text = "..." + text.substr(text.size() - n);
  return text;
}

std::string octal(unsigned mode) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%o", mode & 07777);
  return buf;
}

// One guest's run: what changed so far (for restart_on and on_change), and the report.
class Applier {
 public:
  Applier(guest::GuestChannel& guest, const std::vector<features::Plan>& plans,
          const Artifacts& artifacts, const Options& options)
      : guest_(guest), artifacts_(artifacts), options_(options) {
    for (const features::Plan& plan : plans) {
      for (const features::Step& step : plan.steps) {
        if (const auto* s = std::get_if<ServiceStep>(&step)) {
          if (s->unit) watched_.insert(s->unit->path);
          watched_.insert(s->restart_on.begin(), s->restart_on.end());
        } else if (const auto* c = std::get_if<CommandStep>(&step)) {
          watched_.insert(c->on_change.begin(), c->on_change.end());
        }
      }
    }
  }

  void apply(const features::Plan& plan) {
    feature_ = plan.feature;
    for (const features::Step& step : plan.steps) {
      if (report_.error) return;
      std::visit([this](const auto& s) { this->step(s); }, step);
    }
  }

  // After every plan: what a restart or command was owed for has been acted on, so its marker
  // goes (only when the whole run succeeded).
  Report take() {
    if (!report_.error && !options_.dry_run) {
      std::vector<std::string> argv{"rm", "-f", "--"};
      for (const std::string& p : watched_) {
        if (owed_marked_.contains(p) || (owed_ && owed_->contains(p)))
          argv.push_back(guest::owed_marker(p));
      }
      if (argv.size() > 3) {
        feature_ = "owed";
        act(argv);
      }
    }
    return std::move(report_);
  }

 private:
  // ---- reporting --------------------------------------------------------------------------

  void record(std::string what, std::string detail, bool changed) {
    if (changed) {
      report_.changed = true;
      if (options_.progress) options_.progress(feature_ + ": " + what + " " + detail);
    }
    report_.actions.push_back({feature_, std::move(what), std::move(detail), changed});
  }
  void fail(ErrorKind kind, std::string message) {
    report_.error = base::Error(kind, feature_ + ": " + message);
  }
  void fail(const base::Error& e, const std::string& what) {
    report_.error = base::Error(e.kind(), feature_ + ": " + what + ": " + e.message());
  }

  // Runs a command that reads (sent again where the channel cannot tell whether it ran);
  // nullopt (and the failure recorded) when it could not run.
  std::optional<base::ProcessResult> look(const std::vector<std::string>& argv) {
    auto r = guest_.run_repeatable(argv, {});
    if (!r) {
      fail(r.error(), "running " + base::join(argv, " "));
      return std::nullopt;
    }
    return std::move(*r);
  }

  // Runs a command that changes the guest (not in a dry run); false once it failed.
  bool act(const std::vector<std::string>& argv, std::string_view input = {}) {
    if (options_.dry_run) return true;
    auto r = guest_.run(argv, input);
    if (!r) {
      fail(r.error(), "running " + base::join(argv, " "));
      return false;
    }
    if (!r->ok()) {
      std::string err = tail(r->err.empty() ? r->out : r->err);
      fail(ErrorKind::kInternal, "`" + base::join(argv, " ") + "` exited with " +
                                     std::to_string(r->exit_code) +
                                     (err.empty() ? "" : ": " + err));
      return false;
    }
    return true;
  }

  // Whether `path` changed in this run, or in an earlier one that failed before acting on it.
  bool changed_path(const std::string& path) {
    if (changed_.contains(path)) return true;
    if (!owed_) {
      auto r = look({"sh", "-c", kListOwed, "sh", kOwedDir});
      if (!r) return false;
      if (!r->ok()) {
        fail(ErrorKind::kInternal, std::string("listing ") + kOwedDir + " exited with " +
                                       std::to_string(r->exit_code) + ": " + tail(r->err));
        return false;
      }
      owed_.emplace();
      for (const std::string& line : base::split(r->out, '\n')) {
        if (!line.empty()) owed_->insert(line);
      }
    }
    return owed_->contains(path);
  }

  // Called before `path` changes: when something acts on its change, the marker says so to
  // the next run should this one fail before it acts.
  bool mark_owed(const std::string& path) {
    if (options_.dry_run || !watched_.contains(path) || owed_marked_.contains(path)) return true;
    if (auto w = guest_.write_file(guest::owed_marker(path), path + "\n", {"root", "root", 0644});
        !w) {
      fail(w.error(), "writing " + guest::owed_marker(path));
      return false;
    }
    owed_marked_.insert(path);
    return true;
  }

  // ---- steps ------------------------------------------------------------------------------

  void step(const PackagesStep& p) {
    std::vector<std::string> argv{"dpkg-query", "-W", "-f=${Package} ${db:Status-Abbrev}\\n"};
    argv.insert(argv.end(), p.names.begin(), p.names.end());
    auto r = look(argv);
    if (!r) return;
    std::set<std::string> installed;
    for (const std::string& line : base::split(r->out, '\n')) {
      auto parts = base::split(line, ' ');
      if (parts.size() >= 2 && parts[1].starts_with("ii")) installed.insert(parts[0]);
    }
    std::vector<std::string> missing;
    for (const std::string& n : p.names) {
      if (!installed.contains(n)) missing.push_back(n);
    }
    if (missing.empty()) {
      record("ok", "packages " + base::join(p.names, " "), false);
      return;
    }
    std::vector<std::string> install{
        "env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y",
        "-q",  "--no-install-recommends"};
    install.insert(install.end(), missing.begin(), missing.end());
    if (!act(install)) return;
    record("install", base::join(missing, " "), true);
  }

  std::optional<std::string> content_of(const FileContent& c) {
    switch (c.kind) {
      case FileContent::Kind::kInline:
        return c.text;
      case FileContent::Kind::kArtifact: {
        auto it = artifacts_.files.find(c.text);
        if (it == artifacts_.files.end()) {
          auto why = artifacts_.unavailable.find(c.text);
          fail(ErrorKind::kInvalidInput,
               "the recipe needs " + artifact_description(c.text) +
                   (why == artifacts_.unavailable.end()
                        ? ", which Phoenix does not have"
                        : ", which Phoenix could not get: " + why->second));
          return std::nullopt;
        }
        return it->second;
      }
      case FileContent::Kind::kHostFile: {
        auto text = base::read_file(c.text);
        if (!text) {
          fail(ErrorKind::kInvalidInput, "cannot read " + c.text + " on this machine (" +
                                             text.error().message() +
                                             "); put the file there or point guest_features at it");
          return std::nullopt;
        }
        return std::move(*text);
      }
    }
    return std::nullopt;
  }

  static std::string artifact_description(const std::string& name) {
    if (name == "root_ca")
      return "the internal root CA (step_ca.url and fingerprint must reach it)";
    if (name == "step_ca_password") {
      return "the step-ca provisioner password (step_ca.provisioner_password_file)";
    }
    return "the rendered " + name;
  }

  // Writes the file when its content differs, then fixes owner and mode when they differ.
  // Returns whether anything changed; nullopt on failure.
  std::optional<bool> put(const FileStep& f) {
    auto content = content_of(f.content);
    if (!content) return std::nullopt;
    guest::FileSpec spec{f.owner, f.group, f.mode};
    bool same = false;
    std::optional<std::size_t> current_size;
    if (content->size() > kCompareByHash) {
      // A big file (a program) is compared by its hash in the guest, not read back.
      auto r = look({"sha256sum", "--", f.path});
      if (!r) return std::nullopt;
      if (r->ok()) {
        current_size = 0;
        same = r->out.substr(0, 64) == base::sha256_hex(*content);
      }
    } else {
      auto current = guest_.read_file(f.path);
      if (!current && current.error().kind() != ErrorKind::kNotFound) {
        fail(current.error(), "reading " + f.path);
        return std::nullopt;
      }
      if (current) {
        current_size = current->size();
        same = *current == *content;
      }
    }
    if (!same) {
      if (!mark_owed(f.path)) return std::nullopt;
      if (!options_.dry_run) {
        if (auto w = guest_.write_file(f.path, *content, spec); !w) {
          fail(w.error(), "writing " + f.path);
          return std::nullopt;
        }
      }
      std::string was = !current_size ? ", new file"
                        : content->size() > kCompareByHash
                            ? ", was different"
                            : ", was " + std::to_string(*current_size);
      record("write", f.path + " (" + std::to_string(content->size()) + " bytes" + was + ")", true);
      changed_.insert(f.path);
      return true;
    }
    auto st = look({"stat", "-c", "%U:%G:%a", "--", f.path});
    if (!st) return std::nullopt;
    std::string want = f.owner + ":" + f.group + ":" + octal(f.mode);
    std::string have = tail(st->out);
    if (st->ok() && have == want) return false;
    if (!mark_owed(f.path)) return std::nullopt;
    if (!act({"chown", "--", f.owner + ":" + f.group, f.path}) ||
        !act({"chmod", "--", octal(f.mode), f.path})) {
      return std::nullopt;
    }
    record("fix", f.path + " (" + have + " -> " + want + ")", true);
    changed_.insert(f.path);
    return true;
  }

  void step(const FileStep& f) {
    auto changed = put(f);
    if (changed && !*changed) record("ok", f.path, false);
  }

  void step(const LinkStep& l) {
    auto r = look({"readlink", "--", l.path});
    if (!r) return;
    if (r->ok() && tail(r->out) == l.target) {
      record("ok", l.path + " -> " + l.target, false);
      return;
    }
    std::string dir = l.path.substr(0, l.path.rfind('/'));
    if (!mark_owed(l.path)) return;
    if (!dir.empty() && !act({"mkdir", "-p", "--", dir})) return;
    if (!act({"ln", "-sfn", "--", l.target, l.path})) return;
    record("link", l.path + " -> " + l.target, true);
    changed_.insert(l.path);
  }

  void step(const AbsentStep& a) {
    auto r = look({"sh", "-c", "[ -e \"$1\" ] || [ -L \"$1\" ]", "sh", a.path});
    if (!r) return;
    if (!r->ok()) {
      record("ok", a.path + " is absent", false);
      return;
    }
    if (!mark_owed(a.path)) return;
    if (!act({"rm", "-f", "--", a.path})) return;
    record("remove", a.path, true);
    changed_.insert(a.path);
  }

  void daemon_reload_if_needed() {
    std::vector<std::string> units;
    for (const std::string& p : changed_) {
      if (p.starts_with("/etc/systemd/system/") && !reloaded_units_.contains(p)) units.push_back(p);
    }
    for (const std::string& p : watched_) {
      if (p.starts_with("/etc/systemd/system/") && !reloaded_units_.contains(p) &&
          !changed_.contains(p) && changed_path(p)) {
        units.push_back(p);
      }
    }
    if (units.empty() || report_.error) return;
    if (!act({"systemctl", "daemon-reload"})) return;
    reloaded_units_.insert(units.begin(), units.end());
    record("daemon-reload", "systemd", true);
  }

  // Why `path` counts as changed, for the report.
  std::string changed_because(const std::string& path) const {
    return path + (changed_.contains(path) ? " changed" : " changed in a run that did not finish");
  }

  void step(const ServiceStep& s) {
    bool unit_changed = false;
    if (s.unit) {
      auto changed = put(*s.unit);
      if (!changed) return;
      unit_changed = *changed || changed_path(s.unit->path);
    }
    daemon_reload_if_needed();
    if (report_.error) return;
    if (s.enable) {
      auto r = look({"systemctl", "is-enabled", s.name});
      if (!r) return;
      std::string state = tail(r->out);
      if (state != "enabled" && state != "static" && state != "alias") {
        if (!act({"systemctl", "enable", s.name})) return;
        record("enable", s.name, true);
      }
    }
    auto active = look({"systemctl", "is-active", "--quiet", s.name});
    if (!active) return;
    if (!active->ok()) {
      if (!act({"systemctl", "start", s.name})) return;
      record("start", s.name, true);
      return;
    }
    std::vector<std::string> why;
    if (unit_changed) why.push_back("its unit " + changed_because(s.unit->path));
    for (const std::string& p : s.restart_on) {
      if (changed_path(p)) why.push_back(changed_because(p));
    }
    if (report_.error) return;
    if (why.empty()) {
      record("ok", s.name + " is running", false);
      return;
    }
    const char* verb = s.reload && !unit_changed ? "reload" : "restart";
    if (!act({"systemctl", verb, s.name})) return;
    record(verb, s.name + " (" + base::join(why, ", ") + ")", true);
  }

  void step(const CommandStep& c) {
    if (!c.creates.empty()) {
      auto r = look({"test", "-e", c.creates});
      if (!r) return;
      if (r->ok()) {
        record("ok", c.name + " (" + c.creates + " exists)", false);
        return;
      }
    }
    if (!c.on_change.empty() &&
        std::none_of(c.on_change.begin(), c.on_change.end(),
                     [&](const std::string& p) { return changed_path(p); })) {
      if (report_.error) return;
      record("ok", c.name + " (nothing it depends on changed)", false);
      return;
    }
    if (!c.unless.empty()) {
      auto r = look(c.unless);
      if (!r) return;
      if (r->ok()) {
        record("ok", c.name, false);
        return;
      }
    }
    if (!act(c.run)) return;
    record("run", c.name, true);
  }

  guest::GuestChannel& guest_;
  const Artifacts& artifacts_;
  const Options& options_;
  std::string feature_;
  std::set<std::string> changed_;
  std::set<std::string> reloaded_units_;
  std::set<std::string> watched_;              // paths whose change a later step acts on
  std::set<std::string> owed_marked_;          // markers this run wrote
  std::optional<std::set<std::string>> owed_;  // markers found in the guest, once looked at
  Report report_;
};

}  // namespace

Report apply_features(guest::GuestChannel& guest, const std::vector<features::Plan>& plans,
                      const Artifacts& artifacts, const Options& options) {
  Applier a(guest, plans, artifacts, options);
  for (const features::Plan& p : plans) a.apply(p);
  return a.take();
}

Report run_application_script(guest::GuestChannel& guest, const std::string& name,
                              const std::string& content, const Options& options) {
  Report report;
  auto record = [&](std::string what, std::string detail, bool changed) {
    report.changed |= changed;
    if (changed && options.progress) options.progress("application script: " + what + " " + detail);
    report.actions.push_back({"application script", std::move(what), std::move(detail), changed});
  };
  auto fail = [&](ErrorKind kind, std::string message) {
    report.error = base::Error(kind, "application script " + name + ": " + message);
    return report;
  };
  const std::string hash = base::sha256_hex(content);
  auto previous = guest.read_file(kScriptHash);
  if (!previous && previous.error().kind() != ErrorKind::kNotFound) {
    return fail(previous.error().kind(),
                "reading " + std::string(kScriptHash) + ": " + previous.error().message());
  }
  if (previous && tail(*previous) == hash) {
    record("ok", name + " ran with this content already", false);
    return report;
  }
  const std::string path = std::string(kScriptDir) + "/" + name;
  if (options.dry_run) {
    record("run", path + (previous ? " (its content changed)" : " (never run)"), true);
    return report;
  }
  if (auto w = guest.write_file(path, content, {"root", "root", 0755}); !w) {
    return fail(w.error().kind(), "writing " + path + ": " + w.error().message());
  }
  auto r = guest.run({path}, {});
  if (!r) return fail(r.error().kind(), "running " + path + ": " + r.error().message());
  std::string log =
      "$ " + path + "\n" + r->out + r->err + "exit " + std::to_string(r->exit_code) + "\n";
  if (auto w = guest.write_file(kScriptLog, log, {"root", "root", 0640}); !w) {
    return fail(w.error().kind(),
                "writing " + std::string(kScriptLog) + ": " + w.error().message());
  }
  record(
      "run",
      path + ": exit " + std::to_string(r->exit_code) + "; output:\n" + tail(r->out + r->err, 4000),
      true);
  if (!r->ok()) {
    return fail(ErrorKind::kInternal, "exited with " + std::to_string(r->exit_code) + ": " +
                                          tail(r->err.empty() ? r->out : r->err) +
                                          " (it runs again on the next run; its output is in " +
                                          kScriptLog + ")");
  }
  if (auto w = guest.write_file(kScriptHash, hash + "\n", {"root", "root", 0644}); !w) {
    return fail(w.error().kind(),
                "writing " + std::string(kScriptHash) + ": " + w.error().message());
  }
  return report;
}

Report wait_healthy(guest::GuestChannel& guest, const std::vector<features::HealthCheck>& checks,
                    Prober& prober, const HealthOptions& options) {
  Report report;
  using Clock = std::chrono::steady_clock;
  for (const features::HealthCheck& c : checks) {
    auto start = Clock::now();
    auto deadline =
        start + std::chrono::duration_cast<Clock::duration>(c.deadline * options.deadline_scale);
    auto poll = options.first_poll;
    std::optional<std::string> why;
    while (true) {
      switch (c.kind) {
        case features::HealthCheck::Kind::kHttp:
        case features::HealthCheck::Kind::kHttps:
          why = prober.http(c, options.ca_pem);
          break;
        case features::HealthCheck::Kind::kTcp:
          why = prober.tcp(c.address, c.port);
          break;
        case features::HealthCheck::Kind::kCommand: {
          auto r = guest.run_repeatable(c.argv, {});  // a check only reads
          if (!r) {
            why = r.error().message();
          } else if (!r->ok()) {
            why = "`" + base::join(c.argv, " ") + "` exited with " + std::to_string(r->exit_code) +
                  (tail(r->err + r->out).empty() ? "" : ": " + tail(r->err + r->out, 300));
          } else {
            why.reset();
          }
          break;
        }
      }
      if (!why || Clock::now() >= deadline) break;
      std::this_thread::sleep_for(std::min(
          poll, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now())));
      poll = std::min(poll * 2, options.max_poll);
    }
    auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
    if (why) {
      report.actions.push_back({"health", "failed", c.name + ": " + *why, false});
      auto limit = std::chrono::duration_cast<std::chrono::milliseconds>(c.deadline *
                                                                         options.deadline_scale);
      std::string within = limit < std::chrono::seconds(10)
                               ? std::to_string(limit.count()) + " ms"
                               : std::to_string(limit.count() / 1000) + " s";
      report.error =
          base::Error(ErrorKind::kTimeout, "health check \"" + c.name + "\" did not pass within " +
                                               within + ": " + *why);
      return report;
    }
    report.actions.push_back(
        {"health", "ok", c.name + " (" + std::to_string(took.count()) + " ms)", false});
  }
  return report;
}

}  // namespace phoenix::setup
