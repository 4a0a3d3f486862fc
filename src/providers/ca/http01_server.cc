#include "providers/ca/http01_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>

namespace phoenix::ca {
namespace {

using base::ErrorKind;

constexpr std::string_view kPrefix = "/.well-known/acme-challenge/";
constexpr std::size_t kMaxRequest = 8192;
constexpr int kClientTimeoutMs = 5000;

void send_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    data.remove_prefix(static_cast<std::size_t>(n));
  }
}

std::string response(int status, std::string_view reason, std::string_view body) {
  return "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason) +
         "\r\nContent-Type: text/plain\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\nConnection: close\r\n\r\n" + std::string(body);
}

}  // namespace

base::Result<std::unique_ptr<Http01Server>> Http01Server::start(const std::string& address,
                                                                int port) {
  std::unique_ptr<Http01Server> server(new Http01Server());
  sockaddr_storage addr{};
  socklen_t addr_len = 0;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&addr);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&addr);
  if (inet_pton(AF_INET, address.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<std::uint16_t>(port));
    addr_len = sizeof *v4;
  } else if (inet_pton(AF_INET6, address.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<std::uint16_t>(port));
    addr_len = sizeof *v6;
  } else {
    return base::fail(ErrorKind::kInvalidInput,
                      "http-01 responder: \"" + address + "\" is not an IP address");
  }
  std::string where = address + ":" + std::to_string(port);
  int fd = ::socket(addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return base::fail(ErrorKind::kInternal,
                      std::string("http-01 responder: socket: ") + std::strerror(errno));
  }
  server->listen_fd_ = fd;
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), addr_len) != 0 || ::listen(fd, 16) != 0) {
    int err = errno;
    return base::fail(err == EACCES ? ErrorKind::kPermission : ErrorKind::kConflict,
                      "http-01 responder: cannot listen on " + where + ": " + std::strerror(err));
  }
  sockaddr_storage bound{};
  socklen_t bound_len = sizeof bound;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &bound_len);
  server->port_ =
      ntohs(bound.ss_family == AF_INET ? reinterpret_cast<sockaddr_in*>(&bound)->sin_port
                                       : reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port);
  if (::pipe2(server->wake_, O_CLOEXEC) != 0) {
    return base::fail(ErrorKind::kInternal,
                      std::string("http-01 responder: pipe: ") + std::strerror(errno));
  }
  server->thread_ = std::thread([s = server.get()] { s->run(); });
  return server;
}

Http01Server::~Http01Server() {
  if (thread_.joinable()) {
    char byte = 0;
    while (::write(wake_[1], &byte, 1) < 0 && errno == EINTR) {
    }
    thread_.join();
  }
  for (int fd : {listen_fd_, wake_[0], wake_[1]}) {
    if (fd >= 0) ::close(fd);
  }
}

base::Result<void> Http01Server::publish(const std::string& token,
                                         const std::string& key_authorization) {
  std::lock_guard lock(mu_);
  answers_[token] = key_authorization;
  return {};
}

void Http01Server::remove(const std::string& token) {
  std::lock_guard lock(mu_);
  answers_.erase(token);
}

void Http01Server::run() {
  while (true) {
    std::array<pollfd, 2> fds{{{listen_fd_, POLLIN, 0}, {wake_[0], POLLIN, 0}}};
    if (::poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents != 0) return;
    if ((fds[0].revents & POLLIN) == 0) continue;
    int client = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) continue;
    answer(client);
    ::close(client);
  }
}

// One request per connection; the answer closes it. A client that sends nothing for
// kClientTimeoutMs is dropped.
void Http01Server::answer(int fd) {
  std::string request;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kClientTimeoutMs);
  while (request.find("\r\n\r\n") == std::string::npos && request.size() < kMaxRequest) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    pollfd p{fd, POLLIN, 0};
    if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0) return;
    std::array<char, 2048> buf{};
    ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
    if (n <= 0) return;
    request.append(buf.data(), static_cast<std::size_t>(n));
  }
  // "GET /.well-known/acme-challenge/<token> HTTP/1.1"
  std::string_view line(request);
  line = line.substr(0, line.find("\r\n"));
  auto sp1 = line.find(' ');
  auto sp2 = line.rfind(' ');
  if (sp1 == std::string_view::npos || sp2 == sp1) {
    send_all(fd, response(400, "Bad Request", "bad request\n"));
    return;
  }
  std::string_view method = line.substr(0, sp1);
  std::string_view path = line.substr(sp1 + 1, sp2 - sp1 - 1);
  if (method != "GET" && method != "HEAD") {
    send_all(fd, response(405, "Method Not Allowed", "only GET\n"));
    return;
  }
  std::string answer;
  if (path.starts_with(kPrefix)) {
    std::lock_guard lock(mu_);
    auto it = answers_.find(std::string(path.substr(kPrefix.size())));
    if (it != answers_.end()) answer = it->second;
  }
  if (answer.empty()) {
    send_all(fd, response(404, "Not Found", "no such challenge\n"));
    return;
  }
  std::string reply = response(200, "OK", answer);
  if (method == "HEAD") reply.resize(reply.size() - answer.size());
  send_all(fd, reply);
  served_.fetch_add(1);
}

}  // namespace phoenix::ca
