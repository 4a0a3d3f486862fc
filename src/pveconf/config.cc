#include "pveconf/config.h"

#include <algorithm>
#include <cctype>
#include <set>

#include "base/strings.h"

namespace phoenix::pveconf {
namespace {

using nlohmann::json;

bool starts_with_digits(std::string_view key, std::string_view prefix) {
  if (!key.starts_with(prefix) || key.size() == prefix.size()) return false;
  return std::all_of(key.begin() + static_cast<std::ptrdiff_t>(prefix.size()), key.end(),
                     [](char c) { return std::isdigit(static_cast<unsigned char>(c)); });
}

bool is_disk(GuestType type, std::string_view key) {
  if (type == GuestType::kLxc) return key == "rootfs";
  for (std::string_view p : {"scsi", "virtio", "sata", "ide"}) {
    if (starts_with_digits(key, p)) return key != "ide2";  // ide2 is the cloud-init drive
  }
  return key == "efidisk0";
}

bool is_integer_key(std::string_view key) {
  static const std::set<std::string_view> keys = {
      "cores",    "memory",  "swap",    "onboot",     "unprivileged", "template",
      "cpuunits", "sockets", "balloon", "protection", "console",      "tty"};
  return keys.contains(key);
}

// Keys Phoenix owns even when the estate does not set them, so that a removed one is removed.
bool is_removable(std::string_view key) {
  if (starts_with_digits(key, "dev") || starts_with_digits(key, "mp")) return true;
  return starts_with_digits(key, "net") && key != "net0";
}

std::string upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

bool is_mac(std::string_view s) {
  if (s.size() != 17) return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (i % 3 == 2 ? s[i] != ':' : !std::isxdigit(static_cast<unsigned char>(s[i]))) return false;
  }
  return true;
}

std::set<std::string> word_set(std::string_view text, std::string_view seps) {
  std::set<std::string> out;
  std::string cur;
  for (char c : text) {
    if (seps.find(c) != std::string_view::npos) {
      if (!cur.empty()) out.insert(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) out.insert(cur);
  return out;
}

// The implicit first key of each property-string key.
std::string default_key(GuestType type, std::string_view key) {
  if (starts_with_digits(key, "dev")) return "path";
  if (starts_with_digits(key, "mp") || key == "rootfs") return "volume";
  if (key == "startup") return "order";
  if (key == "agent") return "enabled";
  if (type == GuestType::kQemu && starts_with_digits(key, "net")) return "model";
  return "";
}

bool is_property_string(GuestType type, std::string_view key) {
  if (starts_with_digits(key, "net") || starts_with_digits(key, "dev") ||
      starts_with_digits(key, "mp") || starts_with_digits(key, "ipconfig")) {
    return true;
  }
  (void)type;
  return key == "features" || key == "startup" || key == "agent" || key == "rootfs";
}

// A VM's net0 "virtio=BC:24:11:00:00:01,bridge=vmbr0": the model's value is the MAC.
std::map<std::string, std::string> vm_net(std::map<std::string, std::string> m) {
  for (std::string_view model : {"virtio", "e1000", "rtl8139", "vmxnet3"}) {
    auto it = m.find(std::string(model));
    if (it == m.end()) continue;
    m["model"] = std::string(model);
    if (!it->second.empty()) m["macaddr"] = it->second;
    m.erase(it);
  }
  return m;
}

bool same_properties(GuestType type, std::string_view key, std::string_view desired,
                     std::string_view observed) {
  std::string dk = default_key(type, key);
  auto d = parse_property_string(desired, dk);
  auto o = parse_property_string(observed, dk);
  if (type == GuestType::kQemu && starts_with_digits(key, "net")) {
    d = vm_net(std::move(d));
    o = vm_net(std::move(o));
  }
  // What Proxmox fills in when the estate leaves it unset.
  for (const char* generated : {"hwaddr", "macaddr", "type", "size"}) {
    if (!d.contains(generated)) o.erase(generated);
  }
  if (d.size() != o.size()) return false;
  for (const auto& [k, v] : d) {
    auto it = o.find(k);
    if (it == o.end()) return false;
    if (is_mac(v) || is_mac(it->second) ? upper(v) != upper(it->second) : v != it->second) {
      return false;
    }
  }
  return true;
}

}  // namespace

std::map<std::string, std::string> parse_property_string(std::string_view text,
                                                         std::string_view default_key) {
  std::map<std::string, std::string> out;
  for (const std::string& part : base::split(text, ',')) {
    std::string_view p = base::trim(part);
    if (p.empty()) continue;
    auto eq = p.find('=');
    if (eq == std::string_view::npos) {
      // A bare value: the default key's, or a flag-like model name ("virtio").
      out[default_key.empty() ? std::string(p) : std::string(default_key)] =
          default_key.empty() ? "" : std::string(p);
    } else {
      out[std::string(p.substr(0, eq))] = std::string(p.substr(eq + 1));
    }
  }
  return out;
}

std::string url_encode(std::string_view text) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

std::string url_decode(std::string_view text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size() &&
        std::isxdigit(static_cast<unsigned char>(text[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(text[i + 2]))) {
      out += static_cast<char>(std::stoi(std::string(text.substr(i + 1, 2)), nullptr, 16));
      i += 2;
    } else {
      out += text[i];
    }
  }
  return out;
}

std::string config_text(const json& value) {
  if (value.is_string()) return value.get<std::string>();
  if (value.is_null()) return "";
  if (value.is_boolean()) return value.get<bool>() ? "1" : "0";
  return value.dump();
}

bool same_value(GuestType type, std::string_view key, std::string_view desired,
                std::string_view observed) {
  if (is_integer_key(key)) {
    auto d = base::parse_uint(base::trim(desired));
    auto o = base::parse_uint(base::trim(observed));
    if (d && o) return *d == *o;
  }
  if (key == "tags") return word_set(desired, ";, ") == word_set(observed, ";, ");
  if (key == "nameserver" || key == "searchdomain") {
    return word_set(desired, " ,") == word_set(observed, " ,");
  }
  if (key == "sshkeys") {
    auto norm = [](std::string_view s) {
      std::string d = url_decode(s);
      while (!d.empty() && (d.back() == '\n' || d.back() == ' ')) d.pop_back();
      return d;
    };
    return norm(desired) == norm(observed);
  }
  if (is_property_string(type, key)) return same_properties(type, key, desired, observed);
  return desired == observed;
}

Params ConfigUpdate::params() const {
  Params p = set;
  if (!remove.empty()) p.emplace_back("delete", base::join(remove, ","));
  return p;
}

ConfigUpdate config_update(GuestType type, const Params& desired, const json& observed) {
  ConfigUpdate u;
  std::set<std::string> wanted;
  for (const auto& [key, value] : desired) {
    wanted.insert(key);
    if (is_disk(type, key)) continue;
    std::optional<std::string> before;
    if (observed.is_object() && observed.contains(key)) before = config_text(observed[key]);
    if (before && same_value(type, key, value, *before)) continue;
    u.set.emplace_back(key, value);
    u.changes.push_back({key, before, value});
  }
  if (observed.is_object()) {
    for (auto it = observed.begin(); it != observed.end(); ++it) {
      if (wanted.contains(it.key()) || !is_removable(it.key())) continue;
      u.remove.push_back(it.key());
      u.changes.push_back({it.key(), config_text(it.value()), std::nullopt});
    }
  }
  std::sort(u.changes.begin(), u.changes.end(),
            [](const ConfigChange& a, const ConfigChange& b) { return a.key < b.key; });
  return u;
}

std::optional<std::int64_t> disk_size_gb(std::string_view spec) {
  auto props = parse_property_string(spec, "volume");
  auto it = props.find("size");
  if (it == props.end() || it->second.empty()) return std::nullopt;
  std::string s = it->second;
  char unit = static_cast<char>(std::toupper(static_cast<unsigned char>(s.back())));
  if (std::isalpha(static_cast<unsigned char>(unit))) s.pop_back();
  double value = 0;
  try {
    value = std::stod(s);
  } catch (...) {
    return std::nullopt;
  }
  double gib = unit == 'T'   ? value * 1024
               : unit == 'M' ? value / 1024
               : unit == 'K' ? value / (1024 * 1024)
               : unit == 'G' ? value
                             : value / (1024.0 * 1024 * 1024);
  auto whole = static_cast<std::int64_t>(gib);
  return gib > static_cast<double>(whole) ? whole + 1 : whole;
}

std::string disk_storage(std::string_view spec) {
  std::string volume = parse_property_string(spec, "volume")["volume"];
  auto colon = volume.find(':');
  return colon == std::string::npos ? std::string() : volume.substr(0, colon);
}

base::Result<std::optional<std::string>> disk_resize(std::string_view disk_key,
                                                     std::string_view observed_spec,
                                                     std::int64_t want_gb) {
  auto have = disk_size_gb(observed_spec);
  if (!have) {
    return base::fail(
        base::ErrorKind::kInternal,
        std::string(disk_key) + " has no size on Proxmox (\"" + std::string(observed_spec) + "\")");
  }
  if (*have == want_gb) return std::optional<std::string>();
  if (*have > want_gb) {
    return base::fail(base::ErrorKind::kInvalidInput,
                      std::string(disk_key) + " is " + std::to_string(*have) +
                          " GiB on Proxmox and the estate asks for " + std::to_string(want_gb) +
                          " GiB: Proxmox only grows disks. Set it to " + std::to_string(*have) +
                          " or more, or recreate the guest");
  }
  return std::optional<std::string>(std::to_string(want_gb) + "G");
}

}  // namespace phoenix::pveconf
