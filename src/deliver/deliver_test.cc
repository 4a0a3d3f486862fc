#include "deliver/deliver.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <random>

#include "base/fs.h"
#include "compile/desired.h"
#include "config/loader.h"
#include "deliver/targets.h"
#include "fakes/fake_guest.h"
#include "validate/validate.h"

namespace phoenix::deliver {
namespace {

namespace fs = std::filesystem;
using fakes::FakeGuest;

constexpr const char* kRecords = "/etc/dnsmasq.d/00-phoenix-internal.conf";
constexpr const char* kSite = "/etc/nginx/sites-available/phoenix-gateway";
constexpr const char* kStatic = "/etc/traefik/traefik.yml";
constexpr const char* kDynamic = "/etc/traefik/dynamic/dynamic_conf.yml";

DnsDelivery dns(std::string content) {
  DnsDelivery d;
  d.records = {kRecords, std::move(content), {}};
  d.reload = {"reload-dns"};
  return d;
}

TraefikDelivery traefik(std::string static_content, std::string dynamic_content) {
  TraefikDelivery t;
  t.static_config = {kStatic, std::move(static_content), {}};
  t.dynamic_config = {kDynamic, std::move(dynamic_content), {}};
  t.restart = {"restart-traefik"};
  return t;
}

GatewayDelivery gateway(std::string site) {
  GatewayDelivery g;
  g.site = {kSite, std::move(site), {}};
  g.test = {"nginx", "-t"};
  g.reload = {"reload-nginx"};
  g.needs = {"/etc/nginx/ssl/gw.crt", "/etc/nginx/ssl/gw.key"};
  return g;
}

std::vector<std::string> whats(const Report& r) {
  std::vector<std::string> out;
  for (const Step& s : r.steps) out.push_back(s.what);
  return out;
}

using Strings = std::vector<std::string>;

// A directory of its own for one test, removed when the test ends, however it ends.
struct TempDir {
  fs::path path = fs::temp_directory_path() /
                  ("phoenix-deliver-test-" + std::to_string(std::random_device{}()));
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

// ---- DNS ---------------------------------------------------------------------------------------

TEST(DeliverDns, WritesTheRecordsThenReloadsOnce) {
  FakeGuest host;
  Report r = deliver_dns(host, dns("address=/a.lan/10.0.0.1\n"));
  ASSERT_TRUE(r.ok()) << r.error->message();
  EXPECT_TRUE(r.changed);
  EXPECT_EQ(host.files[kRecords], "address=/a.lan/10.0.0.1\n");
  EXPECT_EQ(host.specs[kRecords].mode, 0644u);
  EXPECT_EQ(host.runs, (std::vector<Strings>{{"reload-dns"}}));
  ASSERT_EQ(r.steps.size(), 2u);
  EXPECT_EQ(r.steps[0].what, "write");
  EXPECT_EQ(r.steps[0].detail, std::string(kRecords) + ": 1 record (new file)");
  EXPECT_EQ(r.steps[1].what, "run");
  EXPECT_EQ(r.steps[1].detail, "reload-dns: ok");
}

TEST(DeliverDns, UnchangedRecordsAreNeitherWrittenNorReloaded) {
  FakeGuest host;
  host.files[kRecords] = "address=/a.lan/10.0.0.1\n";
  Report r = deliver_dns(host, dns("address=/a.lan/10.0.0.1\n"));
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r.changed);
  EXPECT_EQ(host.writes, 0);
  EXPECT_TRUE(host.runs.empty());
  EXPECT_EQ(whats(r), Strings{"unchanged"});
}

TEST(DeliverDns, CountsAddedAndRemovedRecords) {
  FakeGuest host;
  host.files[kRecords] = "# old\naddress=/a.lan/10.0.0.1\naddress=/b.lan/10.0.0.2\n";
  Report r = deliver_dns(host, dns("# new\naddress=/a.lan/10.0.0.1\naddress=/c.lan/10.0.0.3\n"
                                   "address=/d.lan/10.0.0.4\n"));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.steps[0].detail, std::string(kRecords) + ": 3 records (2 added, 1 removed)");
}

TEST(DeliverDns, AFailedReloadPutsThePreviousRecordsBackAndReloadsThem) {
  FakeGuest host;
  const std::string old = "address=/a.lan/10.0.0.1\n";
  host.files[kRecords] = old;
  host.answers["reload-dns"] = {{1, "dnsmasq: failed to start\n"}};
  Report r = deliver_dns(host, dns("address=/b.lan/10.0.0.2\n"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(host.files[kRecords], old);
  EXPECT_EQ(host.runs_of("reload-dns"), 2);
  EXPECT_EQ(whats(r), (Strings{"write", "run", "restore", "run"}));
  EXPECT_EQ(r.error->message(),
            "reloading the DNS server failed: `reload-dns` exited with 1: dnsmasq: failed to "
            "start; the previous records file /etc/dnsmasq.d/00-phoenix-internal.conf is back in "
            "place and the DNS server was reloaded with it. Fix dns_server.reload or the DNS "
            "server, then run `phoenix sync dns` again");
}

TEST(DeliverDns, AFailedFirstReloadRemovesTheNewFile) {
  FakeGuest host;
  host.answers["reload-dns"] = {{1, ""}, {3, "still broken"}};
  Report r = deliver_dns(host, dns("address=/b.lan/10.0.0.2\n"));
  ASSERT_FALSE(r.ok());
  EXPECT_FALSE(host.files.contains(kRecords));
  EXPECT_EQ(whats(r), (Strings{"write", "run", "remove", "run"}));
  EXPECT_EQ(r.error->message(),
            "reloading the DNS server failed: `reload-dns` exited with 1; the new records file "
            "/etc/dnsmasq.d/00-phoenix-internal.conf is removed (there was none before), but "
            "reloading the DNS server with it failed too (`reload-dns` exited with 3: still "
            "broken): the DNS server may not be running. Fix dns_server.reload or the DNS "
            "server, then run `phoenix sync dns` again");
}

TEST(DeliverDns, WhenTheRecordsCannotBePutBackTheServerIsNotReloadedAgain) {
  FakeGuest host;
  host.files[kRecords] = "address=/a.lan/10.0.0.1\n";
  host.answers["reload-dns"] = {{1, ""}};
  host.fail_write = 2;
  Report r = deliver_dns(host, dns("address=/b.lan/10.0.0.2\n"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(host.runs_of("reload-dns"), 1);
  EXPECT_EQ(r.error->message(),
            "reloading the DNS server failed: `reload-dns` exited with 1; putting back the "
            "previous records file /etc/dnsmasq.d/00-phoenix-internal.conf failed too: cannot "
            "write /etc/dnsmasq.d/00-phoenix-internal.conf: read-only; the DNS server was not "
            "reloaded again. Fix dns_server.reload or the DNS server, then run `phoenix sync dns` "
            "again");
}

TEST(DeliverDns, AWriteThatFailsIsReportedAndNothingIsReloaded) {
  FakeGuest host;
  host.fail_write = 1;
  Report r = deliver_dns(host, dns("address=/b.lan/10.0.0.2\n"));
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(host.runs.empty());
  EXPECT_EQ(r.error->message(),
            "writing /etc/dnsmasq.d/00-phoenix-internal.conf in fake guest: cannot write "
            "/etc/dnsmasq.d/00-phoenix-internal.conf: read-only");
}

TEST(DeliverDns, DryRunWritesAndRunsNothing) {
  FakeGuest host;
  Report r = deliver_dns(host, dns("address=/a.lan/10.0.0.1\n"), {.dry_run = true});
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r.changed);
  EXPECT_EQ(host.writes, 0);
  EXPECT_TRUE(host.runs.empty());
  EXPECT_EQ(whats(r), (Strings{"would write", "would run"}));
}

// ---- Traefik -----------------------------------------------------------------------------------

TEST(DeliverTraefik, OnlyAStaticChangeRestartsAndThenExactlyOnce) {
  FakeGuest g;
  Report first = deliver_traefik(g, traefik("static: 1\n", "dynamic: 1\n"));
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(g.files[kStatic], "static: 1\n");
  EXPECT_EQ(g.files[kDynamic], "dynamic: 1\n");
  EXPECT_EQ(g.runs_of("restart-traefik"), 1);

  Report same = deliver_traefik(g, traefik("static: 1\n", "dynamic: 1\n"));
  EXPECT_FALSE(same.changed);
  EXPECT_EQ(g.writes, 2);
  EXPECT_EQ(g.runs_of("restart-traefik"), 1);
  EXPECT_EQ(whats(same), (Strings{"unchanged", "unchanged"}));

  Report dynamic_only = deliver_traefik(g, traefik("static: 1\n", "dynamic: 2\n"));
  ASSERT_TRUE(dynamic_only.ok());
  EXPECT_TRUE(dynamic_only.changed);
  EXPECT_EQ(g.writes, 3);
  EXPECT_EQ(g.runs_of("restart-traefik"), 1);
  EXPECT_EQ(whats(dynamic_only), (Strings{"write", "unchanged"}));

  Report static_only = deliver_traefik(g, traefik("static: 2\n", "dynamic: 2\n"));
  ASSERT_TRUE(static_only.ok());
  EXPECT_EQ(g.runs_of("restart-traefik"), 2);
  EXPECT_EQ(whats(static_only), (Strings{"unchanged", "write", "run"}));
}

TEST(DeliverTraefik, AFailedRestartPutsThePreviousStaticFileBack) {
  FakeGuest g;
  g.files[kStatic] = "static: 1\n";
  g.files[kDynamic] = "dynamic: 1\n";
  g.answers["restart-traefik"] = {{1, "Job for traefik.service failed."}};
  Report r = deliver_traefik(g, traefik("static: 2\n", "dynamic: 2\n"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(g.files[kStatic], "static: 1\n");
  EXPECT_EQ(g.files[kDynamic], "dynamic: 2\n");  // loaded on its own; it stays
  EXPECT_EQ(g.runs_of("restart-traefik"), 2);
  EXPECT_EQ(r.error->message(),
            "restarting Traefik failed: `restart-traefik` exited with 1: Job for "
            "traefik.service failed.; the previous static configuration /etc/traefik/traefik.yml "
            "is back in place and Traefik was restarted with it. Fix traefik.restart or Traefik "
            "in its guest, then run `phoenix sync gateways` again");
}

// Through the local channel, on disk: an unchanged file keeps its inode and modification time.
TEST(DeliverTraefik, UnchangedFilesKeepTheirInodeAndModificationTime) {
  TempDir tmp;
  const fs::path& root = tmp.path;
  auto channel = guest::local_guest(root.string());
  TraefikDelivery t = traefik("static: 1\n", "dynamic: 1\n");
  t.restart = {"true"};
  ASSERT_TRUE(deliver_traefik(*channel, t).ok());
  struct stat before_static {
  }, before_dynamic{}, after_static{}, after_dynamic{};
  ASSERT_EQ(::stat((root / "etc/traefik/traefik.yml").c_str(), &before_static), 0);
  ASSERT_EQ(::stat((root / "etc/traefik/dynamic/dynamic_conf.yml").c_str(), &before_dynamic), 0);
  EXPECT_EQ(before_static.st_mode & 07777, 0644u);

  t.restart = {"false"};  // would fail if it ran
  Report again = deliver_traefik(*channel, t);
  ASSERT_TRUE(again.ok()) << again.error->message();
  EXPECT_FALSE(again.changed);
  ASSERT_EQ(::stat((root / "etc/traefik/traefik.yml").c_str(), &after_static), 0);
  ASSERT_EQ(::stat((root / "etc/traefik/dynamic/dynamic_conf.yml").c_str(), &after_dynamic), 0);
  EXPECT_EQ(before_static.st_ino, after_static.st_ino);
  EXPECT_EQ(before_static.st_mtim.tv_nsec, after_static.st_mtim.tv_nsec);
  EXPECT_EQ(before_static.st_mtim.tv_sec, after_static.st_mtim.tv_sec);
  EXPECT_EQ(before_dynamic.st_ino, after_dynamic.st_ino);
  EXPECT_EQ(before_dynamic.st_mtim.tv_nsec, after_dynamic.st_mtim.tv_nsec);

  // A real failing restart: the previous static file comes back byte for byte.
  t.static_config.content = "static: 2\n";
  Report failed = deliver_traefik(*channel, t);
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(*base::read_file(root / "etc/traefik/traefik.yml"), "static: 1\n");
  // Only the two files are left in the watched directory: no temporary file.
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(root / "etc/traefik/dynamic")) {
    names.push_back(entry.path().filename().string());
  }
  EXPECT_EQ(names, Strings{"dynamic_conf.yml"});
}

// ---- the Nginx gateway -------------------------------------------------------------------------

TEST(DeliverGateway, WritesTestsThenReloads) {
  FakeGuest g;
  Report r = deliver_gateway(g, gateway("server {}\n"));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(g.runs, (std::vector<Strings>{{"nginx", "-t"}, {"reload-nginx"}}));
  Report again = deliver_gateway(g, gateway("server {}\n"));
  EXPECT_FALSE(again.changed);
  EXPECT_EQ(g.runs.size(), 2u);
}

TEST(DeliverGateway, AFailedTestRestoresTheSiteAndReloadsNothing) {
  FakeGuest g;
  g.files[kSite] = "server { old }\n";
  g.files["/etc/nginx/ssl/gw.crt"] = "certificate";
  g.answers["nginx"] = {{1,
                         "nginx: [emerg] cannot load certificate key \"/etc/nginx/ssl/gw.key\"\n"
                         "nginx: configuration file /etc/nginx/nginx.conf test failed\n"}};
  Report r = deliver_gateway(g, gateway("server { new }\n"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(g.files[kSite], "server { old }\n");
  EXPECT_EQ(g.runs, (std::vector<Strings>{{"nginx", "-t"}}));
  EXPECT_EQ(whats(r), (Strings{"write", "run", "restore"}));
  EXPECT_EQ(r.error->message(),
            "the new gateway site failed its test: `nginx -t` exited with 1: nginx: [emerg] "
            "cannot load certificate key \"/etc/nginx/ssl/gw.key\" nginx: configuration file "
            "/etc/nginx/nginx.conf test failed; /etc/nginx/ssl/gw.key is not in the guest; the "
            "previous site /etc/nginx/sites-available/phoenix-gateway is back in place, and "
            "nginx, not reloaded, keeps serving the configuration it has. Deliver the gateway's "
            "certificate and key first, then run `phoenix sync gateways` again");
}

TEST(DeliverGateway, AFailedReloadRestoresTheSiteAndReloadsIt) {
  FakeGuest g;
  g.files[kSite] = "server { old }\n";
  g.answers["reload-nginx"] = {{1, "nginx.service is not active, cannot reload."}};
  Report r = deliver_gateway(g, gateway("server { new }\n"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(g.files[kSite], "server { old }\n");
  EXPECT_EQ(g.runs, (std::vector<Strings>{{"nginx", "-t"}, {"reload-nginx"}, {"reload-nginx"}}));
  EXPECT_EQ(r.error->message(),
            "reloading nginx failed: `reload-nginx` exited with 1: nginx.service is not active, "
            "cannot reload.; the previous site /etc/nginx/sites-available/phoenix-gateway is back "
            "in place and nginx was reloaded with it. Fix nginx_gateway.reload or nginx in the "
            "gateway guest, then run `phoenix sync gateways` again");
}

TEST(DeliverGateway, EnablesTheSiteWhenItsLinkIsMissing) {
  FakeGuest g;
  g.files[kSite] = "server {}\n";
  GatewayDelivery d = gateway("server {}\n");
  d.enabled = "/etc/nginx/sites-enabled/phoenix-gateway";
  Report r = deliver_gateway(g, d);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r.changed);
  EXPECT_EQ(whats(r), (Strings{"unchanged", "link", "run", "run"}));
  ASSERT_EQ(g.runs.size(), 3u);
  EXPECT_EQ(g.runs[0][0], "sh");
  EXPECT_EQ(g.runs[0].back(), "make");
  g.answers["sh"] = {{3, ""}};  // the link is there now
  Report again = deliver_gateway(g, d);
  EXPECT_FALSE(again.changed);
  EXPECT_EQ(g.runs.size(), 4u);
}

TEST(DeliverGateway, TheLinkOfALocalGuestIsMadeBelowItsRootOnce) {
  TempDir tmp;
  auto channel = guest::local_guest(tmp.path.string());
  GatewayDelivery d = gateway("server {}\n");
  d.enabled = "/etc/nginx/sites-enabled/phoenix-gateway";
  d.test = {"true"};
  d.reload = {"true"};
  d.needs.clear();
  Report r = deliver_gateway(*channel, d);
  ASSERT_TRUE(r.ok()) << r.error->message();
  const fs::path link = tmp.path / "etc/nginx/sites-enabled/phoenix-gateway";
  ASSERT_TRUE(fs::is_symlink(link));
  EXPECT_EQ(fs::read_symlink(link), fs::path(kSite));
  Report again = deliver_gateway(*channel, d);
  EXPECT_FALSE(again.changed);
}

TEST(DeliverGateway, DryRunWritesAndRunsNothing) {
  FakeGuest g;
  Report r = deliver_gateway(g, gateway("server {}\n"), {.dry_run = true});
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(g.writes, 0);
  EXPECT_TRUE(g.runs.empty());
  EXPECT_EQ(whats(r), (Strings{"would write", "would run", "would run"}));
}

TEST(DeliverGateway, AProgramThatCannotRunFailsTheTest) {
  TempDir tmp;
  const fs::path& root = tmp.path;
  auto channel = guest::local_guest(root.string());
  GatewayDelivery d = gateway("server {}\n");
  d.test = {"/nonexistent/nginx", "-t"};
  d.needs.clear();
  Report r = deliver_gateway(*channel, d);
  ASSERT_FALSE(r.ok());
  EXPECT_FALSE(fs::exists(root / "etc/nginx/sites-available/phoenix-gateway"));
  EXPECT_EQ(r.error->message(),
            "the new gateway site failed its test: `/nonexistent/nginx -t` could not be run: "
            "cannot run /nonexistent/nginx: No such file or directory; the new site "
            "/etc/nginx/sites-available/phoenix-gateway is removed (there was none before), and "
            "nginx, not reloaded, keeps serving the configuration it has. Fix what the test "
            "reports (or nginx_gateway.test), then run `phoenix sync gateways` again");
}

// ---- what to deliver, from the estate -----------------------------------------------------------

std::unique_ptr<model::Estate> example() {
  config::DiskTree tree;
  auto r =
      config::load_estate({std::string(PHOENIX_SOURCE_DIR) + "/examples/estate/etc", {}, {}}, tree);
  validate::validate_estate(*r.estate, r.diags);
  EXPECT_FALSE(r.diags.has_errors());
  return std::move(r.estate);
}

TEST(DeliverTargets, DefaultsAndOverrides) {
  auto e = example();
  compile::Desired d = compile::compile_estate(*e, {.resources = false});

  DnsDelivery records = dns_delivery(*e, d);
  EXPECT_EQ(records.records.path, kRecords);
  EXPECT_EQ(records.reload, (Argv{"systemctl", "restart", "dnsmasq"}));
  EXPECT_NE(records.records.content.find("address=/qdrant.internal.thinkheads.ai/10.0.0.12\n"),
            std::string::npos);

  auto t = traefik_delivery(*e, d);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->guest, 102u);
  EXPECT_EQ(t->delivery.static_config.path, kStatic);
  EXPECT_EQ(t->delivery.dynamic_config.path, kDynamic);
  EXPECT_EQ(t->delivery.restart, default_traefik_restart());

  auto gw = gateway_delivery(*e, d);
  ASSERT_TRUE(gw);
  EXPECT_EQ(gw->guest, 101u);
  EXPECT_EQ(gw->delivery.site.path, kSite);
  EXPECT_EQ(gw->delivery.test, (Argv{"nginx", "-t"}));
  EXPECT_EQ(gw->delivery.reload, (Argv{"systemctl", "reload", "nginx"}));
  EXPECT_EQ(gw->delivery.needs,
            (Strings{"/etc/nginx/ssl/nginx-phoenix.crt", "/etc/nginx/ssl/nginx-phoenix.key"}));

  auto argv = [](std::initializer_list<const char*> words) {
    model::Argv a;
    a.present = true;
    for (const char* w : words) a.args.push_back({w, {}, true});
    return a;
  };
  e->platform.dns_server.records_file = {"/srv/lab/records.conf", {}, true};
  e->platform.dns_server.reload = argv({"kill", "-HUP", "42"});
  e->platform.nginx_gateway.test = argv({"nsenter", "-t", "7", "nginx", "-t"});
  e->platform.nginx_gateway.reload = argv({"nginx", "-s", "reload"});
  e->platform.traefik.restart = argv({"touch", "/tmp/restarted"});
  EXPECT_EQ(dns_delivery(*e, d).records.path, "/srv/lab/records.conf");
  EXPECT_EQ(dns_delivery(*e, d).reload, (Argv{"kill", "-HUP", "42"}));
  EXPECT_EQ(gateway_delivery(*e, d)->delivery.test, (Argv{"nsenter", "-t", "7", "nginx", "-t"}));
  EXPECT_EQ(gateway_delivery(*e, d)->delivery.reload, (Argv{"nginx", "-s", "reload"}));
  EXPECT_EQ(traefik_delivery(*e, d)->delivery.restart, (Argv{"touch", "/tmp/restarted"}));
}

TEST(DeliverDisplay, QuotesWordsAShellWouldSplit) {
  EXPECT_EQ(display({"nginx", "-g", "daemon off;", "it's", ""}),
            "nginx -g 'daemon off;' 'it'\\''s' ''");
}

}  // namespace
}  // namespace phoenix::deliver
