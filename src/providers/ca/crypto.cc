#include "providers/ca/crypto.h"

#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <array>
#include <cstring>
#include <ctime>

#include "base/strings.h"

namespace phoenix::ca {
namespace {

using base::ErrorKind;

template <class T, void (*F)(T*)>
struct Free {
  void operator()(T* p) const { F(p); }
};
using Bio = std::unique_ptr<BIO, Free<BIO, BIO_free_all>>;
using Bn = std::unique_ptr<BIGNUM, Free<BIGNUM, BN_free>>;
using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, Free<EVP_CIPHER_CTX, EVP_CIPHER_CTX_free>>;
using MdCtx = std::unique_ptr<EVP_MD_CTX, Free<EVP_MD_CTX, EVP_MD_CTX_free>>;
using PkeyCtx = std::unique_ptr<EVP_PKEY_CTX, Free<EVP_PKEY_CTX, EVP_PKEY_CTX_free>>;
using EcdsaSig = std::unique_ptr<ECDSA_SIG, Free<ECDSA_SIG, ECDSA_SIG_free>>;
using X509Ptr = std::unique_ptr<X509, Free<X509, X509_free>>;
using X509Req = std::unique_ptr<X509_REQ, Free<X509_REQ, X509_REQ_free>>;
using X509Store = std::unique_ptr<X509_STORE, Free<X509_STORE, X509_STORE_free>>;
using X509StoreCtx = std::unique_ptr<X509_STORE_CTX, Free<X509_STORE_CTX, X509_STORE_CTX_free>>;
using ParamBld = std::unique_ptr<OSSL_PARAM_BLD, Free<OSSL_PARAM_BLD, OSSL_PARAM_BLD_free>>;
using Params = std::unique_ptr<OSSL_PARAM, Free<OSSL_PARAM, OSSL_PARAM_free>>;

void free_general_names(GENERAL_NAMES* names) { GENERAL_NAMES_free(names); }
using GeneralNames = std::unique_ptr<GENERAL_NAMES, Free<GENERAL_NAMES, free_general_names>>;
void free_x509_stack(STACK_OF(X509) * s) { sk_X509_pop_free(s, X509_free); }
using X509Stack = std::unique_ptr<STACK_OF(X509), Free<STACK_OF(X509), free_x509_stack>>;
void free_ext_stack(STACK_OF(X509_EXTENSION) * s) {
  sk_X509_EXTENSION_pop_free(s, X509_EXTENSION_free);
}
using ExtStack =
    std::unique_ptr<STACK_OF(X509_EXTENSION), Free<STACK_OF(X509_EXTENSION), free_ext_stack>>;

// The oldest queued OpenSSL error, or `fallback`; the queue is cleared either way.
std::string openssl_error(std::string_view fallback) {
  unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return std::string(fallback);
  std::array<char, 256> buf{};
  ERR_error_string_n(code, buf.data(), buf.size());
  return std::string(fallback) + " (" + buf.data() + ")";
}

std::unexpected<base::Error> crypto_fail(std::string_view what) {
  return base::fail(ErrorKind::kInternal, openssl_error(what));
}

std::string bio_text(BIO* bio) {
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  return len > 0 ? std::string(data, static_cast<std::size_t>(len)) : std::string();
}

std::string sha256(std::string_view data) {
  std::array<unsigned char, 32> md{};
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md.data(), &len, EVP_sha256(), nullptr);
  return std::string(reinterpret_cast<const char*>(md.data()), len);
}

bool is_p256(const PrivateKey& key) {
  if (!key || EVP_PKEY_get_base_id(key.get()) != EVP_PKEY_EC) return false;
  std::array<char, 64> group{};
  std::size_t len = 0;
  if (EVP_PKEY_get_utf8_string_param(key.get(), OSSL_PKEY_PARAM_GROUP_NAME, group.data(),
                                     group.size(), &len) != 1) {
    return false;
  }
  return std::string_view(group.data(), len) == SN_X9_62_prime256v1;
}

std::string bn_bytes(const BIGNUM* bn, int width) {
  std::string out(static_cast<std::size_t>(width), '\0');
  if (BN_bn2binpad(bn, reinterpret_cast<unsigned char*>(out.data()), width) != width) return {};
  return out;
}

X509Ptr parse_pem_certificate(std::string_view pem) {
  Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return nullptr;
  return X509Ptr(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
}

std::int64_t unix_time(const ASN1_TIME* t) {
  std::tm tm{};
  if (!t || ASN1_TIME_to_tm(t, &tm) != 1) return 0;
  return static_cast<std::int64_t>(timegm(&tm));
}

std::string asn1_text(const ASN1_STRING* s) {
  return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                     static_cast<std::size_t>(ASN1_STRING_length(s)));
}

std::string name_cn(const X509_NAME* name) {
  int at = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
  if (at < 0) return {};
  return asn1_text(X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, at)));
}

