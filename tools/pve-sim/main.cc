// pve-sim: an HTTPS server speaking the subset of the Proxmox VE API that Phoenix uses, every
// request validated against the official schema. See tools/pve-sim/README.md.
#include <httplib.h>
#include <signal.h>
#include <sys/socket.h>

#include <CLI/CLI.hpp>
#include <cctype>
#include <cstdio>
#include <iostream>
#include <thread>

#include "api.h"
#include "base/fs.h"
#include "cert.h"

namespace phoenix::pvesim {
namespace {

base::Result<std::map<std::string, std::string>> read_tokens(const std::string& file) {
  std::map<std::string, std::string> out;
  if (file.empty()) return out;
  std::string text = PHX_TRY(base::read_file(file));
  std::size_t line_no = 0, i = 0;
  while (i < text.size()) {
    std::size_t j = text.find('\n', i);
    if (j == std::string::npos) j = text.size();
    std::string line = text.substr(i, j - i);
    i = j + 1;
    ++line_no;
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (line.empty() || line.front() == '#') continue;
    auto bang = line.find('!');
    auto eq = bang == std::string::npos ? std::string::npos : line.find('=', bang);
    if (eq == std::string::npos) {
      return base::fail(base::ErrorKind::kInvalidInput,
                        file + ":" + std::to_string(line_no) + ": expected user@realm!id=secret");
    }
    out[line.substr(0, eq)] = line.substr(eq + 1);
  }
  return out;
}

std::string scalar_text(const nlohmann::json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_boolean()) return v.get<bool>() ? "1" : "0";
  return v.dump();
}

// Query string and form bodies are decoded by httplib into req.params; JSON bodies here.
std::string url_decode(std::string_view text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '+') {
      out += ' ';
    } else if (c == '%' && i + 2 < text.size() &&
               std::isxdigit(static_cast<unsigned char>(text[i + 1])) &&
               std::isxdigit(static_cast<unsigned char>(text[i + 2]))) {
      out += static_cast<char>(std::stoi(std::string(text.substr(i + 1, 2)), nullptr, 16));
      i += 2;
    } else {
      out += c;
    }
  }
  return out;
}

// "a=1&b=2&a=3" into `p`. A parameter given more than once (an array, as `command` of
// agent/exec) keeps every value, in order, separated by kArraySeparator. (httplib's own
// req.params drops a repeated key=value pair, so the raw text is decoded here.)
void add_form(std::string_view text, Params& p) {
  std::size_t i = 0;
  while (i < text.size()) {
    std::size_t j = text.find('&', i);
    if (j == std::string_view::npos) j = text.size();
    std::string_view pair = text.substr(i, j - i);
    i = j + 1;
    if (pair.empty()) continue;
    std::size_t eq = pair.find('=');
    std::string k = url_decode(pair.substr(0, eq));
    std::string v = eq == std::string_view::npos ? "" : url_decode(pair.substr(eq + 1));
    auto [it, fresh] = p.try_emplace(k, v);
    if (!fresh) it->second += kArraySeparator + v;
  }
}

