// The step-ca client against a real step-ca, built by scripts/build-step-ca.sh (PHOENIX_STEP_CA
// names the binary; else the script's default place). Each test initialises its own CA in a
// temporary directory with stepca-init (step-ca's own pki package, as `step ca init` does: a
// root, an intermediate, a JWK provisioner whose key is encrypted with the password, an ACME
// provisioner), starts step-ca on 127.0.0.1 and stops it at the end. Without step-ca these tests
// are skipped, except under CI=true, where they fail.

#include "providers/ca/stepca.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>

#include "ca_env.h"
#include "providers/ca/acme.h"
#include "providers/ca/http01_server.h"

namespace phoenix::ca {
namespace {

namespace fs = std::filesystem;
using testing::Child;
using testing::TempDir;
using Clock = std::chrono::steady_clock;

constexpr const char* kPassword = "correct horse: battery staple";
constexpr const char* kProvisioner = "phoenix";

std::optional<std::string> step_ca_binary() {
  std::string cache;
  if (const char* c = std::getenv("PHOENIX_CACHE_DIR"); c && *c) {
    cache = c;
  } else if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) {
    cache = std::string(x) + "/phoenix";
  } else if (const char* h = std::getenv("HOME"); h && *h) {
    cache = std::string(h) + "/.cache/phoenix";
  }
  return testing::find_program("PHOENIX_STEP_CA", {cache + "/step-ca-v0.30.2/bin/step-ca"});
}

class StepCaServer {
 public:
  // Initialises a CA under `dir`/step and starts step-ca on a free port. With `acme_dns`, step-ca
  // validates ACME http-01 on `acme_http_port`, resolving names through that DNS server.
  static std::unique_ptr<StepCaServer> start(const fs::path& dir, const std::string& acme_dns = "",
                                             int acme_http_port = 0) {
    auto binary = step_ca_binary();
    if (!binary) return nullptr;
    std::string init = (fs::path(*binary).parent_path() / "stepca-init").string();
    auto s = std::unique_ptr<StepCaServer>(new StepCaServer());
    s->dir_ = dir;
    s->password_file_ = (dir / "password").string();
    std::ofstream(s->password_file_) << kPassword << "\n";
    chmod(s->password_file_.c_str(), 0600);
    for (int attempt = 0; attempt < 3; ++attempt) {
      fs::remove_all(dir / "step");
      s->port_ = testing::free_port();
      std::map<std::string, std::string> env = {{"STEPPATH", (dir / "step").string()}};
      if (!testing::run({init, "-name", "Phoenix Test", "-dns", "127.0.0.1,localhost", "-address",
                         "127.0.0.1:" + std::to_string(s->port_), "-provisioner", kProvisioner,
                         "-password-file", s->password_file_, "-acme"},
                        env)) {
        return nullptr;
      }
      // The root's fingerprint as step computed it, where `step ca init` leaves it.
      auto defaults =
          nlohmann::json::parse(std::ifstream(dir / "step/config/defaults.json"), nullptr, false);
      s->fingerprint_ = defaults.is_object() ? defaults.value("fingerprint", "") : "";
      std::vector<std::string> argv = {*binary, (dir / "step/config/ca.json").string(),
                                       "--password-file", s->password_file_};
      if (!acme_dns.empty()) {
        // Only for tests: http-01 on a port of our choosing needs --insecure.
        argv.insert(argv.end(),
                    {"--resolver", acme_dns, "--acme-http-port=" + std::to_string(acme_http_port),
                     "--insecure"});
      }
      s->child_ = Child::spawn(argv, env, dir / "step-ca.log");
      if (s->child_ && testing::wait_for_https(s->url() + "/health", s->root_file(), *s->child_)) {
        return s;
      }
    }
    ADD_FAILURE() << "step-ca did not start; see " << (dir / "step-ca.log");
    return nullptr;
  }

  std::string url() const { return "https://127.0.0.1:" + std::to_string(port_); }
  std::string root_file() const { return (dir_ / "step/certs/root_ca.crt").string(); }
  std::string intermediate_file() const {
    return (dir_ / "step/certs/intermediate_ca.crt").string();
  }
  const std::string& fingerprint() const { return fingerprint_; }
  const std::string& password_file() const { return password_file_; }
  std::string log() const { return child_->log(); }