// The PBES2 variants JOSE defines: the HMAC for PBKDF2 and the key-wrap key's length.
struct Pbes2 {
  std::string_view alg;
  const EVP_MD* (*md)();
  int key_len;
  const EVP_CIPHER* (*wrap)();
};
constexpr std::array<Pbes2, 3> kPbes2 = {{
    {"PBES2-HS256+A128KW", EVP_sha256, 16, EVP_aes_128_wrap},
    {"PBES2-HS384+A192KW", EVP_sha384, 24, EVP_aes_192_wrap},
    {"PBES2-HS512+A256KW", EVP_sha512, 32, EVP_aes_256_wrap},
}};

// RFC 3394 key wrap; `wrap` false unwraps. Empty on failure (an unwrap fails its integrity check
// when the password was wrong).
std::string aes_key_wrap(const EVP_CIPHER* cipher, std::string_view kek, std::string_view in,
                         bool wrap) {
  CipherCtx ctx(EVP_CIPHER_CTX_new());
  if (!ctx) return {};
  EVP_CIPHER_CTX_set_flags(ctx.get(), EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
  const auto* k = reinterpret_cast<const unsigned char*>(kek.data());
  if (EVP_CipherInit_ex(ctx.get(), cipher, nullptr, k, nullptr, wrap ? 1 : 0) != 1) return {};
  std::string out(in.size() + 16, '\0');
  int len = 0;
  int fin = 0;
  auto* o = reinterpret_cast<unsigned char*>(out.data());
  if (EVP_CipherUpdate(ctx.get(), o, &len, reinterpret_cast<const unsigned char*>(in.data()),
                       static_cast<int>(in.size())) != 1 ||
      EVP_CipherFinal_ex(ctx.get(), o + len, &fin) != 1) {
    ERR_clear_error();
    return {};
  }
  out.resize(static_cast<std::size_t>(len + fin));
  return out;
}

std::string pbkdf2(const Pbes2& v, std::string_view password, std::string_view p2s, int p2c) {
  std::string salt = std::string(v.alg) + '\0' + std::string(p2s);
  std::string key(static_cast<std::size_t>(v.key_len), '\0');
  if (PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()),
                        reinterpret_cast<const unsigned char*>(salt.data()),
                        static_cast<int>(salt.size()), p2c, v.md(), v.key_len,
                        reinterpret_cast<unsigned char*>(key.data())) != 1) {
    return {};
  }
  return key;
}

const EVP_CIPHER* gcm_cipher(std::string_view enc) {
  if (enc == "A128GCM") return EVP_aes_128_gcm();
  if (enc == "A192GCM") return EVP_aes_192_gcm();
  if (enc == "A256GCM") return EVP_aes_256_gcm();
  return nullptr;
}

}  // namespace

std::string_view to_string(KeyType type) {
  switch (type) {
    case KeyType::kEcP256:
      return "EC P-256";
    case KeyType::kEcP384:
      return "EC P-384";
    case KeyType::kRsa2048:
      return "RSA 2048";
  }
  return "?";
}

PrivateKey::PrivateKey(EVP_PKEY* key) : key_(key, EVP_PKEY_free) {}

base::Result<PrivateKey> generate_key(KeyType type) {
  EVP_PKEY* key = nullptr;
  switch (type) {
    case KeyType::kEcP256:
      key = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", SN_X9_62_prime256v1);
      break;
    case KeyType::kEcP384:
      key = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", SN_secp384r1);
      break;
    case KeyType::kRsa2048:
      key = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<std::size_t>(2048));
      break;
  }
  if (!key) return crypto_fail("cannot generate an " + std::string(to_string(type)) + " key");
  return PrivateKey(key);
}

