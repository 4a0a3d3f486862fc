#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "base/error.h"
#include "conf.h"

namespace phoenix::pvesim {

// One guest as the simulator keeps it: what Proxmox would hold in nodes/<node>/<type>/<vmid>.conf
// plus the runtime status.
struct Guest {
  int vmid = 0;
  std::string type;  // "lxc" or "qemu"
  std::string node;
  std::map<std::string, std::string> config;  // config keys as text, e.g. "cores" -> "2"
  std::string status = "stopped";             // "running" or "stopped"
  long long started_at = 0;                   // unix time of the last start
  long long started_at_ms = 0;                // the same in milliseconds
  // [{name, description, snaptime, parent, config: {...}, lxc: [[k, v], ...]}], oldest first.
  nlohmann::json snapshots = nlohmann::json::array();

  bool is_template() const;
  nlohmann::json to_json() const;
  static Guest from_json(const nlohmann::json& j);
};

// A firewall configuration as Proxmox keeps it in /etc/pve/firewall/<vmid>.fw or cluster.fw:
// the options that are set, and the rules in order, each with the fields Proxmox reads back.
struct FwConf {
  std::map<std::string, std::string> options;
  std::vector<std::map<std::string, std::string>> rules;
};

// The guests, one JSON file each under <dir>/guests, written atomically (temp file + rename) on
// every change so that a restarted simulator sees the same estate. Each guest's Proxmox config
// file is kept beside them, in <dir>/etc/pve/lxc/<vmid>.conf or
// <dir>/etc/pve/qemu-server/<vmid>.conf; its lxc.* lines belong to whoever edits the file and are
// carried over whenever pve-sim rewrites it. Firewalls live in <dir>/firewall/<vmid>.json and
// <dir>/firewall/cluster.json. Thread-safe.
class StateStore {
 public:
  static base::Result<std::unique_ptr<StateStore>> open(const std::filesystem::path& dir);

  std::optional<Guest> get(int vmid) const;
  std::vector<Guest> list() const;  // sorted by vmid
  // Saves `guest` and rewrites its config file, keeping the file's lxc.* lines, or writing `lxc`
  // instead when given (a clone takes its source's).
  base::Result<void> put(const Guest& guest, const std::optional<RawLines>& lxc = std::nullopt);
  // Removes the guest, its config file and its firewall.
  base::Result<void> remove(int vmid);

  // The guest's config file as it is on disk now ("" when there is no such guest).
  std::string conf_text(int vmid) const;
  std::filesystem::path conf_file(const std::string& type, int vmid) const;

  // Firewalls by key: "cluster", or a vmid. A firewall never written is empty.
  FwConf firewall(const std::string& key) const;
  // Runs `fn` on the firewall of `key` and saves what it leaves when it returns true; one call at
  // a time, as Proxmox's firewall config lock allows.
  base::Result<void> update_firewall(const std::string& key,
                                     const std::function<bool(FwConf&)>& fn);
  base::Result<void> copy_firewall(const std::string& from, const std::string& to);

 private:
  explicit StateStore(std::filesystem::path dir) : dir_(std::move(dir)) {}
  std::filesystem::path file_of(int vmid) const;
  std::filesystem::path firewall_file(const std::string& key) const;
  base::Result<void> write_conf(const Guest& guest, const std::optional<RawLines>& lxc);
  FwConf read_firewall(const std::string& key) const;

  std::filesystem::path dir_;
  mutable std::mutex mu_;
  std::map<int, Guest> guests_;
  mutable std::mutex fw_mu_;
};

}  // namespace phoenix::pvesim