 private:
  StepCaServer() = default;
  fs::path dir_;
  int port_ = 0;
  std::string fingerprint_;
  std::string password_file_;
  std::unique_ptr<Child> child_;
};

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

std::int64_t now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

class StepCaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!step_ca_binary()) {
      if (testing::in_ci())
        FAIL() << "step-ca is not built (PHOENIX_STEP_CA, scripts/build-step-ca.sh)";
      GTEST_SKIP() << "step-ca is not built (scripts/build-step-ca.sh builds it)";
    }
  }

  void start(const std::string& acme_dns = "", int acme_http_port = 0) {
    ca_ = StepCaServer::start(dir_.path(), acme_dns, acme_http_port);
    ASSERT_TRUE(ca_);
  }

  StepCaOptions options() const {
    StepCaOptions o;
    o.url = ca_ ? ca_->url() : "";
    o.fingerprint = ca_ ? ca_->fingerprint() : "";
    o.provisioner = kProvisioner;
    o.password_file = ca_ ? ca_->password_file() : "";
    return o;
  }

  void TearDown() override {
    if (HasFailure() && ca_) std::cerr << "step-ca's log:\n" << ca_->log();
  }

  // The error, after checking that the password is nowhere in it.
  std::string error_text(const base::Error& error) {
    std::string text = error.describe();
    EXPECT_EQ(text.find("correct horse"), std::string::npos) << text;
    return text;
  }

  TempDir dir_;
  std::unique_ptr<StepCaServer> ca_;
};

TEST_F(StepCaTest, IssuesThroughTheJwkProvisionerPinnedByFingerprint) {
  start();
  auto ca = make_step_ca(options());
  ASSERT_TRUE(ca) << ca.error().describe();
  EXPECT_EQ((*ca)->describe(), "step-ca " + ca_->url() + " (provisioner phoenix)");
  auto issued = (*ca)->issue({.common_name = "svc.test.example",
                              .sans = {"alt.test.example", "10.0.0.5"},
                              .key_type = {}});
  ASSERT_TRUE(issued) << issued.error().describe();

  auto info = read_certificate(issued->cert_pem);
  ASSERT_TRUE(info);
  EXPECT_EQ(info->subject_cn, "svc.test.example");
  EXPECT_EQ(info->dns_names, (std::vector<std::string>{"svc.test.example", "alt.test.example"}));
  EXPECT_EQ(info->ip_addresses, (std::vector<std::string>{"10.0.0.5"}));
  EXPECT_EQ(info->issuer_cn, "Phoenix Test Intermediate CA");
  auto key = read_private_key_pem(issued->key_pem);
  ASSERT_TRUE(key);
  EXPECT_TRUE(certificate_matches_key(issued->cert_pem, *key).value_or(false));
  // The chain is step-ca's intermediate, and leads to its root.
  auto intermediate = read_certificate(slurp(ca_->intermediate_file()));
  auto chain = read_certificate(issued->chain_pem);
  ASSERT_TRUE(intermediate && chain);
  EXPECT_EQ(chain->sha256_hex, intermediate->sha256_hex);
  EXPECT_EQ(split_pem_certificates(issued->chain_pem).size(), 1u);
  std::string root = slurp(ca_->root_file());
  auto verified = verify_certificate(issued->cert_pem, issued->chain_pem, root);
  EXPECT_TRUE(verified) << verified.error().describe();
  std::ofstream(dir_.path() / "chain.pem") << issued->chain_pem;
  std::ofstream(dir_.path() / "leaf.pem") << issued->cert_pem;
  auto out =
      testing::run({"openssl", "verify", "-CAfile", ca_->root_file(), "-untrusted",
                    (dir_.path() / "chain.pem").string(), (dir_.path() / "leaf.pem").string()});
  EXPECT_TRUE(out && out->find(": OK") != std::string::npos);
  // step-ca's default: 24 hours, backdated by a minute.
  EXPECT_EQ(issued->not_before, info->not_before);
  EXPECT_EQ(issued->not_after, info->not_after);
  EXPECT_LE(issued->not_before, now());
  EXPECT_NEAR(static_cast<double>(issued->not_after - now()), 24 * 3600, 120);
  EXPECT_EQ(issued->serial, info->serial);

  // A second certificate reuses the decrypted provisioner key and gets its own token.
  auto again = (*ca)->issue({.common_name = "svc.test.example", .sans = {}, .key_type = {}});
  ASSERT_TRUE(again) << again.error().describe();
  EXPECT_NE(again->serial, issued->serial);
}