base::Result<PrivateKey> read_private_key_pem(std::string_view pem) {
  Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  EVP_PKEY* key = bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr) : nullptr;
  if (!key) {
    ERR_clear_error();
    return base::fail(ErrorKind::kInvalidInput, "not an unencrypted PEM private key");
  }
  return PrivateKey(key);
}

base::Result<std::string> private_key_pem(const PrivateKey& key) {
  Bio bio(BIO_new(BIO_s_mem()));
  if (!bio ||
      PEM_write_bio_PrivateKey(bio.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return crypto_fail("cannot write the private key as PEM");
  }
  return bio_text(bio.get());
}

bool is_ip_address(std::string_view name) {
  std::string s(name);
  std::array<unsigned char, 16> buf{};
  return inet_pton(AF_INET, s.c_str(), buf.data()) == 1 ||
         inet_pton(AF_INET6, s.c_str(), buf.data()) == 1;
}

std::optional<std::string> canonical_ip(std::string_view name) {
  std::string s(name);
  std::array<unsigned char, 16> buf{};
  std::array<char, INET6_ADDRSTRLEN> text{};
  for (int family : {AF_INET, AF_INET6}) {
    if (inet_pton(family, s.c_str(), buf.data()) == 1 &&
        inet_ntop(family, buf.data(), text.data(), text.size())) {
      return std::string(text.data());
    }
  }
  return std::nullopt;
}

base::Result<std::string> make_csr(const PrivateKey& key, std::string_view common_name,
                                   std::span<const std::string> sans) {
  X509Req req(X509_REQ_new());
  if (!req || X509_REQ_set_version(req.get(), X509_REQ_VERSION_1) != 1) {
    return crypto_fail("cannot create a certificate request");
  }
  X509_NAME* subject = X509_REQ_get_subject_name(req.get());
  if (!common_name.empty() &&
      X509_NAME_add_entry_by_NID(subject, NID_commonName, MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(common_name.data()),
                                 static_cast<int>(common_name.size()), -1, 0) != 1) {
    return crypto_fail("cannot set the request's common name");
  }
  if (!sans.empty()) {
    GeneralNames names(GENERAL_NAMES_new());
    if (!names) return crypto_fail("cannot allocate subject alternative names");
    for (const std::string& san : sans) {
      GENERAL_NAME* gen = GENERAL_NAME_new();
      if (!gen) return crypto_fail("cannot allocate a subject alternative name");
      std::array<unsigned char, 16> ip{};
      int ip_len = 0;
      if (inet_pton(AF_INET, san.c_str(), ip.data()) == 1) {
        ip_len = 4;
      } else if (inet_pton(AF_INET6, san.c_str(), ip.data()) == 1) {
        ip_len = 16;
      }
      ASN1_STRING* value = ip_len > 0 ? ASN1_OCTET_STRING_new() : ASN1_IA5STRING_new();
      const unsigned char* bytes =
          ip_len > 0 ? ip.data() : reinterpret_cast<const unsigned char*>(san.data());
      int len = ip_len > 0 ? ip_len : static_cast<int>(san.size());
      if (!value || ASN1_STRING_set(value, bytes, len) != 1) {
        ASN1_STRING_free(value);
        GENERAL_NAME_free(gen);
        return crypto_fail("cannot encode subject alternative name " + san);
      }
      GENERAL_NAME_set0_value(gen, ip_len > 0 ? GEN_IPADD : GEN_DNS, value);
      if (sk_GENERAL_NAME_push(names.get(), gen) == 0) {
        GENERAL_NAME_free(gen);
        return crypto_fail("cannot add subject alternative name " + san);
      }
    }
    ExtStack exts(sk_X509_EXTENSION_new_null());
    X509_EXTENSION* ext = X509V3_EXT_i2d(NID_subject_alt_name, 0, names.get());
    if (!exts || !ext || sk_X509_EXTENSION_push(exts.get(), ext) == 0) {
      X509_EXTENSION_free(ext);
      return crypto_fail("cannot build the subjectAltName extension");
    }
    if (X509_REQ_add_extensions(req.get(), exts.get()) != 1) {
      return crypto_fail("cannot add the subjectAltName extension");
    }
  }
  if (X509_REQ_set_pubkey(req.get(), key.get()) != 1 ||
      X509_REQ_sign(req.get(), key.get(), EVP_sha256()) <= 0) {
    return crypto_fail("cannot sign the certificate request");
  }
  unsigned char* der = nullptr;
  int len = i2d_X509_REQ(req.get(), &der);
  if (len <= 0) return crypto_fail("cannot encode the certificate request");
  std::string out(reinterpret_cast<const char*>(der), static_cast<std::size_t>(len));
  OPENSSL_free(der);
  return out;
}

std::string pem_encode(std::string_view der, std::string_view label) {
  std::string b64((der.size() + 2) / 3 * 4 + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(b64.data()),
                          reinterpret_cast<const unsigned char*>(der.data()),
                          static_cast<int>(der.size()));
  b64.resize(static_cast<std::size_t>(n));
  std::string out = "-----BEGIN " + std::string(label) + "-----\n";
  for (std::size_t at = 0; at < b64.size(); at += 64) out += b64.substr(at, 64) + "\n";
  out += "-----END " + std::string(label) + "-----\n";
  return out;
}

std::string base64url_encode(std::string_view data) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  out.reserve((data.size() + 2) / 3 * 4);
  std::size_t i = 0;
  auto byte = [&](std::size_t at) { return static_cast<unsigned char>(data[at]); };
  for (; i + 3 <= data.size(); i += 3) {
    unsigned v = (byte(i) << 16) | (byte(i + 1) << 8) | byte(i + 2);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (data.size() - i == 1) {
    unsigned v = byte(i) << 16;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
  } else if (data.size() - i == 2) {
    unsigned v = (byte(i) << 16) | (byte(i + 1) << 8);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
  }
  return out;
}

std::optional<std::string> base64url_decode(std::string_view text) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '-') return 62;
    if (c == '_') return 63;
    return -1;
  };
  if (text.size() % 4 == 1) return std::nullopt;
  std::string out;
  out.reserve(text.size() * 3 / 4);
  unsigned acc = 0;
  int bits = 0;
  for (char c : text) {
    int v = value(c);
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | static_cast<unsigned>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  // The unused low bits of the last character must be zero (a canonical encoding).
  if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) return std::nullopt;
  return out;
}

