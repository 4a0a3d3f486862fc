#include "state.h"

#include "base/fs.h"

namespace phoenix::pvesim {

namespace fs = std::filesystem;
using nlohmann::json;

bool Guest::is_template() const {
  auto it = config.find("template");
  return it != config.end() && it->second == "1";
}

json Guest::to_json() const {
  return json{{"vmid", vmid},          {"type", type},     {"node", node},
              {"config", config},      {"status", status}, {"started_at", started_at},
              {"snapshots", snapshots}};
}

Guest Guest::from_json(const json& j) {
  Guest g;
  g.vmid = j.value("vmid", 0);
  g.type = j.value("type", "lxc");
  g.node = j.value("node", "");
  g.config = j.value("config", std::map<std::string, std::string>{});
  g.status = j.value("status", "stopped");
  g.started_at = j.value("started_at", 0LL);
  g.snapshots = j.value("snapshots", json::array());
  return g;
}

base::Result<std::unique_ptr<StateStore>> StateStore::open(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir / "guests", ec);
  if (ec) {
    return base::fail(base::ErrorKind::kPermission,
                      "creating " + (dir / "guests").string() + ": " + ec.message());
  }
  std::unique_ptr<StateStore> store(new StateStore(dir));
  for (const auto& entry : fs::directory_iterator(dir / "guests")) {
    if (entry.path().extension() != ".json") continue;
    std::string text = PHX_TRY(base::read_file(entry.path()));
    json j = json::parse(text, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
      return base::fail(base::ErrorKind::kInvalidInput, entry.path().string() + ": not JSON");
    }
    Guest g = Guest::from_json(j);
    store->guests_[g.vmid] = std::move(g);
  }
  return store;
}

fs::path StateStore::file_of(int vmid) const {
  return dir_ / "guests" / (std::to_string(vmid) + ".json");
}

std::optional<Guest> StateStore::get(int vmid) const {
  std::lock_guard lock(mu_);
  auto it = guests_.find(vmid);
  if (it == guests_.end()) return std::nullopt;
  return it->second;
}

std::vector<Guest> StateStore::list() const {
  std::lock_guard lock(mu_);
  std::vector<Guest> out;
  for (const auto& [id, g] : guests_) out.push_back(g);
  return out;
}

base::Result<void> StateStore::put(const Guest& guest) {
  std::lock_guard lock(mu_);
  PHX_TRY(base::write_file_atomic(file_of(guest.vmid), guest.to_json().dump(1) + "\n"));
  guests_[guest.vmid] = guest;
  return {};
}

base::Result<void> StateStore::remove(int vmid) {
  std::lock_guard lock(mu_);
  std::error_code ec;
  fs::remove(file_of(vmid), ec);
  if (ec) return base::fail(base::ErrorKind::kInternal, "removing guest file: " + ec.message());
  guests_.erase(vmid);
  return {};
}

}  // namespace phoenix::pvesim