TEST_F(StepCaTest, TrustsTheRootFileWithoutAFingerprint) {
  start();
  StepCaOptions o = options();
  o.fingerprint.clear();
  o.root_file = ca_->root_file();
  auto ca = make_step_ca(o);
  ASSERT_TRUE(ca) << ca.error().describe();
  auto issued =
      (*ca)->issue({.common_name = "file.test.example", .sans = {}, .key_type = KeyType::kEcP384});
  ASSERT_TRUE(issued) << issued.error().describe();
}

TEST_F(StepCaTest, WrongPasswordIsClearAndSecret) {
  start();
  std::string wrong = (dir_.path() / "wrong-password").string();
  std::ofstream(wrong) << "correct horse: wrong staple\n";
  chmod(wrong.c_str(), 0600);
  StepCaOptions o = options();
  o.password_file = wrong;
  auto ca = make_step_ca(o);
  ASSERT_TRUE(ca);
  auto issued = (*ca)->issue({.common_name = "pw.test.example", .sans = {}, .key_type = {}});
  ASSERT_FALSE(issued);
  EXPECT_EQ(issued.error().kind(), base::ErrorKind::kPermission);
  EXPECT_EQ(error_text(issued.error()),
            "issuing a certificate for pw.test.example from step-ca " + ca_->url() +
                " (provisioner phoenix): decrypting the key of provisioner \"phoenix\" with " +
                wrong + ": cannot decrypt the encrypted key: the password is wrong");
}

TEST_F(StepCaTest, UnknownProvisionerListsWhatThereIs) {
  start();
  StepCaOptions o = options();
  o.provisioner = "acme";  // there is one, but not a JWK provisioner
  auto ca = make_step_ca(o);
  ASSERT_TRUE(ca);
  auto issued = (*ca)->issue({.common_name = "p.test.example", .sans = {}, .key_type = {}});
  ASSERT_FALSE(issued);
  EXPECT_EQ(issued.error().kind(), base::ErrorKind::kInvalidInput);
  EXPECT_EQ(error_text(issued.error()),
            "issuing a certificate for p.test.example from step-ca " + ca_->url() +
                " (provisioner acme): step-ca has no JWK provisioner named \"acme\" (it has: "
                "phoenix (JWK), acme (ACME))");
}

TEST_F(StepCaTest, FingerprintOfAnotherRootIsRefused) {
  start();
  StepCaOptions o = options();
  o.fingerprint = std::string(64, 'a');
  auto ca = make_step_ca(o);
  ASSERT_TRUE(ca);
  auto issued = (*ca)->issue({.common_name = "fp.test.example", .sans = {}, .key_type = {}});
  ASSERT_FALSE(issued);
  EXPECT_EQ(issued.error().kind(), base::ErrorKind::kPermission);
  EXPECT_EQ(error_text(issued.error()),
            "issuing a certificate for fp.test.example from step-ca " + ca_->url() +
                " (provisioner phoenix): GET /root/" + std::string(64, 'a') +
                ": step-ca has no root with the pinned fingerprint (HTTP 404): root certificate "
                "with fingerprint \"" +
                std::string(64, 'a') + "\" was not found");
}

TEST_F(StepCaTest, RootFileThatDidNotSignTheCaFailsTls) {
  start();
  TempDir other;
  ASSERT_TRUE(testing::make_server_cert(other.path()));
  StepCaOptions o = options();
  o.fingerprint.clear();
  o.root_file = (other.path() / "cert.pem").string();
  auto ca = make_step_ca(o);
  ASSERT_TRUE(ca);
  auto issued = (*ca)->issue({.common_name = "tls.test.example", .sans = {}, .key_type = {}});
  ASSERT_FALSE(issued);
  EXPECT_EQ(issued.error().kind(), base::ErrorKind::kPermission);
  std::string text = error_text(issued.error());
  EXPECT_NE(text.find(": cannot reach step-ca: GET " + ca_->url() + "/provisioners?limit=100: "),
            std::string::npos)
      << text;
  EXPECT_TRUE(text.ends_with("(its certificate does not verify against the configured root)"))
      << text;
}

