#pragma once

// What every libcurl-based transport of Phoenix needs (providers/docker, providers/proxmox).

#include <cstddef>
#include <string>

#include "base/error.h"

namespace phoenix::providers {

// curl_global_init is not thread-safe and must run once before any handle exists. libcurl is
// loaded then, not at start (curl_lazy.cc); a failure to load it is reported here.
base::Result<void> init_curl_once();

// Why libcurl.so.4 could not be loaded (dlerror's text); empty when it was. Loads it on first use.
std::string curl_load_error();

// A CURLOPT_WRITEFUNCTION appending to the std::string given as CURLOPT_WRITEDATA. Nothing may
// throw into libcurl's C frames: an allocation failure aborts the transfer instead.
std::size_t append_body(char* data, std::size_t size, std::size_t count, void* user);

// What a failed transfer (curl_easy_perform != CURLE_OK) says about the request, read from the
// handle: kTransient when it never left (cannot connect or resolve, reset during the TLS
// handshake, or nothing was sent), kPermission when the peer's certificate did not verify,
// kTimeout when it was sent but the answer did not come (the server may have acted on it),
// kInternal otherwise. `text` gets libcurl's message (its error buffer, else the code's text).
struct TransferFailure {
  base::ErrorKind kind = base::ErrorKind::kInternal;
  std::string text;
};
TransferFailure classify_failure(void* curl_handle, int curl_code, const char* error_buffer);

}  // namespace phoenix::providers
