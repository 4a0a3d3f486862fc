#include "setup/setup.h"

#include <gtest/gtest.h>

#include <fstream>

#include "config/loader.h"
#include "fakes/fake_system.h"
#include "render/render.h"
#include "validate/validate.h"

namespace phoenix::setup {
namespace {

using features::AbsentStep;
using features::CommandStep;
using features::expand;
using features::FileContent;
using features::FileStep;
using features::LinkStep;
using features::PackagesStep;
using features::Plan;
using features::ServiceStep;
using Strings = std::vector<std::string>;

FileStep inline_file(std::string path, std::string content, unsigned mode = 0644) {
  FileStep f;
  f.path = std::move(path);
  f.content = {FileContent::Kind::kInline, std::move(content)};
  f.mode = mode;
  return f;
}

// A web server's recipe in small: a package, its site, a link, the default site gone, the
// service reloaded when the site changes, and a command that runs when the site changes.
Plan web(std::string site) {
  Plan p;
  p.feature = "web";
  p.steps.push_back(PackagesStep{{"nginx-light", "curl"}});
  p.steps.push_back(inline_file("/etc/nginx/sites-available/site", std::move(site)));
  p.steps.push_back(LinkStep{"/etc/nginx/sites-enabled/site", "/etc/nginx/sites-available/site"});
  p.steps.push_back(AbsentStep{"/etc/nginx/sites-enabled/default"});
  ServiceStep s;
  s.name = "nginx";
  s.reload = true;
  s.restart_on = {"/etc/nginx/sites-available/site"};
  p.steps.push_back(s);
  CommandStep c;
  c.name = "announce";
  c.run = {"announce", "site"};
  c.on_change = {"/etc/nginx/sites-available/site"};
  p.steps.push_back(c);
  return p;
}

// The marker a run leaves in the guest while a restart or command is owed for `path`.
std::string owed(const std::string& path) { return guest::owed_marker(path); }

fakes::FakeSystem debian() {
  fakes::FakeSystem sys;
  sys.available = {"nginx-light", "curl", "jq"};
  sys.installed = {"curl"};
  sys.files["/etc/nginx/sites-enabled/default"] = {"default site", {}};
  return sys;
}

TEST(ApplyFeatures, FirstRunConvergesSecondChangesNothing) {
  fakes::FakeSystem sys = debian();
  Report first = apply_features(sys, {web("server {}\n")}, {}, {});
  ASSERT_TRUE(first.ok()) << first.error->message();
  EXPECT_TRUE(first.changed);
  EXPECT_EQ(
      sys.changes(),
      (Strings{"env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "
               "--no-install-recommends nginx-light",
               "<write> " + owed("/etc/nginx/sites-available/site"),
               "<write> /etc/nginx/sites-available/site", "mkdir -p -- /etc/nginx/sites-enabled",
               "ln -sfn -- /etc/nginx/sites-available/site /etc/nginx/sites-enabled/site",
               "rm -f -- /etc/nginx/sites-enabled/default", "systemctl enable nginx",
               "systemctl start nginx", "announce site",
               "rm -f -- " + owed("/etc/nginx/sites-available/site")}));
  EXPECT_TRUE(sys.installed.contains("nginx-light"));
  EXPECT_EQ(sys.units["nginx"].starts, 1);

  sys.runs.clear();
  Report second = apply_features(sys, {web("server {}\n")}, {}, {});
  ASSERT_TRUE(second.ok());
  EXPECT_FALSE(second.changed);
  EXPECT_EQ(sys.changes(), Strings{});
  for (const Action& a : second.actions) EXPECT_EQ(a.what, "ok") << a.detail;
}

TEST(ApplyFeatures, AChangedInputReloadsItsServiceAndRunsItsCommandOnce) {
  fakes::FakeSystem sys = debian();
  ASSERT_TRUE(apply_features(sys, {web("a\n")}, {}, {}).ok());
  sys.runs.clear();
  Report r = apply_features(sys, {web("b\n")}, {}, {});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(sys.changes(),
            (Strings{"<write> " + owed("/etc/nginx/sites-available/site"),
                     "<write> /etc/nginx/sites-available/site", "systemctl reload nginx",
                     "announce site", "rm -f -- " + owed("/etc/nginx/sites-available/site")}));
  EXPECT_EQ(sys.units["nginx"].reloads, 1);
  EXPECT_EQ(sys.units["nginx"].restarts, 0);
}

// A run that changed the site and then failed before the reload (a lost answer, a 500) leaves
// the reload and the command owed: the next run, which finds the site right, still does them.
TEST(ApplyFeatures, WhatAChangedFileOwesSurvivesARunThatFailed) {
  fakes::FakeSystem sys = debian();
  ASSERT_TRUE(apply_features(sys, {web("a\n")}, {}, {}).ok());
  sys.fails = {"systemctl reload"};
  Report failed = apply_features(sys, {web("b\n")}, {}, {});
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.error->message(), "web: `systemctl reload nginx` exited with 1");
  EXPECT_EQ(sys.files["/etc/nginx/sites-available/site"].content, "b\n");
  EXPECT_EQ(sys.runs_count("announce"), 1) << "only the first run's";

