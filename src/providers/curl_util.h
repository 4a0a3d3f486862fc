#pragma once

// What every libcurl-based transport of Phoenix needs (providers/docker, providers/proxmox).

#include <cstddef>

#include "base/error.h"

namespace phoenix::providers {

// curl_global_init is not thread-safe and must run once before any handle exists.
base::Result<void> init_curl_once();

// A CURLOPT_WRITEFUNCTION appending to the std::string given as CURLOPT_WRITEDATA. Nothing may
// throw into libcurl's C frames: an allocation failure aborts the transfer instead.
std::size_t append_body(char* data, std::size_t size, std::size_t count, void* user);

}  // namespace phoenix::providers