// The query's and the body's parameters; a JSON array keeps its items as a repeated parameter.
std::optional<Params> decode_params(const httplib::Request& req) {
  Params p;
  if (auto q = req.target.find('?'); q != std::string::npos) {
    add_form(std::string_view(req.target).substr(q + 1), p);
  }
  if (req.get_header_value("Content-Type").starts_with("application/x-www-form-urlencoded")) {
    add_form(req.body, p);
  }
  if (req.get_header_value("Content-Type").starts_with("application/json") && !req.body.empty()) {
    auto j = nlohmann::json::parse(req.body, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return std::nullopt;
    for (auto it = j.begin(); it != j.end(); ++it) {
      if (it->is_null()) continue;
      if (it->is_array()) {
        std::string joined;
        for (std::size_t i = 0; i < it->size(); ++i) {
          if (i) joined += kArraySeparator;
          joined += scalar_text((*it)[i]);
        }
        p[it.key()] = joined;
        continue;
      }
      p[it.key()] = scalar_text(it.value());
    }
  }
  return p;
}

int run(int argc, char** argv) {
  CLI::App app{"pve-sim: a Proxmox VE API simulator"};
  std::string listen = "127.0.0.1", schema_file, state_dir, token_file, cert_file, key_file;
  int port = 8006;
  int task_ms = 200, lock_wait_ms = 10000, latency_ms = 0, agent_delay_ms = 1000;
  FaultOptions faults;
  SimOptions opts;
  app.add_option("--listen", listen, "address to listen on");
  app.add_option("--port", port, "port (0: any free port, printed on stdout)");
  app.add_option("--schema", schema_file, "pve-apidata.json")->required();
  app.add_option("--state-dir", state_dir, "directory holding guests and the certificate")
      ->required();
  app.add_option("--token-file", token_file, "API tokens, lines of user@realm!id=secret");
  app.add_option("--cert", cert_file, "PEM certificate (default: generated in the state dir)");
  app.add_option("--key", key_file, "PEM private key of --cert");
  app.add_option("--node", opts.node, "node name");
  app.add_option("--task-duration", task_ms, "duration of each task, ms");
  app.add_option("--lock-wait", lock_wait_ms, "how long a call waits for a guest lock, ms");
  app.add_option("--latency", latency_ms, "latency added to every request, ms");
  app.add_option("--fail-rate", faults.fail_rate, "fraction of requests answered 500/503");
  app.add_option("--drop-rate", faults.drop_rate, "fraction of requests dropped unanswered");
  app.add_option("--task-fail-rate", faults.task_fail_rate, "fraction of tasks that fail");
  app.add_option("--lock-rate", faults.lock_rate,
                 "fraction of guest-locking calls that find the guest locked by another task");
  app.add_option("--agent-delay", agent_delay_ms,
                 "how long after a VM starts its guest agent answers, ms");
  app.add_option("--agent-exec", opts.agent_exec,
                 "program a VM's agent/exec runs: PROGRAM VMID ARGV... (default: refused)");
  app.add_option(
      "--guest-hook", opts.guest_hook,
      "program run when a guest starts, stops or is destroyed: PROGRAM "
      "start|stop|destroy VMID, the guest as JSON on its standard input (default: none)");
  app.add_option("--seed", faults.seed, "seed of the fault generator");
  CLI11_PARSE(app, argc, argv);
  faults.latency = std::chrono::milliseconds(latency_ms);
  opts.task_duration = std::chrono::milliseconds(task_ms);
  opts.lock_wait = std::chrono::milliseconds(lock_wait_ms);
  opts.agent_delay = std::chrono::milliseconds(agent_delay_ms);

  auto fail = [](const base::Error& e) {
    std::cerr << "pve-sim: error: " << e.describe() << "\n";
    return 1;
  };
  auto tokens = read_tokens(token_file);
  if (!tokens) return fail(tokens.error());
  opts.tokens = *tokens;
  auto schema = ApiSchema::load(schema_file);
  if (!schema) return fail(schema.error());
  auto store = StateStore::open(state_dir);
  if (!store) return fail(store.error());
  CertFiles cert;
  if (cert_file.empty()) {
    auto c = ensure_certificate(state_dir, opts.node);
    if (!c) return fail(c.error());
    cert = *c;
  } else {
    cert.cert = cert_file;
    cert.key = key_file;
  }

  // Signals are taken by a dedicated thread so that server threads never see them.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  signal(SIGPIPE, SIG_IGN);

  Simulator sim(opts, std::move(*schema), std::move(*store), faults);
  httplib::SSLServer server(cert.cert.c_str(), cert.key.c_str());
  if (!server.is_valid()) {
    std::cerr << "pve-sim: error: cannot use certificate " << cert.cert << "\n";
    return 1;
  }
  auto handler = [&sim](const httplib::Request& req, httplib::Response& res) {
    static constexpr std::string_view kBase = "/api2/json";
    ApiResponse r;
    auto params = decode_params(req);
    if (!params) {
      r = ApiResponse::error(400, "malformed JSON body");
    } else if (!req.path.starts_with(kBase)) {
      r = ApiResponse::error(501, "Method '" + req.method + " " + req.path + "' not implemented");
    } else {
      std::string path = req.path.substr(kBase.size());
      if (path.empty()) path = "/";
      r = sim.handle(req.method, path, req.get_header_value("Authorization"), std::move(*params));
    }
    if (r.drop) {
      if (req.ssl) ::shutdown(SSL_get_fd(req.ssl), SHUT_RDWR);
      return;
    }
    res.status = r.status;
    res.set_content(r.body(), "application/json;charset=UTF-8");
  };
  server.Get(".*", handler);
  // Bodies are read here, not by httplib: its compiled-in cap on form bodies (8 KiB, 413) is
  // below what Proxmox takes (a guest agent's 64 KiB of input-data, URL-encoded).
  auto with_body = [handler](const httplib::Request& req, httplib::Response& res,
                             const httplib::ContentReader& reader) {
    httplib::Request full = req;
    reader([&full](const char* data, std::size_t n) {
      full.body.append(data, n);
      return full.body.size() <= (std::size_t{1} << 20);
    });
    handler(full, res);
  };
  server.Post(".*", with_body);
  server.Put(".*", with_body);
  server.Delete(".*", handler);

  int bound =
      port == 0 ? server.bind_to_any_port(listen) : (server.bind_to_port(listen, port) ? port : -1);
  if (bound < 0) {
    std::cerr << "pve-sim: error: cannot listen on " << listen << ":" << port << "\n";
    return 1;
  }
  std::string host = listen.find(':') != std::string::npos ? "[" + listen + "]" : listen;
  std::cout << "pve-sim listening on https://" << host << ":" << bound << std::endl;
  std::cout << "certificate " << cert.cert.string() << " fingerprint " << cert.fingerprint
            << std::endl;

  std::thread waiter([&] {
    int sig = 0;
    sigwait(&sigs, &sig);
    server.stop();
  });
  bool ok = server.listen_after_bind();
  if (waiter.joinable()) {
    pthread_kill(waiter.native_handle(), SIGTERM);
    waiter.join();
  }
  return ok ? 0 : 1;
}

}  // namespace
}  // namespace phoenix::pvesim

int main(int argc, char** argv) { return phoenix::pvesim::run(argc, argv); }