  sys.fails.clear();
  sys.runs.clear();
  Report next = apply_features(sys, {web("b\n")}, {}, {});
  ASSERT_TRUE(next.ok()) << next.error->message();
  EXPECT_EQ(sys.changes(), (Strings{"systemctl reload nginx", "announce site",
                                    "rm -f -- " + owed("/etc/nginx/sites-available/site")}));
  bool said = false;
  for (const Action& a : next.actions) {
    said |= a.detail ==
            "nginx (/etc/nginx/sites-available/site changed in a run that did not "
            "finish)";
  }
  EXPECT_TRUE(said);

  sys.runs.clear();
  ASSERT_TRUE(apply_features(sys, {web("b\n")}, {}, {}).ok());
  EXPECT_EQ(sys.changes(), Strings{}) << "owed once, done once";
}

TEST(ApplyFeatures, AUnitChangeReloadsSystemdAndRestarts) {
  fakes::FakeSystem sys = debian();
  auto plan = [](std::string unit) {
    Plan p;
    p.feature = "svc";
    ServiceStep s;
    s.name = "thing";
    s.unit = inline_file("/etc/systemd/system/thing.service", std::move(unit));
    p.steps.push_back(s);
    return p;
  };
  ASSERT_TRUE(apply_features(sys, {plan("[Service]\nExecStart=/a\n")}, {}, {}).ok());
  EXPECT_EQ(sys.daemon_reloads, 1);
  EXPECT_EQ(sys.units["thing"].starts, 1);
  sys.runs.clear();
  ASSERT_TRUE(apply_features(sys, {plan("[Service]\nExecStart=/a\n")}, {}, {}).ok());
  EXPECT_EQ(sys.changes(), Strings{});
  ASSERT_TRUE(apply_features(sys, {plan("[Service]\nExecStart=/b\n")}, {}, {}).ok());
  EXPECT_EQ(sys.changes(), (Strings{"<write> " + owed("/etc/systemd/system/thing.service"),
                                    "<write> /etc/systemd/system/thing.service",
                                    "systemctl daemon-reload", "systemctl restart thing",
                                    "rm -f -- " + owed("/etc/systemd/system/thing.service")}));

  // The unit written, then the run lost: the next reloads systemd and restarts all the same.
  sys.fails = {"systemctl daemon-reload"};
  ASSERT_FALSE(apply_features(sys, {plan("[Service]\nExecStart=/c\n")}, {}, {}).ok());
  sys.fails.clear();
  sys.runs.clear();
  ASSERT_TRUE(apply_features(sys, {plan("[Service]\nExecStart=/c\n")}, {}, {}).ok());
  EXPECT_EQ(sys.changes(), (Strings{"systemctl daemon-reload", "systemctl restart thing",
                                    "rm -f -- " + owed("/etc/systemd/system/thing.service")}));
}

TEST(ApplyFeatures, OwnerAndModeDriftIsPutBack) {
  fakes::FakeSystem sys = debian();
  Plan p;
  p.feature = "secret";
  FileStep key = inline_file("/etc/app/key", "k\n", 0600);
  key.owner = "app";
  key.group = "app";
  p.steps.push_back(key);
  ASSERT_TRUE(apply_features(sys, {p}, {}, {}).ok());
  sys.files["/etc/app/key"].spec.mode = 0644;  // by hand
  sys.runs.clear();
  Report r = apply_features(sys, {p}, {}, {});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(sys.changes(), (Strings{"chown -- app:app /etc/app/key", "chmod -- 600 /etc/app/key"}));
  EXPECT_EQ(r.actions.back().detail, "/etc/app/key (app:app:644 -> app:app:600)");
  EXPECT_EQ(sys.files["/etc/app/key"].spec.mode, 0600u);
}

TEST(ApplyFeatures, CommandsLookBeforeTheyRun) {
  fakes::FakeSystem sys = debian();
  Plan p;
  p.feature = "cmds";
  CommandStep creates{"init", {"init-db"}, {}, "/var/lib/db/ready", {}};
  CommandStep unless{"add user", {"useradd", "app"}, {"id", "-u", "app"}, "", {}};
  p.steps = {creates, unless};
  sys.fails = {"id"};  // no such user yet
  ASSERT_TRUE(apply_features(sys, {p}, {}, {}).ok());
  EXPECT_EQ(sys.changes(), (Strings{"init-db", "id -u app", "useradd app"}));
  sys.files["/var/lib/db/ready"] = {};
  sys.fails.clear();
  sys.runs.clear();
  ASSERT_TRUE(apply_features(sys, {p}, {}, {}).ok());
  EXPECT_EQ(sys.changes(), (Strings{"id -u app"}));  // the check alone: nothing ran
}

TEST(ApplyFeatures, DryRunChangesNothing) {
  fakes::FakeSystem sys = debian();
  Report r = apply_features(sys, {web("a\n")}, {}, {.dry_run = true});
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r.changed);
  EXPECT_EQ(sys.changes(), Strings{});
  EXPECT_FALSE(sys.installed.contains("nginx-light"));
  EXPECT_FALSE(sys.files.contains("/etc/nginx/sites-available/site"));
}

