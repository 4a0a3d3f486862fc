#include "conf.h"

#include <algorithm>
#include <cstdio>
#include <regex>

#include "state.h"

namespace phoenix::pvesim {

using nlohmann::json;

RawLines parse_raw_lxc(std::string_view text) {
  static const std::regex section(R"(^\[[a-zA-Z0-9\-_]+\]\s*$)");
  static const std::regex raw(R"(^(lxc\.[a-z0-9_\-.]+)(?::|\s*=)\s*(.*?)\s*$)");
  RawLines out;
  std::size_t i = 0;
  while (i < text.size()) {
    std::size_t j = text.find('\n', i);
    if (j == std::string_view::npos) j = text.size();
    std::string line(text.substr(i, j - i));
    i = j + 1;
    if (std::regex_match(line, section)) break;
    std::smatch m;
    if (std::regex_match(line, m, raw)) out.emplace_back(m[1], m[2]);
  }
  return out;
}

namespace {

// PVE::Tools::encode_text: ':' and everything outside printable ASCII as %XX.
std::string encode_text(std::string_view text) {
  std::string out;
  for (unsigned char c : text) {
    if ((c >= 0x20 && c <= 0x39) || (c >= 0x3b && c <= 0x7e)) {
      out += static_cast<char>(c);
    } else {
      char esc[4];
      std::snprintf(esc, sizeof esc, "%%%02X", c);
      out += esc;
    }
  }
  return out;
}

// One section: what Proxmox's generate_raw_config writes for a config or a snapshot.
std::string section(const std::map<std::string, std::string>& config, const RawLines& lxc) {
  std::string out;
  if (auto d = config.find("description"); d != config.end()) {
    std::vector<std::string> lines;
    std::size_t i = 0;
    while (i <= d->second.size()) {
      std::size_t j = d->second.find('\n', i);
      if (j == std::string::npos) j = d->second.size();
      lines.push_back(d->second.substr(i, j - i));
      i = j + 1;
    }
    while (!lines.empty() && lines.back().empty()) lines.pop_back();  // as Perl's split does
    for (const auto& l : lines) out += "#" + encode_text(l) + "\n";
  }
  for (const auto& [k, v] : config) {
    if (k == "description" || k == "digest") continue;
    out += k + ": " + v + "\n";
  }
  for (const auto& [k, v] : lxc) out += k + ": " + v + "\n";
  return out;
}

}  // namespace

std::string render_conf(const Guest& guest, const RawLines& lxc) {
  std::string out = section(guest.config, lxc);
  std::vector<const json*> snaps;
  for (const auto& s : guest.snapshots) snaps.push_back(&s);
  std::sort(snaps.begin(), snaps.end(), [](const json* a, const json* b) {
    return a->value("name", "") < b->value("name", "");
  });
  for (const json* s : snaps) {
    auto config = s->value("config", std::map<std::string, std::string>{});
    config["snaptime"] = std::to_string(s->value("snaptime", 0LL));
    if (auto d = s->value("description", ""); !d.empty()) config["description"] = d;
    out += "\n[" + s->value("name", "") + "]\n" +
           section(config, raw_from_json(s->value("lxc", json::array())));
  }
  return out;
}

json raw_to_json(const RawLines& lines) {
  json out = json::array();
  for (const auto& [k, v] : lines) out.push_back({k, v});
  return out;
}

RawLines raw_from_json(const json& lines) {
  RawLines out;
  if (!lines.is_array()) return out;
  for (const auto& l : lines) {
    if (l.is_array() && l.size() == 2 && l[0].is_string() && l[1].is_string()) {
      out.emplace_back(l[0].get<std::string>(), l[1].get<std::string>());
    }
  }
  return out;
}

}  // namespace phoenix::pvesim
