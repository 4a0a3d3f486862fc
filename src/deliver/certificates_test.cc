// Certificates delivered into a guest: issued when missing, kept while valid, renewed past two
// thirds of their lifetime, nothing installed when the CA fails, earlier files put back when a
// write fails. The CA here signs nothing: it has openssl make a self-signed certificate for the
// names asked, so that what the guest holds can be read back for real.

#include <gtest/gtest.h>

#include <ctime>

#include "base/process.h"
#include "deliver/deliver.h"
#include "fakes/fake_guest.h"

namespace phoenix::deliver {
namespace {

class OpensslCa final : public ca::CertificateAuthority {
 public:
  bool down = false;
  int issued = 0;
  int days = 90;

  base::Result<ca::IssuedCert> issue(const ca::CertRequest& request) override {
    if (down) {
      return base::fail(base::ErrorKind::kTransient,
                        "POST https://127.0.0.1:1/1.0/sign: connection refused");
    }
    std::string san;
    for (const std::string& n : request.sans) {
      san += (san.empty() ? "" : ",") + std::string(ca::is_ip_address(n) ? "IP:" : "DNS:") + n;
    }
    auto r = base::run_process(
        {"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-subj", "/CN=" + request.common_name, "-addext", "subjectAltName=" + san,
         "-days", std::to_string(days), "-keyout", "/dev/stdout", "-out", "/dev/stdout"});
    if (!r || !r->ok()) return base::fail(base::ErrorKind::kInternal, "openssl failed");
    ++issued;
    ca::IssuedCert c;
    auto cut = r->out.find("-----BEGIN CERTIFICATE-----");
    c.key_pem = r->out.substr(0, cut);
    c.cert_pem = r->out.substr(cut);
    c.chain_pem = "";
    c.serial = std::to_string(issued);
    return c;
  }
  std::string describe() const override { return "test CA"; }
  base::Result<std::string> root_pem() override { return std::string("root"); }
};

compile::Certificate gateway_cert() {
  compile::Certificate c;
  c.name = "gw";
  c.guest = 101;
  c.common_name = "gw.lan";
  c.sans = {"10.0.0.153", "gw.lan"};
  c.cert_path = "/etc/nginx/ssl/gw.crt";
  c.key_path = "/etc/nginx/ssl/gw.key";
  return c;
}

CertDelivery delivery() {
  CertDelivery d;
  d.cert = gateway_cert();
  d.owner = "www-data";
  d.group = "www-data";
  d.reload = {"systemctl", "reload", "nginx"};
  return d;
}

std::int64_t now() { return static_cast<std::int64_t>(std::time(nullptr)); }

TEST(DeliverCertificate, IssuesWhatIsMissingThenKeepsIt) {
  fakes::FakeGuest guest;
  OpensslCa ca;
  Report r = deliver_certificate(guest, ca, delivery(), now());
  ASSERT_TRUE(r.ok()) << r.error->message();
  EXPECT_EQ(r.steps.front().what, "issue");
  EXPECT_EQ(ca.issued, 1);
  ASSERT_TRUE(guest.files.contains("/etc/nginx/ssl/gw.crt"));
  EXPECT_TRUE(guest.files.contains("/etc/nginx/ssl/gw.chain.crt"));
  EXPECT_NE(guest.files["/etc/nginx/ssl/gw.key"].find("PRIVATE KEY"), std::string::npos);
  EXPECT_EQ(guest.specs["/etc/nginx/ssl/gw.key"].mode, 0600u);
  EXPECT_EQ(guest.specs["/etc/nginx/ssl/gw.key"].owner, "www-data");
  EXPECT_EQ(guest.specs["/etc/nginx/ssl/gw.crt"].mode, 0644u);
  EXPECT_EQ(guest.runs_of("systemctl"), 1);

  int writes = guest.writes;
  Report again = deliver_certificate(guest, ca, delivery(), now());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again.steps.front().what, "keep");
  EXPECT_FALSE(again.changed);
  EXPECT_EQ(guest.writes, writes);
  EXPECT_EQ(ca.issued, 1);
  EXPECT_EQ(guest.runs_of("systemctl"), 1);

  // Past two thirds of 90 days: renewed.
  Report later = deliver_certificate(guest, ca, delivery(), now() + 61 * 86400);
  ASSERT_TRUE(later.ok());
  EXPECT_EQ(later.steps.front().what, "renew");
  EXPECT_EQ(ca.issued, 2);
  EXPECT_EQ(guest.runs_of("systemctl"), 2);