std::string random_bytes(std::size_t count) {
  std::string out(count, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(count)) != 1) {
    // OpenSSL's DRBG does not fail once seeded; an unseeded one is not something to go on with.
    std::abort();
  }
  return out;
}

std::string hex_encode(std::string_view data) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(data.size() * 2);
  for (char c : data) {
    auto b = static_cast<unsigned char>(c);
    out += kDigits[b >> 4];
    out += kDigits[b & 15];
  }
  return out;
}

base::Result<nlohmann::json> public_jwk(const PrivateKey& key) {
  if (!is_p256(key)) {
    return base::fail(ErrorKind::kInvalidInput, "a JWS key must be an EC P-256 key");
  }
  BIGNUM* x = nullptr;
  BIGNUM* y = nullptr;
  if (EVP_PKEY_get_bn_param(key.get(), OSSL_PKEY_PARAM_EC_PUB_X, &x) != 1 ||
      EVP_PKEY_get_bn_param(key.get(), OSSL_PKEY_PARAM_EC_PUB_Y, &y) != 1) {
    BN_free(x);
    BN_free(y);
    return crypto_fail("cannot read the EC public key");
  }
  Bn bx(x);
  Bn by(y);
  return nlohmann::json{{"crv", "P-256"},
                        {"kty", "EC"},
                        {"x", base64url_encode(bn_bytes(bx.get(), 32))},
                        {"y", base64url_encode(bn_bytes(by.get(), 32))}};
}

base::Result<std::string> jwk_thumbprint(const PrivateKey& key) {
  nlohmann::json jwk = PHX_TRY(public_jwk(key));
  // nlohmann::json keeps object members sorted and dumps without white space: RFC 7638's form.
  return base64url_encode(sha256(jwk.dump()));
}

