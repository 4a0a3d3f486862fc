#include "providers/ca/crypto.h"

#include <curl/curl.h>
#include <gtest/gtest.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "base/strings.h"
#include "providers/ca/ca.h"
#include "providers/ca/http01_server.h"
#include "providers/ca/stepca.h"

namespace phoenix::ca {
namespace {

using nlohmann::json;

// A self-signed certificate made by `openssl req -x509 -set_serial 0x0102ab` with SANs
// DNS:a.example, DNS:B.example, IP:192.0.2.1, IP:2001:db8::1; dates and fingerprint as
// `openssl x509 -noout -dates -fingerprint -sha256` prints them.
constexpr const char* kCert = R"(-----BEGIN CERTIFICATE-----
MIIBtzCCAV2gAwIBAgIDAQKrMAoGCCqGSM49BAMCMBwxGjAYBgNVBAMMEXBob2Vu
aXggdW5pdCB0ZXN0MB4XDTI2MTEyMjA4MzExOVoXDTM2MTExOTA4MzExOVowHDEa
MBgGA1UEAwwRcGhvZW5peCB1bml0IHRlc3QwWTATBgcqhkjOPQIBBggqhkjOPQMB
BwNCAAQw+kF9tcTHCPhPHeNZ07jVt/8g+OmZfpz8K5aPnEo4M6skIF9m6kdP1xa6
QXKY0N/CfAgbL9uRjtRFLV2fwg2mo4GNMIGKMB0GA1UdDgQWBBStiNjuBtCbR8Xb
7IVotHWaNJLe7DAfBgNVHSMEGDAWgBStiNjuBtCbR8Xb7IVotHWaNJLe7DAPBgNV
HRMBAf8EBTADAQH/MDcGA1UdEQQwMC6CCWEuZXhhbXBsZYIJQi5leGFtcGxlhwTA
AAIBhxAgAQ24AAAAAAAAAAAAAAABMAoGCCqGSM49BAMCA0gAMEUCIEz1No5pos/t
QZRki7h36xDYvX3zSN6mfi736Hb5KCscAiEAoSsdE2SFKYnsqEeScdopoMChqnc/
os8ki1ku7t6eEHk=
-----END CERTIFICATE-----
)";
constexpr const char* kCertKey = R"(-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgwrilqddK/dRtWmEU
Ii2fDaCAj9/uf3dCJZvRve9K0ZqhRANCAAQw+kF9tcTHCPhPHeNZ07jVt/8g+OmZ
fpz8K5aPnEo4M6skIF9m6kdP1xa6QXKY0N/CfAgbL9uRjtRFLV2fwg2m
-----END PRIVATE KEY-----
)";
constexpr const char* kOtherCert = R"(-----BEGIN CERTIFICATE-----
MIIBdTCCARugAwIBAgIULltMQ9w93Uebxg+3h6fMg1eVVH4wCgYIKoZIzj0EAwIw
EDEOMAwGA1UEAwwFb3RoZXIwHhcNMjYxMTIyMDgzMTE5WhcNMzYxMTE5MDgzMTE5
WjAQMQ4wDAYDVQQDDAVvdGhlcjBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABEEt
sZfKDuT0b5JPz7yQESywlgWaQkSbQW3eJJj9xg+IgoG4QC8YTNDJPpCrXA6EbUA3
nSPDzFacJM2AGJuI/PSjUzBRMB0GA1UdDgQWBBS6a/LeSx7iGynas3MOOpxkWPR6
ijAfBgNVHSMEGDAWgBS6a/LeSx7iGynas3MOOpxkWPR6ijAPBgNVHRMBAf8EBTAD
AQH/MAoGCCqGSM49BAMCA0gAMEUCIB6FeqSEInXLpMf0wfGcJpg6gbtafn/QRXiy
aSZATeHzAiEA+SBS7rfMkLvzd9JlpXXiG7c4RmSU1YoTuUt2FuNlSv8=
-----END CERTIFICATE-----
)";

