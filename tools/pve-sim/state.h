#pragma once

#include <filesystem>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "base/error.h"

namespace phoenix::pvesim {

// One guest as the simulator keeps it: what Proxmox would hold in nodes/<node>/<type>/<vmid>.conf
// plus the runtime status.
struct Guest {
  int vmid = 0;
  std::string type;  // "lxc" or "qemu"
  std::string node;
  std::map<std::string, std::string> config;           // config keys as text, e.g. "cores" -> "2"
  std::string status = "stopped";                      // "running" or "stopped"
  long long started_at = 0;                            // unix time of the last start
  nlohmann::json snapshots = nlohmann::json::array();  // [{name, description, snaptime, parent}]

  bool is_template() const;
  nlohmann::json to_json() const;
  static Guest from_json(const nlohmann::json& j);
};

// The guests, one JSON file each under <dir>/guests, written atomically (temp file + rename) on
// every change so that a restarted simulator sees the same estate. Thread-safe.
class StateStore {
 public:
  static base::Result<std::unique_ptr<StateStore>> open(const std::filesystem::path& dir);

  std::optional<Guest> get(int vmid) const;
  std::vector<Guest> list() const;  // sorted by vmid
  base::Result<void> put(const Guest& guest);
  base::Result<void> remove(int vmid);

 private:
  explicit StateStore(std::filesystem::path dir) : dir_(std::move(dir)) {}
  std::filesystem::path file_of(int vmid) const;

  std::filesystem::path dir_;
  mutable std::mutex mu_;
  std::map<int, Guest> guests_;
};

}  // namespace phoenix::pvesim
