// The ACME client against Debian's pebble, for real: pebble on 127.0.0.1 with its own TLS
// certificate (the client verifies it), validating http-01 for real: it resolves the test names
// through dnsmasq (every name under test.example is 127.0.0.1) and fetches the key
// authorizations from an Http01Server the test runs on the port pebble's httpPort names.
// Without pebble these tests are skipped, except under CI=true, where they fail.

#include "providers/ca/acme.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "ca_env.h"
#include "providers/ca/http01_server.h"

namespace phoenix::ca {
namespace {

namespace fs = std::filesystem;
using testing::Child;
using testing::TempDir;
using Clock = std::chrono::steady_clock;

class Pebble {
 public:
  // Starts pebble with its http-01 port at `http01_port`, resolving names through `dns`.
  // PEBBLE_WFE_NONCEREJECT is `nonce_reject` percent.
  static std::unique_ptr<Pebble> start(const fs::path& dir, int http01_port, const std::string& dns,
                                       int nonce_reject) {
    auto pebble_bin = testing::find_program("PHOENIX_PEBBLE", {"/usr/bin/pebble"});
    if (!pebble_bin) return nullptr;
    if (!testing::make_server_cert(dir)) return nullptr;
    for (int attempt = 0; attempt < 3; ++attempt) {
      auto p = std::unique_ptr<Pebble>(new Pebble());
      p->dir_ = dir;
      p->port_ = testing::free_port();
      p->management_port_ = testing::free_port();
      nlohmann::json config = {
          {"pebble",
           {{"listenAddress", "127.0.0.1:" + std::to_string(p->port_)},
            {"managementListenAddress", "127.0.0.1:" + std::to_string(p->management_port_)},
            {"certificate", (dir / "cert.pem").string()},
            {"privateKey", (dir / "key.pem").string()},
            {"httpPort", http01_port},
            {"tlsPort", testing::free_port()},
            {"ocspResponderURL", ""},
            {"externalAccountBindingRequired", false}}}};
      std::ofstream(dir / "pebble.json") << config.dump(2);
      p->child_ =
          Child::spawn({*pebble_bin, "-config", (dir / "pebble.json").string(), "-dnsserver", dns},
                       {{"PEBBLE_VA_NOSLEEP", "1"},
                        {"PEBBLE_WFE_NONCEREJECT", std::to_string(nonce_reject)},
                        {"PEBBLE_AUTHZREUSE", "0"}},
                       dir / "pebble.log");
      if (p->child_ &&
          testing::wait_for_https(p->directory_url(), p->tls_roots_file(), *p->child_)) {
        return p;
      }
      // A port taken in between, most likely: try others.
    }
    ADD_FAILURE() << "pebble did not start; see " << (dir / "pebble.log");
    return nullptr;
  }

  std::string directory_url() const {
    return "https://127.0.0.1:" + std::to_string(port_) + "/dir";
  }
  // pebble's own TLS certificate: the ACME client's trust anchor.
  std::string tls_roots_file() const { return (dir_ / "cert.pem").string(); }
  // The root pebble issues under (it makes a new one each start).
  std::string issuing_root() const {
    auto pem = testing::https_get(
        "https://127.0.0.1:" + std::to_string(management_port_) + "/roots/0", tls_roots_file());
    return pem.value_or("");
  }
  std::string log() const { return child_->log(); }

 private:
  Pebble() = default;
  fs::path dir_;
  int port_ = 0;
  int management_port_ = 0;
  std::unique_ptr<Child> child_;
};

// Passes everything on to an Http01Server, and remembers what it was asked; with `corrupt`, it
// publishes a wrong key authorization.
class RecordingResponder final : public ChallengeResponder {
 public:
  explicit RecordingResponder(ChallengeResponder& inner, bool corrupt = false)
      : inner_(inner), corrupt_(corrupt) {}
  base::Result<void> publish(const std::string& token, const std::string& ka) override {
    published.push_back(token);
    return inner_.publish(token, corrupt_ ? ka + "x" : ka);
  }
  void remove(const std::string& token) override {
    removed.push_back(token);
    inner_.remove(token);
  }
  std::vector<std::string> published, removed;

