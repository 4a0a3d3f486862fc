#pragma once

// A ChallengeResponder that answers http-01 itself: a small HTTP/1.1 server on its own thread,
// serving /.well-known/acme-challenge/<token> from what was published and 404 for anything else.
// For a host whose port 80 Phoenix may bind, and for tests (127.0.0.1, port 0).

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "providers/ca/acme.h"

namespace phoenix::ca {

class Http01Server final : public ChallengeResponder {
 public:
  // Binds `address`:`port` (0: any free port) and starts serving.
  static base::Result<std::unique_ptr<Http01Server>> start(const std::string& address,
                                                           int port = 80);
  ~Http01Server() override;  // stops the thread and closes the socket
  Http01Server(const Http01Server&) = delete;
  Http01Server& operator=(const Http01Server&) = delete;

  base::Result<void> publish(const std::string& token,
                             const std::string& key_authorization) override;
  void remove(const std::string& token) override;

  int port() const { return port_; }
  // How many challenge answers it has served (not 404s): a test's proof that the CA came.
  int served() const { return served_.load(); }

 private:
  Http01Server() = default;
  void run();
  void answer(int fd);

  int listen_fd_ = -1;
  int wake_[2] = {-1, -1};  // a pipe; writing to it ends run()
  int port_ = 0;
  std::atomic<int> served_{0};
  std::mutex mu_;
  std::map<std::string, std::string> answers_;  // token -> key authorization
  std::thread thread_;
};

}  // namespace phoenix::ca