// RFC 7515 appendix A.3: an ES256 key and a JWS it signed.
const json kRfc7515Key = {{"kty", "EC"},
                          {"crv", "P-256"},
                          {"x", "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU"},
                          {"y", "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
                          {"d", "jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI"}};
constexpr const char* kRfc7515SigningInput =
    "eyJhbGciOiJFUzI1NiJ9."
    "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cn"
    "VlfQ";
constexpr const char* kRfc7515Signature =
    "DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";

// Written by step-ca's own pki package (tests/ca/stepca-init, as `step ca init` does) with the
// password "pass word!": a JWK provisioner's public key and its encrypted private key.
const json kStepPublicKey = {{"use", "sig"},
                             {"kty", "EC"},
                             {"kid", "arrKDeU2a_DFRA1JCtXPuW4EZ5ZhfC75TIw3mrgXaFo"},
                             {"crv", "P-256"},
                             {"alg", "ES256"},
                             {"x", "8_4E9pC2-iD1CBQsIG7He76IV3OuXtw1uegIjRDbsNU"},
                             {"y", "MtD_S-fD4LW7lYiDbpYIPVdKU2ywUKrKFv5F4kF_vC4"}};
constexpr const char* kStepEncryptedKey =
    "eyJhbGciOiJQQkVTMi1IUzI1NitBMTI4S1ciLCJjdHkiOiJqd2sranNvbiIsImVuYyI6IkEyNTZHQ00iLCJwMmMiOj"
    "YwMDAwMCwicDJzIjoicDJvRTVBam82VEhBclVVeXd4a1U5USJ9.pEY9S7uCi_RHhfRZwCsjWxwAE37wfX9l1PFWUPJXdA"
    "hL_qdXUZxYnw.y10MA9JFxkehOm04.YZMRNSm1qovCuRDNQeWdM8I__V8jSYwFWAEOJBQCoz0wLOCShdEkZIMWtRHJKL"
    "QN1D5szowwfjeaPu7s2MQ5cx1m-aTwv0adJbXLtizPC-oZm92CphdUeXJS92SNxX0g3k-MhZMtlmd9P5F46eqzbNyISM"
    "6JY_QWppvEjZ4NcvEHVekFC2u36FvFJI6c_tOFWJEyLn39eHELFigLwLepg6t1o8AeXzsEWvEgelPJTnJKKJ7uhSKkI-y"
    "LZ5YaiUg_WatqvnIAl2Rxd-X3g_5Y9LGaMEFQfUGdMk814co8KONrLapYFbFHZA3GAoxaQ1u_DfZyep7AmzJNthENx8E."
    "jbh6qsjx9akSbCvznvxoIQ";

TEST(Base64Url, Rfc4648Vectors) {
  EXPECT_EQ(base64url_encode(""), "");
  EXPECT_EQ(base64url_encode("f"), "Zg");
  EXPECT_EQ(base64url_encode("fo"), "Zm8");
  EXPECT_EQ(base64url_encode("foo"), "Zm9v");
  EXPECT_EQ(base64url_encode("foob"), "Zm9vYg");
  EXPECT_EQ(base64url_encode("fooba"), "Zm9vYmE");
  EXPECT_EQ(base64url_encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(base64url_encode("\xfb\xff\xbf"), "-_-_");
  for (const char* text : {"", "f", "fo", "foo", "foob", "fooba", "foobar", "\xfb\xff\xbf"}) {
    EXPECT_EQ(base64url_decode(base64url_encode(text)), text);
  }
}

TEST(Base64Url, RejectsWhatIsNotCanonicalBase64Url) {
  EXPECT_EQ(base64url_decode("Zg=="), std::nullopt);  // padding
  EXPECT_EQ(base64url_decode("Z"), std::nullopt);     // a lone character
  EXPECT_EQ(base64url_decode("Zh"), std::nullopt);    // non-zero unused bits
  EXPECT_EQ(base64url_decode("+/"), std::nullopt);    // the standard alphabet
}

TEST(Jwk, ThumbprintOfTheRfc7515Key) {
  auto key = key_from_jwk(kRfc7515Key);
  ASSERT_TRUE(key) << key.error().describe();
  auto jwk = public_jwk(*key);
  ASSERT_TRUE(jwk);
  EXPECT_EQ(jwk->dump(),
            R"({"crv":"P-256","kty":"EC","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",)"
            R"("y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"})");
  // base64url(SHA-256) of exactly that text, computed with Python's hashlib.
  EXPECT_EQ(jwk_thumbprint(*key), "oKIywvGUpTVTyxMQ3bwIIeQUudfr_CkLMjCE19ECD-U");
}

TEST(Jwk, ThumbprintIsStepsKeyId) {
  // step sets a provisioner key's kid to its RFC 7638 thumbprint.
  json public_only = kStepPublicKey;
  auto key = key_from_jwk(public_only);
  ASSERT_TRUE(key) << key.error().describe();
  EXPECT_EQ(jwk_thumbprint(*key), kStepPublicKey["kid"].get<std::string>());
}

TEST(Jwk, RejectsKeysThatAreNotP256OrDoNotMatch) {
  json rsa = {{"kty", "RSA"}, {"n", "AQAB"}, {"e", "AQAB"}};
  EXPECT_EQ(key_from_jwk(rsa).error().message(),
            "unusable JWK: only EC P-256 keys are supported (kty \"EC\", crv \"P-256\")");
  json wrong_d = kRfc7515Key;
  wrong_d["d"] = base64url_encode(std::string(31, '\0') + "\x01");
  EXPECT_EQ(key_from_jwk(wrong_d).error().message(),
            "unusable JWK: \"d\" does not belong to the public point");
  json off_curve = kRfc7515Key;
  off_curve.erase("d");
  off_curve["y"] = base64url_encode(std::string(32, '\x01'));
  EXPECT_FALSE(key_from_jwk(off_curve));
}

TEST(Es256, VerifiesTheRfc7515Signature) {
  auto key = key_from_jwk(kRfc7515Key);
  ASSERT_TRUE(key);
  auto sig = base64url_decode(kRfc7515Signature);
  ASSERT_TRUE(sig);
  EXPECT_TRUE(verify_es256(*key, kRfc7515SigningInput, *sig));
  EXPECT_FALSE(verify_es256(*key, std::string(kRfc7515SigningInput) + "x", *sig));
}

TEST(Es256, SignsWhatVerifies) {
  auto key = generate_key();
  ASSERT_TRUE(key);
  auto sig = sign_es256(*key, "payload");
  ASSERT_TRUE(sig);
  EXPECT_EQ(sig->size(), 64u);
  EXPECT_TRUE(verify_es256(*key, "payload", *sig));
  auto rsa = generate_key(KeyType::kRsa2048);
  ASSERT_TRUE(rsa);
  EXPECT_EQ(sign_es256(*rsa, "payload").error().message(), "ES256 needs an EC P-256 key");
}

TEST(Jws, FlattenedAndCompactForms) {
  auto key = key_from_jwk(kRfc7515Key);
  ASSERT_TRUE(key);
  auto jws = jws_sign(*key, json{{"nonce", "n1"}, {"url", "https://ca/new-order"}}, "{}");
  ASSERT_TRUE(jws);
  EXPECT_EQ(base64url_decode(jws->protected_b64),
            R"({"alg":"ES256","nonce":"n1","url":"https://ca/new-order"})");
  EXPECT_EQ(jws->payload_b64, "e30");
  json flat = jws->flattened();
  EXPECT_EQ(flat["payload"], "e30");
  EXPECT_EQ(jws->compact(), jws->protected_b64 + "." + jws->payload_b64 + "." + jws->signature_b64);
  auto sig = base64url_decode(jws->signature_b64);
  ASSERT_TRUE(sig);
  EXPECT_TRUE(verify_es256(*key, jws->protected_b64 + "." + jws->payload_b64, *sig));
  // POST-as-GET: an empty payload.
  auto empty = jws_sign(*key, json::object(), "");
  ASSERT_TRUE(empty);
  EXPECT_EQ(empty->payload_b64, "");
}

TEST(Jwe, DecryptsTheKeyStepEncrypted) {
  auto plain = jwe_decrypt_pbes2(kStepEncryptedKey, "pass word!");
  ASSERT_TRUE(plain) << plain.error().describe();
  json jwk = json::parse(*plain);
  EXPECT_EQ(jwk["kid"], kStepPublicKey["kid"]);
  auto key = key_from_jwk(jwk);  // with "d": checked against x and y
  ASSERT_TRUE(key) << key.error().describe();
  auto pub = public_jwk(*key);
  ASSERT_TRUE(pub);
  EXPECT_EQ((*pub)["x"], kStepPublicKey["x"]);
  EXPECT_EQ((*pub)["y"], kStepPublicKey["y"]);
}

TEST(Jwe, WrongPasswordSaysSoWithoutTheSecret) {
  auto plain = jwe_decrypt_pbes2(kStepEncryptedKey, "hunter2-wrong");
  ASSERT_FALSE(plain);
  EXPECT_EQ(plain.error().kind(), base::ErrorKind::kPermission);
  EXPECT_EQ(plain.error().describe(), "cannot decrypt the encrypted key: the password is wrong");
}

TEST(Jwe, RoundTripAndTampering) {
  auto compact = jwe_encrypt_pbes2("secret text", "pw", 1000, "jwk+json");
  ASSERT_TRUE(compact);
  EXPECT_EQ(jwe_decrypt_pbes2(*compact, "pw"), "secret text");
  // A changed ciphertext fails its tag.
  std::string tampered = *compact;
  auto parts = base::split(tampered, '.');
  ASSERT_EQ(parts.size(), 5u);
  std::string ct = *base64url_decode(parts[3]);
  ct[0] = static_cast<char>(ct[0] ^ 1);
  std::string bad =
      parts[0] + "." + parts[1] + "." + parts[2] + "." + base64url_encode(ct) + "." + parts[4];
  EXPECT_EQ(jwe_decrypt_pbes2(bad, "pw").error().message(),
            "cannot decrypt the encrypted key: its authentication tag does not match");
  EXPECT_EQ(jwe_decrypt_pbes2("a.b.c", "pw").error().message(),
            "not a usable encrypted key (JWE): a compact JWE has 5 parts separated by dots");
}

TEST(Csr, CarriesTheNamesAndIsSignedByTheKey) {
  auto key = generate_key();
  ASSERT_TRUE(key);
  std::vector<std::string> sans = {"a.test.example", "b.test.example", "192.0.2.7", "2001:db8::7"};
  auto der = make_csr(*key, "a.test.example", sans);
  ASSERT_TRUE(der) << der.error().describe();
  const auto* p = reinterpret_cast<const unsigned char*>(der->data());
  X509_REQ* req = d2i_X509_REQ(nullptr, &p, static_cast<long>(der->size()));
  ASSERT_NE(req, nullptr);
  EXPECT_EQ(X509_REQ_verify(req, key->get()), 1);
  STACK_OF(X509_EXTENSION)* exts = X509_REQ_get_extensions(req);
  auto* names =
      static_cast<GENERAL_NAMES*>(X509V3_get_d2i(exts, NID_subject_alt_name, nullptr, nullptr));
  ASSERT_NE(names, nullptr);
  ASSERT_EQ(sk_GENERAL_NAME_num(names), 4);
  EXPECT_EQ(sk_GENERAL_NAME_value(names, 0)->type, GEN_DNS);
  EXPECT_EQ(sk_GENERAL_NAME_value(names, 2)->type, GEN_IPADD);
  EXPECT_EQ(ASN1_STRING_length(sk_GENERAL_NAME_value(names, 3)->d.iPAddress), 16);
  GENERAL_NAMES_free(names);
  sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
  X509_REQ_free(req);
  std::string pem = pem_encode(*der, "CERTIFICATE REQUEST");
  EXPECT_EQ(pem.rfind("-----BEGIN CERTIFICATE REQUEST-----\n", 0), 0u);
}

TEST(Keys, PemRoundTripForEveryType) {
  for (KeyType type : {KeyType::kEcP256, KeyType::kEcP384, KeyType::kRsa2048}) {
    auto key = generate_key(type);
    ASSERT_TRUE(key) << to_string(type);
    auto pem = private_key_pem(*key);
    ASSERT_TRUE(pem);
    auto back = read_private_key_pem(*pem);
    ASSERT_TRUE(back);
    EXPECT_EQ(private_key_pem(*back), *pem);
  }
  EXPECT_EQ(read_private_key_pem("nope").error().message(), "not an unencrypted PEM private key");
}

TEST(Certificates, ReadsValiditySerialAndNames) {
  auto info = read_certificate(kCert);
  ASSERT_TRUE(info) << info.error().describe();
  EXPECT_EQ(info->subject_cn, "phoenix unit test");
  EXPECT_EQ(info->issuer_cn, "phoenix unit test");
  EXPECT_EQ(info->serial, "0102AB");
  EXPECT_EQ(info->not_before, 1795336279);  // Nov 22 08:31:19 2026 GMT
  EXPECT_EQ(info->not_after, 2110696279);   // Nov 19 08:31:19 2036 GMT
  EXPECT_EQ(info->dns_names, (std::vector<std::string>{"a.example", "B.example"}));
  EXPECT_EQ(info->ip_addresses, (std::vector<std::string>{"192.0.2.1", "2001:db8::1"}));
  EXPECT_EQ(info->sha256_hex, "0be22f018bafafaba16de8007e6844e324fa6a8fd2765ce01dc1aba7114cdd32");
  EXPECT_EQ(read_certificate("junk").error().message(), "not a PEM certificate");
}

TEST(Certificates, SplitsBundles) {
  std::string bundle = std::string("text before\n") + kCert + "between\n" + kOtherCert;
  auto certs = split_pem_certificates(bundle);
  ASSERT_EQ(certs.size(), 2u);
  EXPECT_EQ(certs[0], kCert);
  EXPECT_EQ(certs[1], kOtherCert);
}

TEST(Certificates, VerifiesAgainstTheRightRootOnly) {
  EXPECT_TRUE(verify_certificate(kCert, "", kCert));
  auto wrong = verify_certificate(kCert, "", kOtherCert);
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error().message(), "certificate does not verify: self-signed certificate");
  // Before its notBefore.
  auto early = verify_certificate(kCert, "", kCert, 1700000000);
  ASSERT_FALSE(early);
  EXPECT_EQ(early.error().message(), "certificate does not verify: certificate is not yet valid");
}

TEST(Certificates, MatchesItsKeyOnly) {
  auto key = read_private_key_pem(kCertKey);
  ASSERT_TRUE(key);
  EXPECT_EQ(certificate_matches_key(kCert, *key), true);
  auto other = generate_key();
  ASSERT_TRUE(other);
  EXPECT_EQ(certificate_matches_key(kCert, *other), false);
}

TEST(IssuedCerts, AssembledOnlyForTheKeyAndTheNames) {
  auto key = read_private_key_pem(kCertKey);
  ASSERT_TRUE(key);
  std::string bundle = std::string(kCert) + kOtherCert;
  auto issued = assemble_issued(*key, bundle, {"a.example", "b.example", "2001:db8::1"});
  ASSERT_TRUE(issued) << issued.error().describe();
  EXPECT_EQ(issued->cert_pem, kCert);
  EXPECT_EQ(issued->chain_pem, kOtherCert);
  EXPECT_EQ(issued->serial, "0102AB");
  EXPECT_EQ(issued->not_after, 2110696279);
  auto missing = assemble_issued(*key, bundle, {"a.example", "c.example"});
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().message(),
            "the CA's certificate does not name c.example (it names a.example, B.example, "
            "192.0.2.1, 2001:db8::1)");
  auto other = generate_key();
  ASSERT_TRUE(other);
  EXPECT_EQ(assemble_issued(*other, bundle, {"a.example"}).error().message(),
            "the CA returned a certificate for another key than the one requested");
}

TEST(CertificateNames, CommonNameFirstLowerCaseNoDuplicates) {
  auto names = certificate_names({.common_name = "Gateway.Example",
                                  .sans = {"gateway.example", "2001:DB8:0::1", "x.example"},
                                  .key_type = {}});
  ASSERT_TRUE(names);
  EXPECT_EQ(*names, (std::vector<std::string>{"gateway.example", "2001:db8::1", "x.example"}));
  EXPECT_EQ(certificate_names({.common_name = "", .sans = {}, .key_type = {}}).error().message(),
            "a certificate needs at least one name");
  EXPECT_EQ(certificate_names({.common_name = "a b", .sans = {}, .key_type = {}}).error().message(),
            "\"a b\" is not a DNS name or an IP address");
}

TEST(StepCaFingerprint, AcceptsHexWithOrWithoutColons) {
  EXPECT_EQ(normalize_fingerprint(
                "0B:E2:2F:01:8B:AF:AF:AB:A1:6D:E8:00:7E:68:44:E3:24:FA:6A:8F:D2:76:5C:E0:1D:C1:"
                "AB:A7:11:4C:DD:32"),
            "0be22f018bafafaba16de8007e6844e324fa6a8fd2765ce01dc1aba7114cdd32");
  EXPECT_EQ(normalize_fingerprint("abc"), std::nullopt);
  EXPECT_EQ(normalize_fingerprint(std::string(64, 'g')), std::nullopt);
}

std::size_t collect(char* data, std::size_t size, std::size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

std::pair<long, std::string> http_get(int port, const std::string& path) {
  CURL* curl = curl_easy_init();
  std::string body;
  std::string url = "http://127.0.0.1:" + std::to_string(port) + path;
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 5000L);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
  long status = 0;
  if (curl_easy_perform(curl) == CURLE_OK) {
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  }
  curl_easy_cleanup(curl);
  return {status, body};
}

TEST(Http01Server, ServesWhatIsPublishedUntilRemoved) {
  auto server = Http01Server::start("127.0.0.1", 0);
  ASSERT_TRUE(server) << server.error().describe();
  int port = (*server)->port();
  ASSERT_GT(port, 0);
  const std::string path = "/.well-known/acme-challenge/tok-1_A";
  EXPECT_EQ(http_get(port, path).first, 404);
  ASSERT_TRUE((*server)->publish("tok-1_A", "tok-1_A.thumb"));
  EXPECT_EQ(http_get(port, path), std::make_pair(200L, std::string("tok-1_A.thumb")));
  EXPECT_EQ(http_get(port, "/.well-known/acme-challenge/other").first, 404);
  EXPECT_EQ(http_get(port, "/").first, 404);
  EXPECT_EQ((*server)->served(), 1);
  (*server)->remove("tok-1_A");
  EXPECT_EQ(http_get(port, path).first, 404);
}

TEST(Http01Server, SaysWhyItCannotListen) {
  auto first = Http01Server::start("127.0.0.1", 0);
  ASSERT_TRUE(first);
  int port = (*first)->port();
  auto second = Http01Server::start("127.0.0.1", port);
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().message(), "http-01 responder: cannot listen on 127.0.0.1:" +
                                          std::to_string(port) + ": Address already in use");
  EXPECT_EQ(Http01Server::start("localhost", 0).error().message(),
            "http-01 responder: \"localhost\" is not an IP address");
}

}  // namespace
}  // namespace phoenix::ca