 private:
  ChallengeResponder& inner_;
  bool corrupt_;
};

class AcmeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!testing::find_program("PHOENIX_PEBBLE", {"/usr/bin/pebble"})) {
      if (testing::in_ci()) FAIL() << "pebble is not installed (scripts/install-deps.sh)";
      GTEST_SKIP() << "pebble is not installed (scripts/install-deps.sh installs it)";
    }
    auto http01 = Http01Server::start("127.0.0.1", 0);
    ASSERT_TRUE(http01) << http01.error().describe();
    http01_ = std::move(*http01);
    dns_ = testing::DnsServer::start(dir_.path(), "test.example");
    ASSERT_TRUE(dns_);
  }

  void start_pebble(int nonce_reject = 0) {
    pebble_ = Pebble::start(dir_.path(), http01_->port(), dns_->address(), nonce_reject);
    ASSERT_TRUE(pebble_);
  }

  AcmeOptions options(ChallengeResponder* responder = nullptr) {
    AcmeOptions o;
    o.directory_url = pebble_ ? pebble_->directory_url() : "";
    o.roots_file = pebble_ ? pebble_->tls_roots_file() : "";
    o.account_key_file = (dir_.path() / "account.key").string();
    o.responder = responder ? responder : http01_.get();
    o.timeout = std::chrono::seconds(60);
    o.poll_interval = std::chrono::milliseconds(100);
    return o;
  }

  void TearDown() override {
    if (HasFailure() && pebble_) std::cerr << "pebble's log:\n" << pebble_->log();
  }

  TempDir dir_;
  std::unique_ptr<Http01Server> http01_;
  std::unique_ptr<testing::DnsServer> dns_;
  std::unique_ptr<Pebble> pebble_;
};