  // New names: renewed at once.
  CertDelivery more = delivery();
  more.cert.sans.push_back("www.lan");
  Report renamed = deliver_certificate(guest, ca, more, now());
  ASSERT_TRUE(renamed.ok());
  EXPECT_EQ(renamed.steps.front().detail, "/etc/nginx/ssl/gw.crt: names changed: +www.lan");
}

TEST(DeliverCertificate, ACaThatIsDownInstallsNothing) {
  fakes::FakeGuest guest;
  OpensslCa ca;
  ca.down = true;
  Report r = deliver_certificate(guest, ca, delivery(), now());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error->message().find("connection refused"), std::string::npos);
  EXPECT_NE(r.error->message().find("nothing was installed"), std::string::npos);
  EXPECT_EQ(r.error->kind(), base::ErrorKind::kTransient);
  EXPECT_TRUE(guest.files.empty());
  EXPECT_EQ(guest.runs_of("systemctl"), 0);
}

TEST(DeliverCertificate, AFailedWritePutsBackWhatWasWritten) {
  fakes::FakeGuest guest;
  OpensslCa ca;
  ASSERT_TRUE(deliver_certificate(guest, ca, delivery(), now()).ok());
  auto before = guest.files;
  // The renewal writes the certificate, then the key (the empty chain is unchanged): the key
  // fails (after the marker of the reload it owes).
  guest.fail_write = guest.writes + 3;
  Report r = deliver_certificate(guest, ca, delivery(), now() + 61 * 86400);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error->message().find("the previous file /etc/nginx/ssl/gw.crt is back"),
            std::string::npos)
      << r.error->message();
  std::erase_if(guest.files, [](const auto& f) { return f.first.starts_with(guest::kOwedDir); });
  EXPECT_EQ(guest.files, before);
  EXPECT_EQ(guest.runs_of("systemctl"), 1);  // the first delivery's reload only
}

// A run that installed a renewed certificate and then failed to reload its service (or lost the
// answer) leaves the reload owed: the next run, which keeps the certificate, still reloads.
TEST(DeliverCertificate, AReloadOwedByARunThatFailedIsDoneByTheNext) {
  fakes::FakeGuest guest;
  OpensslCa ca;
  guest.answers["systemctl"] = {{1, "nginx.service is not active, cannot reload."}};
  Report r = deliver_certificate(guest, ca, delivery(), now());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error->message(),
            "the new certificate gw is installed, but reloading its service failed: `systemctl "
            "reload nginx` exited with 1: nginx.service is not active, cannot reload.. Fix the "
            "service; the next `phoenix sync certs` reloads it again");
  ASSERT_TRUE(guest.files.contains("/etc/nginx/ssl/gw.crt"));

  Report next = deliver_certificate(guest, ca, delivery(), now());
  ASSERT_TRUE(next.ok()) << next.error->message();
  EXPECT_EQ(next.steps.front().what, "keep");
  EXPECT_TRUE(next.changed);
  EXPECT_EQ(ca.issued, 1);
  EXPECT_EQ(guest.runs_of("systemctl"), 2);

  Report third = deliver_certificate(guest, ca, delivery(), now());
  ASSERT_TRUE(third.ok());
  EXPECT_FALSE(third.changed);
  EXPECT_EQ(guest.runs_of("systemctl"), 2) << "owed once, done once";
  for (const auto& [path, content] : guest.files) EXPECT_FALSE(path.starts_with(guest::kOwedDir));
}

TEST(DeliverRootFile, ARestartOwedByARunThatFailedIsDoneByTheNext) {
  fakes::FakeGuest guest;
  const Argv restart{"systemctl", "restart", "traefik"};
  guest.answers["systemctl"] = {{1, "Job for traefik.service failed."}};
  ASSERT_FALSE(deliver_root_file(guest, "/etc/traefik/root.crt", "ROOT", restart).ok());
  Report next = deliver_root_file(guest, "/etc/traefik/root.crt", "ROOT", restart);
  ASSERT_TRUE(next.ok()) << next.error->message();
  EXPECT_TRUE(next.changed);
  EXPECT_EQ(guest.runs_of("systemctl"), 2);
  Report third = deliver_root_file(guest, "/etc/traefik/root.crt", "ROOT", restart);
  ASSERT_TRUE(third.ok());
  EXPECT_FALSE(third.changed);
  EXPECT_EQ(guest.runs_of("systemctl"), 2);
}

TEST(DeliverTrust, InstallsTheRootOnceAndUpdatesTheStore) {
  fakes::FakeGuest guest;
  Report r =
      deliver_trust(guest, "-----BEGIN CERTIFICATE-----\nroot\n", {"update-ca-certificates"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(guest.files[kTrustedRootPath], "-----BEGIN CERTIFICATE-----\nroot\n");
  EXPECT_EQ(guest.runs_of("update-ca-certificates"), 1);
  Report again =
      deliver_trust(guest, "-----BEGIN CERTIFICATE-----\nroot\n", {"update-ca-certificates"});
  EXPECT_FALSE(again.changed);
  EXPECT_EQ(guest.runs_of("update-ca-certificates"), 1);
}

}  // namespace
}  // namespace phoenix::deliver