base::Result<PrivateKey> key_from_jwk(const nlohmann::json& jwk) {
  auto bad = [](const std::string& why) {
    return base::fail(ErrorKind::kInvalidInput, "unusable JWK: " + why);
  };
  if (!jwk.is_object()) return bad("not a JSON object");
  if (jwk.value("kty", "") != "EC" || jwk.value("crv", "") != "P-256") {
    return bad("only EC P-256 keys are supported (kty \"EC\", crv \"P-256\")");
  }
  auto member = [&](const char* name) -> std::optional<std::string> {
    auto it = jwk.find(name);
    if (it == jwk.end() || !it->is_string()) return std::nullopt;
    auto bytes = base64url_decode(it->get<std::string>());
    if (!bytes || bytes->size() != 32) return std::nullopt;
    return bytes;
  };
  auto x = member("x");
  auto y = member("y");
  if (!x || !y) return bad("\"x\" and \"y\" must be 32 bytes each, base64url-encoded");
  std::optional<std::string> d;
  if (jwk.contains("d")) {
    d = member("d");
    if (!d) return bad("\"d\" must be 32 bytes, base64url-encoded");
  }
  std::string point = "\x04" + *x + *y;
  ParamBld bld(OSSL_PARAM_BLD_new());
  Bn priv(d ? BN_bin2bn(reinterpret_cast<const unsigned char*>(d->data()), 32, nullptr) : nullptr);
  if (!bld ||
      OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, SN_X9_62_prime256v1,
                                      0) != 1 ||
      OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(),
                                       point.size()) != 1 ||
      (priv && OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_PRIV_KEY, priv.get()) != 1)) {
    return crypto_fail("cannot build EC key parameters");
  }
  Params params(OSSL_PARAM_BLD_to_param(bld.get()));
  PkeyCtx ctx(EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr));
  EVP_PKEY* key = nullptr;
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &key, d ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY,
                        params.get()) != 1) {
    ERR_clear_error();
    return bad("the point is not on the P-256 curve");
  }
  PrivateKey out(key);
  // fromdata does not check that the point lies on the curve, nor that d matches it.
  PkeyCtx check(EVP_PKEY_CTX_new_from_pkey(nullptr, key, nullptr));
  int ok = !check ? 0
           : d    ? EVP_PKEY_pairwise_check(check.get())
                  : EVP_PKEY_public_check(check.get());
  if (ok != 1) {
    ERR_clear_error();
    return bad(d ? "\"d\" does not belong to the public point" : "the point is not on the curve");
  }
  return out;
}

base::Result<std::string> sign_es256(const PrivateKey& key, std::string_view data) {
  if (!is_p256(key)) return base::fail(ErrorKind::kInvalidInput, "ES256 needs an EC P-256 key");
  MdCtx ctx(EVP_MD_CTX_new());
  std::size_t len = 0;
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key.get()) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &len, reinterpret_cast<const unsigned char*>(data.data()),
                     data.size()) != 1) {
    return crypto_fail("cannot sign with ES256");
  }
  std::string der(len, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(der.data()), &len,
                     reinterpret_cast<const unsigned char*>(data.data()), data.size()) != 1) {
    return crypto_fail("cannot sign with ES256");
  }
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  EcdsaSig sig(d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(len)));
  if (!sig) return crypto_fail("cannot decode an ECDSA signature");
  return bn_bytes(ECDSA_SIG_get0_r(sig.get()), 32) + bn_bytes(ECDSA_SIG_get0_s(sig.get()), 32);
}

bool verify_es256(const PrivateKey& key, std::string_view data, std::string_view signature) {
  if (signature.size() != 64 || !is_p256(key)) return false;
  const auto* raw = reinterpret_cast<const unsigned char*>(signature.data());
  EcdsaSig sig(ECDSA_SIG_new());
  BIGNUM* r = BN_bin2bn(raw, 32, nullptr);
  BIGNUM* s = BN_bin2bn(raw + 32, 32, nullptr);
  if (!sig || !r || !s || ECDSA_SIG_set0(sig.get(), r, s) != 1) {
    BN_free(r);
    BN_free(s);
    return false;
  }
  unsigned char* der = nullptr;
  int der_len = i2d_ECDSA_SIG(sig.get(), &der);
  if (der_len <= 0) return false;
  MdCtx ctx(EVP_MD_CTX_new());
  bool ok = ctx &&
            EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key.get()) == 1 &&
            EVP_DigestVerify(ctx.get(), der, static_cast<std::size_t>(der_len),
                             reinterpret_cast<const unsigned char*>(data.data()), data.size()) == 1;
  OPENSSL_free(der);
  ERR_clear_error();
  return ok;
}