TEST(ApplyFeatures, FailuresStopAndSayWhy) {
  fakes::FakeSystem sys = debian();
  Plan p;
  p.feature = "broken";
  p.steps.push_back(PackagesStep{{"no-such-package"}});
  p.steps.push_back(inline_file("/etc/never", "x"));
  Report r = apply_features(sys, {p}, {}, {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error->message(),
            "broken: `env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "
            "--no-install-recommends no-such-package` exited with 100");
  EXPECT_FALSE(sys.files.contains("/etc/never")) << "nothing after a failure";

  Plan a;
  a.feature = "trusted_ca";
  FileStep root;
  root.path = "/usr/local/share/ca-certificates/phoenix-root.crt";
  root.content = {FileContent::Kind::kArtifact, "root_ca"};
  a.steps.push_back(root);
  Artifacts artifacts;
  artifacts.unavailable["root_ca"] = "step-ca did not answer";
  Report missing = apply_features(sys, {a}, artifacts, {});
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error->message(),
            "trusted_ca: the recipe needs the internal root CA (step_ca.url and fingerprint must "
            "reach it), which Phoenix could not get: step-ca did not answer");
  artifacts.files["root_ca"] = "PEM";
  ASSERT_TRUE(apply_features(sys, {a}, artifacts, {}).ok());
  EXPECT_EQ(sys.files[root.path].content, "PEM");

  Plan h;
  h.feature = "traefik";
  FileStep bin;
  bin.path = "/usr/local/bin/traefik";
  bin.content = {FileContent::Kind::kHostFile, "/nonexistent/phoenix/traefik"};
  h.steps.push_back(bin);
  Report host = apply_features(sys, {h}, {}, {});
  ASSERT_FALSE(host.ok());
  EXPECT_TRUE(host.error->message().starts_with(
      "traefik: cannot read /nonexistent/phoenix/traefik on this machine ("))
      << host.error->message();
}

