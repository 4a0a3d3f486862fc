#include "providers/curl_util.h"

#include <curl/curl.h>

#include <cerrno>
#include <mutex>
#include <string>

namespace phoenix::providers {

base::Result<void> init_curl_once() {
  static std::once_flag once;
  static CURLcode result = CURLE_OK;
  std::call_once(once, [] { result = curl_global_init(CURL_GLOBAL_DEFAULT); });
  if (std::string why = curl_load_error(); !why.empty()) {
    return base::fail(
        base::ErrorKind::kInternal,
        "cannot load libcurl: " + why + "; install it (Debian: apt install libcurl4)");
  }
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

TransferFailure classify_failure(void* handle, int curl_code, const char* error_buffer) {
  auto code = static_cast<CURLcode>(curl_code);
  CURL* c = static_cast<CURL*>(handle);
  long os_errno = 0;
  curl_easy_getinfo(c, CURLINFO_OS_ERRNO, &os_errno);
  curl_off_t sent = 0;
  curl_easy_getinfo(c, CURLINFO_REQUEST_SIZE, &sent);
  TransferFailure f;
  f.text = error_buffer && error_buffer[0] ? error_buffer : curl_easy_strerror(code);
  if (code == CURLE_COULDNT_CONNECT || code == CURLE_COULDNT_RESOLVE_HOST ||
      (code == CURLE_SSL_CONNECT_ERROR && os_errno == ECONNRESET)) {
    f.kind = base::ErrorKind::kTransient;  // the request never left
  } else if (code == CURLE_PEER_FAILED_VERIFICATION || code == CURLE_SSL_CACERT_BADFILE ||
             code == CURLE_SSL_CONNECT_ERROR) {
    f.kind = base::ErrorKind::kPermission;
  } else if (code == CURLE_OPERATION_TIMEDOUT || code == CURLE_GOT_NOTHING ||
             code == CURLE_RECV_ERROR || code == CURLE_SEND_ERROR || code == CURLE_PARTIAL_FILE ||
             code == CURLE_HTTP2 || code == CURLE_HTTP2_STREAM) {
    // Sent (or perhaps sent): whether the server acted on it is unknown. An HTTP/2 framing
    // error is a connection that broke (seen from a step-ca that had just started).
    f.kind = sent > 0 ? base::ErrorKind::kTimeout : base::ErrorKind::kTransient;
  }
  return f;
}

}  // namespace phoenix::providers