std::string Jws::compact() const { return protected_b64 + "." + payload_b64 + "." + signature_b64; }

nlohmann::json Jws::flattened() const {
  return {{"protected", protected_b64}, {"payload", payload_b64}, {"signature", signature_b64}};
}

base::Result<Jws> jws_sign(const PrivateKey& key, nlohmann::json header, std::string_view payload) {
  header["alg"] = "ES256";
  Jws jws;
  jws.protected_b64 = base64url_encode(header.dump());
  jws.payload_b64 = base64url_encode(payload);
  std::string sig = PHX_TRY(sign_es256(key, jws.protected_b64 + "." + jws.payload_b64));
  jws.signature_b64 = base64url_encode(sig);
  return jws;
}

base::Result<std::string> jwe_decrypt_pbes2(std::string_view compact, std::string_view password) {
  auto bad = [](const std::string& why) {
    return base::fail(ErrorKind::kInvalidInput, "not a usable encrypted key (JWE): " + why);
  };
  std::vector<std::string> parts = base::split(compact, '.');
  if (parts.size() != 5) return bad("a compact JWE has 5 parts separated by dots");
  auto header_json = base64url_decode(parts[0]);
  auto wrapped = base64url_decode(parts[1]);
  auto iv = base64url_decode(parts[2]);
  auto ciphertext = base64url_decode(parts[3]);
  auto tag = base64url_decode(parts[4]);
  if (!header_json || !wrapped || !iv || !ciphertext || !tag) return bad("bad base64url");
  auto header = nlohmann::json::parse(*header_json, nullptr, false);
  if (!header.is_object()) return bad("the protected header is not a JSON object");
  std::string alg = header.value("alg", "");
  std::string enc = header.value("enc", "");
  const Pbes2* variant = nullptr;
  for (const Pbes2& v : kPbes2) {
    if (v.alg == alg) variant = &v;
  }
  if (!variant) return bad("alg \"" + alg + "\" is not a PBES2 key wrap");
  const EVP_CIPHER* cipher = gcm_cipher(enc);
  if (!cipher) return bad("enc \"" + enc + "\" is not supported (A128GCM, A192GCM, A256GCM)");
  auto p2s_it = header.find("p2s");
  auto p2c_it = header.find("p2c");
  if (p2s_it == header.end() || !p2s_it->is_string() || p2c_it == header.end() ||
      !p2c_it->is_number_integer()) {
    return bad("the header lacks p2s or p2c");
  }
  auto p2s = base64url_decode(p2s_it->get<std::string>());
  auto p2c = p2c_it->get<std::int64_t>();
  // RFC 7518 asks for at least 1000 iterations; more than 10 million is a denial of service.
  if (!p2s || p2s->size() < 8 || p2c < 1000 || p2c > 10'000'000) {
    return bad("p2s or p2c out of range");
  }
  if (iv->size() != 12 || tag->size() != 16) return bad("wrong IV or tag size for AES-GCM");
  std::string kek = pbkdf2(*variant, password, *p2s, static_cast<int>(p2c));
  if (kek.empty()) return crypto_fail("PBKDF2 failed");
  std::string cek = aes_key_wrap(variant->wrap(), kek, *wrapped, false);
  auto key_len = static_cast<std::size_t>(EVP_CIPHER_get_key_length(cipher));
  if (cek.size() != key_len) {
    return base::fail(ErrorKind::kPermission,
                      "cannot decrypt the encrypted key: the password is wrong");
  }
  CipherCtx ctx(EVP_CIPHER_CTX_new());
  std::string plain(ciphertext->size() + 16, '\0');
  int len = 0;
  int fin = 0;
  int aad_len = 0;
  auto* out = reinterpret_cast<unsigned char*>(plain.data());
  if (!ctx || EVP_DecryptInit_ex(ctx.get(), cipher, nullptr, nullptr, nullptr) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, 12, nullptr) != 1 ||
      EVP_DecryptInit_ex(ctx.get(), nullptr, nullptr,
                         reinterpret_cast<const unsigned char*>(cek.data()),
                         reinterpret_cast<const unsigned char*>(iv->data())) != 1 ||
      EVP_DecryptUpdate(ctx.get(), nullptr, &aad_len,
                        reinterpret_cast<const unsigned char*>(parts[0].data()),
                        static_cast<int>(parts[0].size())) != 1 ||
      EVP_DecryptUpdate(ctx.get(), out, &len,
                        reinterpret_cast<const unsigned char*>(ciphertext->data()),
                        static_cast<int>(ciphertext->size())) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, 16, tag->data()) != 1 ||
      EVP_DecryptFinal_ex(ctx.get(), out + len, &fin) != 1) {
    ERR_clear_error();
    return base::fail(ErrorKind::kInvalidInput,
                      "cannot decrypt the encrypted key: its authentication tag does not match");
  }
  plain.resize(static_cast<std::size_t>(len + fin));
  return plain;
}