TEST(ApplicationScript, RunsOncePerContentAndAgainAfterAFailure) {
  fakes::FakeSystem sys = debian();
  Report first = run_application_script(sys, "setup.sh", "#!/bin/sh\necho hi\n", {});
  ASSERT_TRUE(first.ok());
  EXPECT_TRUE(first.changed);
  EXPECT_EQ(sys.files["/usr/local/lib/phoenix/setup.sh"].spec.mode, 0755u);
  EXPECT_EQ(sys.runs_count("/usr/local/lib/phoenix/setup.sh"), 1);
  EXPECT_TRUE(sys.files.contains("/var/log/phoenix/application_script.log"));

  Report again = run_application_script(sys, "setup.sh", "#!/bin/sh\necho hi\n", {});
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again.changed);
  EXPECT_EQ(sys.runs_count("/usr/local/lib/phoenix/setup.sh"), 1);

  sys.fails = {"/usr/local/lib/phoenix/setup.sh"};
  Report failed = run_application_script(sys, "setup.sh", "#!/bin/sh\nexit 1\n", {});
  ASSERT_FALSE(failed.ok());
  EXPECT_TRUE(failed.error->message().starts_with("application script setup.sh: exited with 1"))
      << failed.error->message();
  sys.fails.clear();
  Report retried = run_application_script(sys, "setup.sh", "#!/bin/sh\nexit 1\n", {});
  ASSERT_TRUE(retried.ok());
  EXPECT_TRUE(retried.changed) << "a failed run is not remembered as done";
  EXPECT_EQ(sys.runs_count("/usr/local/lib/phoenix/setup.sh"), 3);
}

class FlakyProber final : public Prober {
 public:
  int failures_left = 0;
  int calls = 0;
  std::optional<std::string> http(const features::HealthCheck&, const std::string&) override {
    ++calls;
    if (failures_left > 0) {
      --failures_left;
      return "connection refused";
    }
    return std::nullopt;
  }
  std::optional<std::string> tcp(const std::string&, int) override { return http({}, ""); }
};

TEST(Health, PolledUntilItPassesOrItsDeadline) {
  fakes::FakeSystem sys = debian();
  FlakyProber prober;
  prober.failures_left = 3;
  features::HealthCheck http;
  http.name = "api";
  http.kind = features::HealthCheck::Kind::kHttps;
  http.deadline = std::chrono::seconds(30);
  HealthOptions fast;
  fast.first_poll = std::chrono::milliseconds(1);
  fast.max_poll = std::chrono::milliseconds(2);
  Report ok = wait_healthy(sys, {http}, prober, fast);
  ASSERT_TRUE(ok.ok()) << ok.error->message();
  EXPECT_EQ(prober.calls, 4);

  features::HealthCheck cmd;
  cmd.name = "nginx -t";
  cmd.kind = features::HealthCheck::Kind::kCommand;
  cmd.argv = {"nginx", "-t"};
  cmd.deadline = std::chrono::seconds(1);
  sys.fails = {"nginx"};
  fast.deadline_scale = 0.05;
  Report bad = wait_healthy(sys, {cmd}, prober, fast);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error->message(),
            "health check \"nginx -t\" did not pass within 50 ms: `nginx -t` exited with 1");
  EXPECT_GE(sys.runs_count("nginx"), 2);
}

