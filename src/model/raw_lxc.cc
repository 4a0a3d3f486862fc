#include "model/raw_lxc.h"

#include <algorithm>

#include "base/strings.h"

namespace phoenix::model {

namespace {

constexpr std::int64_t kUnprivilegedBase = 100000;
constexpr std::int64_t kIdRange = 65536;

// One type's ("u" or "g") complete map: the estate's entries sorted by container id, the gaps
// between them mapped to kUnprivilegedBase + id.
void idmap_lines(const Guest& g, std::string_view type, const char* letter, RawLxcLines& out) {
  std::vector<const IdMap*> maps;
  for (const auto& m : g.id_maps) {
    if (m.type.value == type) maps.push_back(&m);
  }
  if (maps.empty()) {
    // The other type has maps: this one needs its default map written out too.
    out.emplace_back("lxc.idmap", std::string(letter) + " 0 " + std::to_string(kUnprivilegedBase) +
                                      " " + std::to_string(kIdRange));
    return;
  }
  std::sort(maps.begin(), maps.end(), [](const IdMap* a, const IdMap* b) {
    return a->container_id.value < b->container_id.value;
  });
  std::int64_t next = 0;
  auto line = [&](std::int64_t ct, std::int64_t host, std::int64_t size) {
    out.emplace_back("lxc.idmap", std::string(letter) + " " + std::to_string(ct) + " " +
                                      std::to_string(host) + " " + std::to_string(size));
  };
  for (const IdMap* m : maps) {
    std::int64_t ct = m->container_id.value;
    std::int64_t size = m->size.present ? m->size.value : 1;
    if (ct > next) line(next, kUnprivilegedBase + next, ct - next);
    line(ct, m->host_id.value, size);
    next = std::max(next, ct + size);
  }
  if (next < kIdRange) line(next, kUnprivilegedBase + next, kIdRange - next);
}

}  // namespace

RawLxcLines raw_lxc_lines(const Guest& g) {
  RawLxcLines out;
  for (const auto& o : g.lxc_options) {
    std::string_view text = o.value;
    auto sep = text.find_first_of("=:");
    if (sep == std::string_view::npos) continue;  // validation reports it
    out.emplace_back(std::string(base::trim(text.substr(0, sep))),
                     std::string(base::trim(text.substr(sep + 1))));
  }
  if (!g.id_maps.empty()) {
    idmap_lines(g, "uid", "u", out);
    idmap_lines(g, "gid", "g", out);
  }
  return out;
}

}  // namespace phoenix::model