base::Result<std::string> jwe_encrypt_pbes2(std::string_view plaintext, std::string_view password,
                                            int iterations, std::string_view content_type) {
  const Pbes2& variant = kPbes2[0];
  std::string p2s = random_bytes(16);
  nlohmann::json header = {{"alg", variant.alg},
                           {"enc", "A256GCM"},
                           {"p2s", base64url_encode(p2s)},
                           {"p2c", iterations}};
  if (!content_type.empty()) header["cty"] = content_type;
  std::string header_b64 = base64url_encode(header.dump());
  std::string kek = pbkdf2(variant, password, p2s, iterations);
  std::string cek = random_bytes(32);
  std::string iv = random_bytes(12);
  std::string wrapped = aes_key_wrap(variant.wrap(), kek, cek, true);
  if (kek.empty() || wrapped.empty()) return crypto_fail("cannot wrap the content key");
  CipherCtx ctx(EVP_CIPHER_CTX_new());
  std::string ciphertext(plaintext.size() + 16, '\0');
  std::string tag(16, '\0');
  int len = 0;
  int fin = 0;
  int aad_len = 0;
  auto* out = reinterpret_cast<unsigned char*>(ciphertext.data());
  if (!ctx || EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, 12, nullptr) != 1 ||
      EVP_EncryptInit_ex(ctx.get(), nullptr, nullptr,
                         reinterpret_cast<const unsigned char*>(cek.data()),
                         reinterpret_cast<const unsigned char*>(iv.data())) != 1 ||
      EVP_EncryptUpdate(ctx.get(), nullptr, &aad_len,
                        reinterpret_cast<const unsigned char*>(header_b64.data()),
                        static_cast<int>(header_b64.size())) != 1 ||
      EVP_EncryptUpdate(ctx.get(), out, &len,
                        reinterpret_cast<const unsigned char*>(plaintext.data()),
                        static_cast<int>(plaintext.size())) != 1 ||
      EVP_EncryptFinal_ex(ctx.get(), out + len, &fin) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, 16, tag.data()) != 1) {
    return crypto_fail("cannot encrypt with AES-256-GCM");
  }
  ciphertext.resize(static_cast<std::size_t>(len + fin));
  return header_b64 + "." + base64url_encode(wrapped) + "." + base64url_encode(iv) + "." +
         base64url_encode(ciphertext) + "." + base64url_encode(tag);
}

std::vector<std::string> split_pem_certificates(std::string_view pem) {
  static constexpr std::string_view kBegin = "-----BEGIN CERTIFICATE-----";
  static constexpr std::string_view kEnd = "-----END CERTIFICATE-----";
  std::vector<std::string> out;
  std::size_t at = 0;
  while ((at = pem.find(kBegin, at)) != std::string_view::npos) {
    std::size_t end = pem.find(kEnd, at);
    if (end == std::string_view::npos) break;
    end += kEnd.size();
    out.push_back(std::string(pem.substr(at, end - at)) + "\n");
    at = end;
  }
  return out;
}