TEST_F(AcmeTest, IssuesForTwoNamesValidatedOverHttp01) {
  start_pebble();
  auto ca = make_acme_ca(options());
  ASSERT_TRUE(ca) << ca.error().describe();
  auto issued =
      (*ca)->issue({.common_name = "a.test.example", .sans = {"b.test.example"}, .key_type = {}});
  ASSERT_TRUE(issued) << issued.error().describe();

  // pebble came for both names, to our responder.
  EXPECT_GE(http01_->served(), 2);
  // The leaf is for the key we hold, names both, and chains to pebble's root.
  auto info = read_certificate(issued->cert_pem);
  ASSERT_TRUE(info);
  EXPECT_EQ(info->dns_names, (std::vector<std::string>{"a.test.example", "b.test.example"}));
  auto key = read_private_key_pem(issued->key_pem);
  ASSERT_TRUE(key);
  EXPECT_TRUE(certificate_matches_key(issued->cert_pem, *key).value_or(false));
  std::string root = pebble_->issuing_root();
  ASSERT_FALSE(root.empty());
  ASSERT_FALSE(issued->chain_pem.empty());
  auto verified = verify_certificate(issued->cert_pem, issued->chain_pem, root);
  EXPECT_TRUE(verified) << verified.error().describe();
  // And the openssl command agrees.
  std::ofstream(dir_.path() / "root.pem") << root;
  std::ofstream(dir_.path() / "chain.pem") << issued->chain_pem;
  std::ofstream(dir_.path() / "leaf.pem") << issued->cert_pem;
  auto out = testing::run({"openssl", "verify", "-CAfile", (dir_.path() / "root.pem").string(),
                           "-untrusted", (dir_.path() / "chain.pem").string(),
                           (dir_.path() / "leaf.pem").string()});
  EXPECT_TRUE(out && out->find(": OK") != std::string::npos);
  // Validity: a current certificate, as the IssuedCert says.
  auto now = std::chrono::duration_cast<std::chrono::seconds>(
                 std::chrono::system_clock::now().time_since_epoch())
                 .count();
  EXPECT_EQ(issued->not_before, info->not_before);
  EXPECT_EQ(issued->not_after, info->not_after);
  EXPECT_LE(issued->not_before, now + 60);
  EXPECT_GT(issued->not_after, now + 3600);
  EXPECT_EQ(issued->serial, info->serial);
  EXPECT_FALSE(issued->serial.empty());
  EXPECT_EQ(issued->key_pem.rfind("-----BEGIN PRIVATE KEY-----", 0), 0u);

  // The account key was saved, readable by its owner only.
  struct stat st {};
  ASSERT_EQ(stat((dir_.path() / "account.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(AcmeTest, ReusesTheAccountKeyAndIssuesAgain) {
  start_pebble();
  auto first = make_acme_ca(options());
  ASSERT_TRUE(first);
  auto one = (*first)->issue({.common_name = "c.test.example", .sans = {}, .key_type = {}});
  ASSERT_TRUE(one) << one.error().describe();
  std::ifstream in(dir_.path() / "account.key");
  std::string key_before((std::istreambuf_iterator<char>(in)), {});

  auto second = make_acme_ca(options());
  ASSERT_TRUE(second);
  auto two = (*second)->issue(
      {.common_name = "c.test.example", .sans = {}, .key_type = KeyType::kRsa2048});
  ASSERT_TRUE(two) << two.error().describe();
  std::ifstream again(dir_.path() / "account.key");
  EXPECT_EQ(std::string((std::istreambuf_iterator<char>(again)), {}), key_before);
  EXPECT_NE(one->serial, two->serial);
  EXPECT_NE(one->key_pem, two->key_pem);
}

TEST_F(AcmeTest, RetriesNoncesThePebbleRejects) {
  // pebble rejects half of all good nonces as badNonce; each rejected request is retried with
  // the fresh nonce the rejection carries.
  start_pebble(/*nonce_reject=*/50);
  AcmeOptions o = options();
  o.bad_nonce_retries = 20;
  auto ca = make_acme_ca(o);
  ASSERT_TRUE(ca);
  auto issued = (*ca)->issue({.common_name = "d.test.example", .sans = {}, .key_type = {}});
  ASSERT_TRUE(issued) << issued.error().describe();
}

TEST_F(AcmeTest, AnswersBadNonceTwiceWithTheProblemDocument) {
  start_pebble(/*nonce_reject=*/100);
  auto ca = make_acme_ca(options());
  ASSERT_TRUE(ca);
  auto issued = (*ca)->issue({.common_name = "e.test.example", .sans = {}, .key_type = {}});
  ASSERT_FALSE(issued);
  EXPECT_EQ(issued.error().kind(), base::ErrorKind::kTransient);
  std::string text = issued.error().describe();
  std::string expect = "issuing a certificate for e.test.example from ACME CA " +
                       pebble_->directory_url() +
                       ": newAccount: the CA answered HTTP 400: "
                       "urn:ietf:params:acme:error:badNonce: JWS has an invalid anti-replay nonce";
  EXPECT_EQ(text.substr(0, expect.size()), expect) << text;
  EXPECT_FALSE(fs::exists(dir_.path() / "account.key"));
}

TEST_F(AcmeTest, FailedValidationQuotesTheProblemAndUnpublishes) {
  start_pebble();
  RecordingResponder wrong(*http01_, /*corrupt=*/true);
  auto ca = make_acme_ca(options(&wrong));
  ASSERT_TRUE(ca);
  auto issued = (*ca)->issue({.common_name = "f.test.example", .sans = {}, .key_type = {}});
  ASSERT_FALSE(issued);
  std::string text = issued.error().describe();
  std::string expect = "issuing a certificate for f.test.example from ACME CA " +
                       pebble_->directory_url() +
                       ": the CA did not authorize f.test.example: http-01 validation failed: "
                       "urn:ietf:params:acme:error:unauthorized: ";
  EXPECT_EQ(text.substr(0, expect.size()), expect) << text;
  EXPECT_EQ(issued.error().kind(), base::ErrorKind::kPermission);
  ASSERT_EQ(wrong.published.size(), 1u);
  EXPECT_EQ(wrong.removed, wrong.published);
}

TEST_F(AcmeTest, RefusedOrderQuotesTheProblem) {
  start_pebble();
  auto ca = make_acme_ca(options());
  ASSERT_TRUE(ca);
  auto issued = (*ca)->issue({.common_name = "dot.test.example.", .sans = {}, .key_type = {}});
  ASSERT_FALSE(issued);
  EXPECT_EQ(issued.error().describe(),
            "issuing a certificate for dot.test.example. from ACME CA " + pebble_->directory_url() +
                ": newOrder: the CA answered HTTP 400: urn:ietf:params:acme:error:malformed: "
                "Order included a DNS identifier with a value ending in a period: "
                "\"dot.test.example.\"");
}

TEST_F(AcmeTest, UnresolvableNameQuotesTheProblem) {
  start_pebble();
  auto ca = make_acme_ca(options());
  ASSERT_TRUE(ca);
  // dnsmasq answers only under test.example.
  auto issued = (*ca)->issue({.common_name = "www.elsewhere.example", .sans = {}, .key_type = {}});
  ASSERT_FALSE(issued);
  std::string expect = "issuing a certificate for www.elsewhere.example from ACME CA " +
                       pebble_->directory_url() +
                       ": the CA did not authorize www.elsewhere.example: http-01 validation "
                       "failed: urn:ietf:params:acme:error:connection: Get "
                       "\"http://www.elsewhere.example:" +
                       std::to_string(http01_->port()) + "/.well-known/acme-challenge/";
  std::string text = issued.error().describe();
  EXPECT_EQ(text.substr(0, expect.size()), expect) << text;
  EXPECT_EQ(issued.error().kind(), base::ErrorKind::kTransient);
}

TEST_F(AcmeTest, VerifiesTheCasTlsCertificate) {
  start_pebble();
  // A root that did not sign pebble's certificate.
  TempDir other;
  ASSERT_TRUE(testing::make_server_cert(other.path()));
  AcmeOptions o = options();
  o.roots_file = (other.path() / "cert.pem").string();
  auto ca = make_acme_ca(o);
  ASSERT_TRUE(ca);
  auto issued = (*ca)->issue({.common_name = "g.test.example", .sans = {}, .key_type = {}});
  ASSERT_FALSE(issued);
  EXPECT_EQ(issued.error().kind(), base::ErrorKind::kPermission);
  std::string text = issued.error().describe();
  EXPECT_NE(text.find("cannot reach the ACME CA: GET " + pebble_->directory_url() + ": "),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("(its certificate does not verify against the configured root)"),
            std::string::npos)
      << text;
}

TEST_F(AcmeTest, CaThatIsDownFailsQuicklyAndLeavesNothing) {
  int port = testing::free_port();  // nothing listens there
  AcmeOptions o = options();
  o.directory_url = "https://127.0.0.1:" + std::to_string(port) + "/dir";
  auto ca = make_acme_ca(o);
  ASSERT_TRUE(ca);
  auto start = Clock::now();
  auto issued = (*ca)->issue({.common_name = "h.test.example", .sans = {}, .key_type = {}});
  auto took = Clock::now() - start;
  ASSERT_FALSE(issued);
  EXPECT_LT(took, std::chrono::seconds(2));
  EXPECT_EQ(issued.error().kind(), base::ErrorKind::kTransient);
  EXPECT_TRUE(issued.error().retryable());
  std::string text = issued.error().describe();
  std::string head = "issuing a certificate for h.test.example from ACME CA " + o.directory_url +
                     ": cannot reach the ACME CA: GET " + o.directory_url +
                     ": Failed to connect to 127.0.0.1 port " + std::to_string(port);
  EXPECT_EQ(text.substr(0, head.size()), head) << text;
  std::string tail = "Couldn't connect to server (is it running? a retry may help)";
  EXPECT_TRUE(text.ends_with(tail)) << text;
  EXPECT_FALSE(fs::exists(dir_.path() / "account.key"));
}

TEST_F(AcmeTest, RefusesAnAccountKeyOthersCanRead) {
  std::string path = (dir_.path() / "account.key").string();
  std::ofstream(path) << "not read\n";
  ASSERT_EQ(chmod(path.c_str(), 0644), 0);
  AcmeOptions o = options();
  o.directory_url = "https://127.0.0.1:1/dir";
  auto ca = make_acme_ca(o);
  ASSERT_FALSE(ca);
  EXPECT_EQ(ca.error().describe(), "the ACME account key " + path +
                                       " has mode 0644: others can read the key; chmod 600 it");
}

}  // namespace
}  // namespace phoenix::ca