// What the GPU guest of the example (801: nvidia, vllm) would get. Neither the NVIDIA driver
// nor vLLM on a GPU can run here: this is the exact list of commands and files, on a fake
// Debian system.
TEST(GpuGuest, ExactCommandsAndFilesOfNvidiaAndVllm) {
  config::DiskTree tree;
  auto loaded =
      config::load_estate({std::string(PHOENIX_SOURCE_DIR) + "/examples/estate/etc", {}, {}}, tree);
  validate::validate_estate(*loaded.estate, loaded.diags);
  ASSERT_FALSE(loaded.diags.has_errors());
  model::Estate& e = *loaded.estate;
  compile::Desired d = compile::compile_estate(e, {.resources = false});
  const model::Guest& gpu = *e.guest(801);
  base::Diagnostics diags;
  features::RecipeBook book = features::builtin_recipes(e.sources, diags);
  features::Variables vars = features::guest_variables(e, d, gpu);
  std::string runfile = testing::TempDir() + "/NVIDIA-Linux-x86_64-580.76.05.run";
  { std::ofstream(runfile) << "#!/bin/sh\n# the driver's installer\n"; }
  vars["nvidia.runfile"] = runfile;
  std::vector<Plan> plans;
  for (const char* f : {"nvidia", "vllm"}) plans.push_back(expand(*book.find(f), vars, diags));
  ASSERT_EQ(diags.all().size(), 0u);
  Artifacts artifacts;
  ASSERT_EQ(d.vllm.size(), 1u);
  artifacts.files["/etc/systemd/system/vllm.service"] = render::render_vllm_unit(d.vllm[0]);

  fakes::FakeSystem sys;
  sys.available = {"python3-venv", "python3-pip"};
  sys.fails = {"sh", "/opt/vllm/bin/python"};  // no driver yet, no vLLM yet
  Report r = apply_features(sys, plans, artifacts, {});
  ASSERT_TRUE(r.ok()) << r.error->message();
  EXPECT_EQ(sys.changes(),
            (Strings{"<write> /usr/local/lib/phoenix/NVIDIA-Linux-x86_64-580.76.05.run",
                     "/usr/local/lib/phoenix/NVIDIA-Linux-x86_64-580.76.05.run --silent "
                     "--no-kernel-module --no-questions --ui=none --no-nouveau-check --no-x-check",
                     "env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "
                     "--no-install-recommends python3-venv python3-pip",
                     "python3 -m venv /opt/vllm",
                     "/opt/vllm/bin/python -c import importlib.metadata as m, sys; "
                     "sys.exit(m.version('vllm') != sys.argv[1]) 0.11.0",
                     "/opt/vllm/bin/pip install --no-input vllm==0.11.0",
                     "<write> " + owed("/etc/systemd/system/vllm.service"),
                     "<write> /etc/systemd/system/vllm.service", "systemctl daemon-reload",
                     "systemctl enable vllm", "systemctl start vllm",
                     "rm -f -- " + owed("/etc/systemd/system/vllm.service")}));
  EXPECT_EQ(sys.files["/usr/local/lib/phoenix/NVIDIA-Linux-x86_64-580.76.05.run"].spec.mode, 0755u);
  const std::string& unit = sys.files["/etc/systemd/system/vllm.service"].content;
  EXPECT_NE(unit.find("ExecStart=/opt/vllm/bin/vllm serve ibm-granite/granite-embedding-english-r2 "
                      "--host 0.0.0.0 --port 8000"),
            std::string::npos)
      << unit;
  EXPECT_NE(unit.find(" --trust-remote-code "), std::string::npos) << "true flags are bare";
  EXPECT_NE(unit.find("--ssl-certfile /etc/vllm/ssl/granite-embedding.crt"), std::string::npos)
      << "vLLM serves with its own certificate";
  // Its health: the OpenAI-compatible API over HTTPS, on the guest's address.
  std::vector<std::string> urls;
  for (const Plan& p : plans) {
    for (const auto& h : p.health) urls.push_back(h.url.empty() ? base::join(h.argv, " ") : h.url);
  }
  EXPECT_EQ(urls, (Strings{"nvidia-smi -L", "https://10.0.0.141:8000/health",
                           "https://10.0.0.141:8000/v1/models"}));
}

}  // namespace
}  // namespace phoenix::setup