base::Result<CertInfo> read_certificate(std::string_view pem) {
  X509Ptr cert = parse_pem_certificate(pem);
  if (!cert) {
    ERR_clear_error();
    return base::fail(ErrorKind::kInvalidInput, "not a PEM certificate");
  }
  CertInfo info;
  info.subject_cn = name_cn(X509_get_subject_name(cert.get()));
  info.issuer_cn = name_cn(X509_get_issuer_name(cert.get()));
  info.not_before = unix_time(X509_get0_notBefore(cert.get()));
  info.not_after = unix_time(X509_get0_notAfter(cert.get()));
  Bn serial(ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert.get()), nullptr));
  if (serial) {
    char* hex = BN_bn2hex(serial.get());
    if (hex) info.serial = hex;
    OPENSSL_free(hex);
  }
  GeneralNames names(static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(cert.get(), NID_subject_alt_name, nullptr, nullptr)));
  for (int i = 0; names && i < sk_GENERAL_NAME_num(names.get()); ++i) {
    const GENERAL_NAME* gen = sk_GENERAL_NAME_value(names.get(), i);
    if (gen->type == GEN_DNS) {
      info.dns_names.push_back(asn1_text(gen->d.dNSName));
    } else if (gen->type == GEN_IPADD) {
      std::string raw = asn1_text(gen->d.iPAddress);
      std::array<char, INET6_ADDRSTRLEN> text{};
      int family = raw.size() == 4 ? AF_INET : raw.size() == 16 ? AF_INET6 : 0;
      if (family && inet_ntop(family, raw.data(), text.data(), text.size())) {
        info.ip_addresses.emplace_back(text.data());
      }
    }
  }
  unsigned char* der = nullptr;
  int len = i2d_X509(cert.get(), &der);
  if (len > 0) {
    info.sha256_hex = hex_encode(
        sha256(std::string_view(reinterpret_cast<char*>(der), static_cast<std::size_t>(len))));
  }
  OPENSSL_free(der);
  ERR_clear_error();
  return info;
}

base::Result<bool> certificate_matches_key(std::string_view cert_pem, const PrivateKey& key) {
  X509Ptr cert = parse_pem_certificate(cert_pem);
  if (!cert) {
    ERR_clear_error();
    return base::fail(ErrorKind::kInvalidInput, "not a PEM certificate");
  }
  return EVP_PKEY_eq(X509_get0_pubkey(cert.get()), key.get()) == 1;
}

base::Result<void> verify_certificate(std::string_view leaf_pem, std::string_view chain_pem,
                                      std::string_view roots_pem, std::int64_t at) {
  X509Ptr leaf = parse_pem_certificate(leaf_pem);
  if (!leaf) {
    ERR_clear_error();
    return base::fail(ErrorKind::kInvalidInput, "the leaf is not a PEM certificate");
  }
  X509Store store(X509_STORE_new());
  X509Stack chain(sk_X509_new_null());
  X509StoreCtx ctx(X509_STORE_CTX_new());
  if (!store || !chain || !ctx) return crypto_fail("cannot allocate a certificate store");
  std::vector<std::string> roots = split_pem_certificates(roots_pem);
  if (roots.empty()) return base::fail(ErrorKind::kInvalidInput, "no root certificate given");
  for (const std::string& pem : roots) {
    X509Ptr root = parse_pem_certificate(pem);
    if (!root || X509_STORE_add_cert(store.get(), root.get()) != 1) {
      return crypto_fail("cannot use a root certificate");
    }
  }
  for (const std::string& pem : split_pem_certificates(chain_pem)) {
    X509Ptr cert = parse_pem_certificate(pem);
    if (!cert || sk_X509_push(chain.get(), cert.get()) == 0) {
      return crypto_fail("cannot use an intermediate certificate");
    }
    cert.release();  // owned by the stack now
  }
  if (X509_STORE_CTX_init(ctx.get(), store.get(), leaf.get(), chain.get()) != 1) {
    return crypto_fail("cannot set up verification");
  }
  if (at != 0) X509_STORE_CTX_set_time(ctx.get(), 0, static_cast<time_t>(at));
  if (X509_verify_cert(ctx.get()) != 1) {
    int err = X509_STORE_CTX_get_error(ctx.get());
    ERR_clear_error();
    return base::fail(ErrorKind::kPermission, std::string("certificate does not verify: ") +
                                                  X509_verify_cert_error_string(err));
  }
  return {};
}

}  // namespace phoenix::ca
