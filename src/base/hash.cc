#include "base/hash.h"

#include <openssl/evp.h>

#include <cctype>

namespace phoenix::base {

namespace {

std::string digest_hex(std::string_view data, const EVP_MD* md) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), digest, &len, md, nullptr);
  static const char* kHex = "0123456789abcdef";
  std::string out;
  out.reserve(len * 2);
  for (unsigned int i = 0; i < len; ++i) {
    out += kHex[digest[i] >> 4];
    out += kHex[digest[i] & 15];
  }
  return out;
}

}  // namespace

std::string sha256_hex(std::string_view data) { return digest_hex(data, EVP_sha256()); }

std::string sha1_hex(std::string_view data) { return digest_hex(data, EVP_sha1()); }

std::optional<std::string> normalize_sha256_fingerprint(std::string_view text) {
  std::string hex;
  for (char ch : text) {
    if (ch == ':') continue;
    if (!std::isxdigit(static_cast<unsigned char>(ch))) return std::nullopt;
    hex += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  }
  if (hex.size() != 64) return std::nullopt;
  return hex;
}

}  // namespace phoenix::base
