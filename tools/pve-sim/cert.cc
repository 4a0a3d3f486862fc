#include "cert.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <memory>

#include "base/fs.h"

namespace phoenix::pvesim {

namespace fs = std::filesystem;

namespace {

struct FileCloser {
  void operator()(FILE* f) const { std::fclose(f); }
};
using File = std::unique_ptr<FILE, FileCloser>;

base::Error ssl_error(const std::string& what) {
  return base::Error(base::ErrorKind::kInternal, what + " failed (OpenSSL)");
}

std::string fingerprint_of(X509* cert) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  X509_digest(cert, EVP_sha256(), md, &n);
  std::string out;
  char buf[4];
  for (unsigned i = 0; i < n; ++i) {
    std::snprintf(buf, sizeof buf, "%02X", md[i]);
    if (i) out += ':';
    out += buf;
  }
  return out;
}

base::Result<void> generate(const fs::path& cert_path, const fs::path& key_path,
                            const std::string& hostname) {
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(EVP_EC_gen("P-256"), EVP_PKEY_free);
  if (!key) return std::unexpected(ssl_error("generating a key"));
  std::unique_ptr<X509, decltype(&X509_free)> x(X509_new(), X509_free);
  X509_set_version(x.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x.get()), static_cast<long>(std::time(nullptr)));
  X509_gmtime_adj(X509_getm_notBefore(x.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x.get()), 10L * 365 * 24 * 3600);
  X509_set_pubkey(x.get(), key.get());
  X509_NAME* name = X509_get_subject_name(x.get());
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("pve-sim"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(hostname.c_str()), -1, -1, 0);
  X509_set_issuer_name(x.get(), name);
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, x.get(), x.get(), nullptr, nullptr, 0);
  std::string san = "DNS:" + hostname + ",DNS:localhost,IP:127.0.0.1,IP:::1";
  for (auto [nid, value] : {std::pair{NID_subject_alt_name, san.c_str()},
                            std::pair{NID_basic_constraints, "critical,CA:TRUE"}}) {
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
    if (!ext) return std::unexpected(ssl_error("adding a certificate extension"));
    X509_add_ext(x.get(), ext, -1);
    X509_EXTENSION_free(ext);
  }
  if (!X509_sign(x.get(), key.get(), EVP_sha256())) return std::unexpected(ssl_error("signing"));

  File kf(std::fopen(key_path.c_str(), "w"));
  if (!kf) return base::fail(base::ErrorKind::kPermission, "cannot write " + key_path.string());
  fs::permissions(key_path, fs::perms::owner_read | fs::perms::owner_write);
  if (!PEM_write_PrivateKey(kf.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr)) {
    return std::unexpected(ssl_error("writing the key"));
  }
  File cf(std::fopen(cert_path.c_str(), "w"));
  if (!cf || !PEM_write_X509(cf.get(), x.get())) {
    return base::fail(base::ErrorKind::kPermission, "cannot write " + cert_path.string());
  }
  return {};
}

}  // namespace

base::Result<std::string> certificate_fingerprint(const fs::path& cert) {
  File f(std::fopen(cert.c_str(), "r"));
  if (!f) return base::fail(base::ErrorKind::kNotFound, "cannot read " + cert.string());
  std::unique_ptr<X509, decltype(&X509_free)> x(PEM_read_X509(f.get(), nullptr, nullptr, nullptr),
                                                X509_free);
  if (!x)
    return base::fail(base::ErrorKind::kInvalidInput, cert.string() + ": not a PEM certificate");
  return fingerprint_of(x.get());
}

base::Result<CertFiles> ensure_certificate(const fs::path& dir, const std::string& hostname) {
  CertFiles out{.cert = dir / "pve-ssl.pem", .key = dir / "pve-ssl.key", .fingerprint = ""};
  if (!fs::exists(out.cert) || !fs::exists(out.key)) PHX_TRY(generate(out.cert, out.key, hostname));
  out.fingerprint = PHX_TRY(certificate_fingerprint(out.cert));
  PHX_TRY(base::write_file_atomic(dir / "pve-ssl.fp", out.fingerprint + "\n"));
  return out;
}

}  // namespace phoenix::pvesim