TEST_F(StepCaTest, CaThatIsDownFailsQuickly) {
  StepCaOptions o;
  int port = testing::free_port();
  o.url = "https://127.0.0.1:" + std::to_string(port);
  o.fingerprint = std::string(64, 'b');
  o.provisioner = kProvisioner;
  o.password_file = (dir_.path() / "password").string();
  std::ofstream(o.password_file) << kPassword;
  chmod(o.password_file.c_str(), 0600);
  auto ca = make_step_ca(o);
  ASSERT_TRUE(ca) << ca.error().describe();
  auto start = Clock::now();
  auto issued = (*ca)->issue({.common_name = "down.test.example", .sans = {}, .key_type = {}});
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(2));
  ASSERT_FALSE(issued);
  EXPECT_EQ(issued.error().kind(), base::ErrorKind::kTransient);
  std::string text = error_text(issued.error());
  std::string head = "issuing a certificate for down.test.example from step-ca " + o.url +
                     " (provisioner phoenix): cannot reach step-ca: GET " + o.url + "/root/" +
                     std::string(64, 'b') + ": Failed to connect to 127.0.0.1 port " +
                     std::to_string(port);
  EXPECT_EQ(text.substr(0, head.size()), head) << text;
  EXPECT_TRUE(text.ends_with("Couldn't connect to server (is it running? a retry may help)"))
      << text;
}

TEST_F(StepCaTest, RefusesAPasswordFileOthersCanRead) {
  StepCaOptions o;
  o.url = "https://127.0.0.1:9000";
  o.fingerprint = std::string(64, 'c');
  o.provisioner = kProvisioner;
  o.password_file = (dir_.path() / "password").string();
  std::ofstream(o.password_file) << kPassword;
  chmod(o.password_file.c_str(), 0640);
  auto ca = make_step_ca(o);
  ASSERT_FALSE(ca);
  EXPECT_EQ(error_text(ca.error()), "step_ca.provisioner_password_file " + o.password_file +
                                        " has mode 0640: others can read the password; chmod "
                                        "600 it");
  o.password_file.clear();
  o.fingerprint = "12:34";
  EXPECT_EQ(make_step_ca(o).error().describe(),
            "step_ca.fingerprint is not a SHA-256 fingerprint (64 hex digits)");
}

// The same ACME client as against pebble, now against step-ca's ACME provisioner, with a DNS
// name validated over http-01 and an IP address (RFC 8738) validated at that address.
TEST_F(StepCaTest, AcmeProvisionerIssuesWithRealHttp01) {
  auto http01 = Http01Server::start("127.0.0.1", 0);
  ASSERT_TRUE(http01) << http01.error().describe();
  auto dns = testing::DnsServer::start(dir_.path(), "test.example");
  ASSERT_TRUE(dns);
  start(dns->address(), (*http01)->port());
  AcmeOptions o;
  o.directory_url = ca_->url() + "/acme/acme/directory";
  o.roots_file = ca_->root_file();
  o.account_key_file = (dir_.path() / "acme-account.key").string();
  o.responder = http01->get();
  o.poll_interval = std::chrono::milliseconds(100);
  auto ca = make_acme_ca(o);
  ASSERT_TRUE(ca) << ca.error().describe();
  auto issued =
      (*ca)->issue({.common_name = "web.test.example", .sans = {"127.0.0.1"}, .key_type = {}});
  ASSERT_TRUE(issued) << issued.error().describe();
  EXPECT_GE((*http01)->served(), 2);
  auto info = read_certificate(issued->cert_pem);
  ASSERT_TRUE(info);
  EXPECT_EQ(info->dns_names, (std::vector<std::string>{"web.test.example"}));
  EXPECT_EQ(info->ip_addresses, (std::vector<std::string>{"127.0.0.1"}));
  auto verified = verify_certificate(issued->cert_pem, issued->chain_pem, slurp(ca_->root_file()));
  EXPECT_TRUE(verified) << verified.error().describe();
}

}  // namespace
}  // namespace phoenix::ca
