#pragma once

// The real Transport: HTTP over the engine's unix socket, or HTTPS with mutual TLS over TCP,
// on libcurl. Phoenix never talks to an engine over plain TCP: an engine that listens on TCP
// without client certificates hands root on its host to anyone who can reach the port.

#include <chrono>
#include <memory>
#include <string>

#include "base/error.h"
#include "providers/docker/api.h"

namespace phoenix::docker {

struct Endpoint {
  std::string url = {};        // unix:///var/run/docker.sock | tcp://host:port (mutual TLS)
  std::string ca_file = {};    // tcp:// only, all three required: the CA that signed the engine,
  std::string cert_file = {};  // the client certificate the engine trusts,
  std::string key_file = {};   // and its private key
  std::chrono::milliseconds timeout{30000};  // per request, unless Request::timeout says otherwise
  std::chrono::milliseconds connect_timeout{5000};  // connecting, TLS handshake included
};

// One engine endpoint over one libcurl easy handle, reused so that consecutive requests share a
// kept-alive connection (and TLS session). Not thread-safe: one request at a time; give each
// thread its own EngineClient.
//
// The server certificate is always verified against ca_file, host name or IP included; proxies
// from the environment are ignored. Messages name the endpoint, the method and the path (not
// the query) and libcurl's explanation; they never contain a credential.
class EngineClient final : public Transport {
 public:
  ~EngineClient() override;
  EngineClient(const EngineClient&) = delete;
  EngineClient& operator=(const EngineClient&) = delete;

  base::Result<Response> send(const Request& request) override;
  std::string describe() const override;

 private:
  struct State;
  explicit EngineClient(std::unique_ptr<State> state);
  friend base::Result<std::unique_ptr<Transport>> make_engine_client(const Endpoint& endpoint);

  std::unique_ptr<State> state_;
};

// Checks the endpoint before any connection: a known scheme, a host and port for tcp://, and
// for tcp:// the three TLS files, each of which must exist and be readable. Errors are
// kInvalidInput (kPermission for a file that exists but cannot be read).
base::Result<std::unique_ptr<Transport>> make_engine_client(const Endpoint& endpoint);

}  // namespace phoenix::docker
