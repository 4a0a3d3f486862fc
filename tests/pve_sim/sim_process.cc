#include "sim_process.h"

#include <curl/curl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <thread>

namespace phoenix::pvesim::testing {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

SimProcess::SimProcess() {
  std::string tmpl = (fs::temp_directory_path() / "pve-sim-test-XXXXXX").string();
  if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
  dir_ = tmpl;
  std::ofstream(dir_ / "tokens") << "# test tokens\n" << kToken << "=" << kSecret << "\n";
}

SimProcess::~SimProcess() {
  stop();
  std::error_code ec;
  fs::remove_all(dir_, ec);
}

std::string SimProcess::base_url() const {
  return "https://127.0.0.1:" + std::to_string(port_) + "/api2/json";
}

bool SimProcess::start(std::vector<std::string> extra) {
  int out[2];
  if (pipe(out) != 0) return false;
  std::vector<std::string> args = {PVE_SIM_BINARY,
                                   "--port",
                                   "0",
                                   "--schema",
                                   PVE_APIDATA_JSON,
                                   "--state-dir",
                                   (dir_ / "state").string(),
                                   "--token-file",
                                   (dir_ / "tokens").string()};
  args.insert(args.end(), extra.begin(), extra.end());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_ = fork();
  if (pid_ == 0) {
    dup2(out[1], STDOUT_FILENO);
    close(out[0]);
    close(out[1]);
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(out[1]);
  // Read the first line: "pve-sim listening on https://127.0.0.1:PORT".
  std::string line;
  auto deadline = Clock::now() + std::chrono::seconds(30);
  while (line.find('\n') == std::string::npos && Clock::now() < deadline) {
    pollfd p{.fd = out[0], .events = POLLIN, .revents = 0};
    if (poll(&p, 1, 100) <= 0) continue;
    char buf[256];
    ssize_t n = read(out[0], buf, sizeof buf);
    if (n <= 0) break;
    line.append(buf, static_cast<std::size_t>(n));
  }
  close(out[0]);  // later output goes nowhere; the server ignores SIGPIPE
  auto colon = line.rfind(':', line.find('\n'));
  if (line.find("pve-sim listening on https://127.0.0.1:") != 0 || colon == std::string::npos) {
    ADD_FAILURE() << "pve-sim did not start; said: " << line;
    stop();
    return false;
  }
  port_ = std::atoi(line.c_str() + colon + 1);
  return port_ > 0;
}

void SimProcess::stop() {
  if (pid_ <= 0) return;
  kill(pid_, SIGTERM);
  auto deadline = Clock::now() + std::chrono::seconds(10);
  int status = 0;
  while (waitpid(pid_, &status, WNOHANG) == 0) {
    if (Clock::now() > deadline) {
      kill(pid_, SIGKILL);
      waitpid(pid_, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  pid_ = -1;
}

namespace {

size_t collect(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

std::string encode(CURL* curl, const std::map<std::string, std::string>& params) {
  std::string out;
  for (const auto& [k, v] : params) {
    char* ek = curl_easy_escape(curl, k.c_str(), static_cast<int>(k.size()));
    char* ev = curl_easy_escape(curl, v.c_str(), static_cast<int>(v.size()));
    out += (out.empty() ? "" : "&") + std::string(ek) + "=" + ev;
    curl_free(ek);
    curl_free(ev);
  }
  return out;
}

}  // namespace

HttpResult call(const SimProcess& sim, const std::string& method, const std::string& path,
                const std::map<std::string, std::string>& params, const std::string& auth) {
  HttpResult r;
  CURL* curl = curl_easy_init();
  std::string form = encode(curl, params);
  std::string url = sim.base_url() + path;
  bool in_query = method == "GET" || method == "DELETE";
  if (in_query && !form.empty()) url += "?" + form;
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method.c_str());
  std::string ca = (sim.state_dir() / "state" / "pve-ssl.pem").string();
  curl_easy_setopt(curl, CURLOPT_CAINFO, ca.c_str());
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 30000L);
  if (!in_query) curl_easy_setopt(curl, CURLOPT_COPYPOSTFIELDS, form.c_str());
  curl_slist* headers = nullptr;
  if (!auth.empty()) headers = curl_slist_append(headers, ("Authorization: " + auth).c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &r.raw);
  r.curl_code = curl_easy_perform(curl);
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &r.status);
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
  r.body = nlohmann::json::parse(r.raw, nullptr, false);
  return r;
}

nlohmann::json wait_task(const SimProcess& sim, const std::string& upid,
                         std::chrono::milliseconds deadline) {
  auto node_end = upid.find(':', 5);
  std::string node = upid.substr(5, node_end - 5);
  auto until = Clock::now() + deadline;
  nlohmann::json last;
  while (Clock::now() < until) {
    char* e = curl_easy_escape(nullptr, upid.c_str(), static_cast<int>(upid.size()));
    std::string path = "/nodes/" + node + "/tasks/" + e + "/status";
    curl_free(e);
    auto r = call(sim, "GET", path);
    if (r.status == 200) {
      last = r.body["data"];
      if (last.value("status", "") == "stopped") return last;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ADD_FAILURE() << "task " << upid << " did not stop in time; last status " << last.dump();
  return last;
}

}  // namespace phoenix::pvesim::testing
