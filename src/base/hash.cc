#include "base/hash.h"

#include <openssl/evp.h>

#include <cctype>

namespace phoenix::base {

namespace {

std::string digest_hex(std::string_view data, const EVP_MD* md) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), digest, &len, md, nullptr);
  return to_hex(std::string_view(reinterpret_cast<const char*>(digest), len));
}

}  // namespace

std::string to_hex(std::string_view bytes) {
  static const char* kHex = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char ch : bytes) {
    auto c = static_cast<unsigned char>(ch);
    out += kHex[c >> 4];
    out += kHex[c & 15];
  }
  return out;
}

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
