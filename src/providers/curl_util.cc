#include "providers/curl_util.h"

#include <curl/curl.h>

#include <mutex>
#include <string>

namespace phoenix::providers {

base::Result<void> init_curl_once() {
  static std::once_flag once;
  static CURLcode result = CURLE_OK;
  std::call_once(once, [] { result = curl_global_init(CURL_GLOBAL_DEFAULT); });
  if (result != CURLE_OK) {
    return base::fail(base::ErrorKind::kInternal,
                      std::string("cannot initialise libcurl: ") + curl_easy_strerror(result));
  }
  return {};
}

std::size_t append_body(char* data, std::size_t size, std::size_t count, void* user) {
  try {
    static_cast<std::string*>(user)->append(data, size * count);
  } catch (...) {
    return 0;  // less than given: libcurl aborts the transfer
  }
  return size * count;
}

}  // namespace phoenix::providers
