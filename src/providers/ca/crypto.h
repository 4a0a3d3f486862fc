#pragma once

// The cryptography both certificate authorities need, on OpenSSL 3: private keys and CSRs, the
// JOSE pieces of ACME and of step-ca's tokens (base64url, JWK, RFC 7638 thumbprints, ES256
// JWS, PBES2 JWE), and reading certificates back.

#include <openssl/types.h>

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"

namespace phoenix::ca {

enum class KeyType { kEcP256, kEcP384, kRsa2048 };
std::string_view to_string(KeyType type);

// An owned OpenSSL private (or public) key; copies share it.
class PrivateKey {
 public:
  PrivateKey() = default;
  explicit PrivateKey(EVP_PKEY* key);  // takes ownership
  EVP_PKEY* get() const { return key_.get(); }
  explicit operator bool() const { return key_ != nullptr; }

 private:
  std::shared_ptr<EVP_PKEY> key_;
};

base::Result<PrivateKey> generate_key(KeyType type = KeyType::kEcP256);
// PKCS#8 or traditional PEM, unencrypted.
base::Result<PrivateKey> read_private_key_pem(std::string_view pem);
// Unencrypted PKCS#8 PEM ("-----BEGIN PRIVATE KEY-----").
base::Result<std::string> private_key_pem(const PrivateKey& key);

// Whether `name` is an IPv4 or IPv6 address (and so an IP SAN, an "ip" identifier).
bool is_ip_address(std::string_view name);
// The address as inet_ntop writes it ("2001:db8::1"), or nullopt when `name` is not one.
std::optional<std::string> canonical_ip(std::string_view name);

// A PKCS#10 request signed by `key` (SHA-256): subject CN=`common_name`, and a subjectAltName
// extension with `sans`, each a DNS name or an IP address. Returns DER.
base::Result<std::string> make_csr(const PrivateKey& key, std::string_view common_name,
                                   std::span<const std::string> sans);
// DER as PEM with the given label ("CERTIFICATE REQUEST", "CERTIFICATE").
std::string pem_encode(std::string_view der, std::string_view label);

// RFC 4648 §5 without padding. Decoding accepts no padding and nothing outside the alphabet.
std::string base64url_encode(std::string_view data);
std::optional<std::string> base64url_decode(std::string_view text);

// Random bytes from OpenSSL's CSPRNG.
std::string random_bytes(std::size_t count);
std::string hex_encode(std::string_view data);

// The public JWK of an EC P-256 key: {"crv","kty","x","y"}.
base::Result<nlohmann::json> public_jwk(const PrivateKey& key);
// RFC 7638: base64url(SHA-256(the JWK's required members, sorted, without white space)).
base::Result<std::string> jwk_thumbprint(const PrivateKey& key);
// An EC P-256 key from a JWK; with "d" a private key, without it a public one.
base::Result<PrivateKey> key_from_jwk(const nlohmann::json& jwk);

// ES256: ECDSA P-256 over SHA-256, the signature as r || s (64 bytes), as JWS wants it.
base::Result<std::string> sign_es256(const PrivateKey& key, std::string_view data);
bool verify_es256(const PrivateKey& key, std::string_view data, std::string_view signature);

// A signed JWS: each part base64url-encoded.
struct Jws {
  std::string protected_b64, payload_b64, signature_b64;
  std::string compact() const;       // a.b.c, as JWTs are sent
  nlohmann::json flattened() const;  // {"protected","payload","signature"}, as ACME wants it
};
// Signs `payload` with ES256 under `header` (to which "alg":"ES256" is added).
base::Result<Jws> jws_sign(const PrivateKey& key, nlohmann::json header, std::string_view payload);

// A compact JWE encrypted with a password: alg PBES2-HS256+A128KW (or -HS384+A192KW,
// -HS512+A256KW), enc A128GCM or A256GCM. This is how step-ca stores a JWK provisioner's key.
// A wrong password is kPermission; nothing of the password appears in an error.
base::Result<std::string> jwe_decrypt_pbes2(std::string_view compact, std::string_view password);
// The inverse, with PBES2-HS256+A128KW and A256GCM, as `step crypto jwk create` writes it.
base::Result<std::string> jwe_encrypt_pbes2(std::string_view plaintext, std::string_view password,
                                            int iterations, std::string_view content_type);

// What Phoenix needs to know about an issued certificate.
struct CertInfo {
  std::string subject_cn;
  std::string issuer_cn;
  std::vector<std::string> dns_names;
  std::vector<std::string> ip_addresses;
  std::int64_t not_before = 0;  // unix time
  std::int64_t not_after = 0;
  std::string serial;      // upper-case hex, as `openssl x509 -serial` prints it
  std::string sha256_hex;  // of the DER, lower-case hex
};

// The certificates of a PEM bundle, each as its own PEM block, in order. Other blocks and text
// between them are skipped.
std::vector<std::string> split_pem_certificates(std::string_view pem);
// The first certificate of `pem`.
base::Result<CertInfo> read_certificate(std::string_view pem);
// Whether the certificate's public key is `key`'s.
base::Result<bool> certificate_matches_key(std::string_view cert_pem, const PrivateKey& key);
// Verifies `leaf_pem` up to one of `roots_pem` through `chain_pem` (intermediates), at `at` (unix
// time; 0: now). The error says what OpenSSL found wrong.
base::Result<void> verify_certificate(std::string_view leaf_pem, std::string_view chain_pem,
                                      std::string_view roots_pem, std::int64_t at = 0);

}  // namespace phoenix::ca
