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
  return json{{"vmid", vmid},
              {"type", type},
              {"node", node},
              {"config", config},
              {"status", status},
              {"started_at", started_at},
              {"started_at_ms", started_at_ms},
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
  g.started_at_ms = j.value("started_at_ms", g.started_at * 1000);
  g.snapshots = j.value("snapshots", json::array());
  return g;
}

namespace {

base::Result<void> make_dir(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    return base::fail(base::ErrorKind::kPermission,
                      "creating " + dir.string() + ": " + ec.message());
  }
  return {};
}

base::Result<void> remove_file(const fs::path& file) {
  std::error_code ec;
  fs::remove(file, ec);
  if (ec)
    return base::fail(base::ErrorKind::kInternal,
                      "removing " + file.string() + ": " + ec.message());
  return {};
}

}  // namespace

base::Result<std::unique_ptr<StateStore>> StateStore::open(const fs::path& dir) {
  for (const char* sub : {"guests", "etc/pve/lxc", "etc/pve/qemu-server", "firewall"}) {
    PHX_TRY(make_dir(dir / sub));
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
    PHX_TRY(store->write_conf(g, std::nullopt));  // state dirs from before the config files
    store->guests_[g.vmid] = std::move(g);
  }
  return store;
}

fs::path StateStore::file_of(int vmid) const {
  return dir_ / "guests" / (std::to_string(vmid) + ".json");
}

fs::path StateStore::conf_file(const std::string& type, int vmid) const {
  return dir_ / "etc" / "pve" / (type == "qemu" ? "qemu-server" : "lxc") /
         (std::to_string(vmid) + ".conf");
}

fs::path StateStore::firewall_file(const std::string& key) const {
  return dir_ / "firewall" / (key + ".json");
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

base::Result<void> StateStore::write_conf(const Guest& guest, const std::optional<RawLines>& lxc) {
  fs::path file = conf_file(guest.type, guest.vmid);
  auto old = base::read_file(file);
  RawLines raw = lxc ? *lxc : old ? parse_raw_lxc(*old) : RawLines{};
  std::string text = render_conf(guest, raw);
  if (old && *old == text) return {};  // leave the file (and its inode) alone
  return base::write_file_atomic(file, text);
}

base::Result<void> StateStore::put(const Guest& guest, const std::optional<RawLines>& lxc) {
  std::lock_guard lock(mu_);
  PHX_TRY(base::write_file_atomic(file_of(guest.vmid), guest.to_json().dump(1) + "\n"));
  PHX_TRY(write_conf(guest, lxc));
  guests_[guest.vmid] = guest;
  return {};
}

base::Result<void> StateStore::remove(int vmid) {
  {
    std::lock_guard lock(mu_);
    PHX_TRY(remove_file(file_of(vmid)));
    if (auto it = guests_.find(vmid); it != guests_.end()) {
      PHX_TRY(remove_file(conf_file(it->second.type, vmid)));
      guests_.erase(it);
    }
  }
  std::lock_guard lock(fw_mu_);
  return remove_file(firewall_file(std::to_string(vmid)));
}

std::string StateStore::conf_text(int vmid) const {
  std::lock_guard lock(mu_);
  auto it = guests_.find(vmid);
  if (it == guests_.end()) return "";
  auto text = base::read_file(conf_file(it->second.type, vmid));
  return text ? *text : render_conf(it->second, {});
}

FwConf StateStore::read_firewall(const std::string& key) const {
  FwConf fw;
  auto text = base::read_file(firewall_file(key));
  if (!text) return fw;
  json j = json::parse(*text, nullptr, false);
  if (!j.is_object()) return fw;
  fw.options = j.value("options", std::map<std::string, std::string>{});
  fw.rules = j.value("rules", std::vector<std::map<std::string, std::string>>{});
  return fw;
}

FwConf StateStore::firewall(const std::string& key) const {
  std::lock_guard lock(fw_mu_);
  return read_firewall(key);
}

base::Result<void> StateStore::update_firewall(const std::string& key,
                                               const std::function<bool(FwConf&)>& fn) {
  std::lock_guard lock(fw_mu_);
  FwConf fw = read_firewall(key);
  if (!fn(fw)) return {};
  json j{{"options", fw.options}, {"rules", fw.rules}};
  return base::write_file_atomic(firewall_file(key), j.dump(1) + "\n");
}

base::Result<void> StateStore::copy_firewall(const std::string& from, const std::string& to) {
  std::lock_guard lock(fw_mu_);
  auto text = base::read_file(firewall_file(from));
  if (!text) return remove_file(firewall_file(to));
  return base::write_file_atomic(firewall_file(to), *text);
}

}  // namespace phoenix::pvesim
