#include "features/recipe.h"

#include <algorithm>
#include <charconv>
#include <map>
#include <set>

#include "base/strings.h"
#include "config/reader.h"
#include "config/yaml_reader.h"

namespace phoenix::features {
namespace {

using base::Node;
using base::SourceLoc;
using config::ObjectReader;
using model::Val;

// Where the estate gives a known variable that this guest lacks, as the fix; empty for a name
// Phoenix does not know (a typo in a recipe).
std::string where_from(std::string_view name) {
  static const std::map<std::string_view, std::string_view> kFrom = {
      {"guest.ip", "give the guest a static network_config.ip"},
      {"guest.cert", "the guest has no certificate of the estate; add one in certificates.extra"},
      {"guest.key", "the guest has no certificate of the estate; add one in certificates.extra"},
      {"domain", "set domain_name in phoenix_hypervisor_config.json"},
      {"step_ca.url", "set step_ca.url in phoenix_hypervisor_config.json"},
      {"step_ca.fingerprint",
       "set step_ca.fingerprint in phoenix_hypervisor_config.json: the SHA-256 of the CA's root "
       "(`step certificate fingerprint root_ca.crt` prints it once the CA exists)"},
      {"step_ca.dns_name", "set step_ca.dns_name in phoenix_hypervisor_config.json"},
      {"step_ca.name", "set step_ca.root_ca_name in phoenix_hypervisor_config.json"},
      {"step_ca.provisioner_name",
       "set step_ca.provisioner_name in phoenix_hypervisor_config.json"},
      {"nvidia.version", "set nvidia_driver.version in phoenix_hypervisor_config.json"},
      {"nvidia.runfile", "set nvidia_driver.version in phoenix_hypervisor_config.json"},
      {"vllm.port", "give the guest vllm_engine_config.ServerConfig.port"},
  };
  auto it = kFrom.find(name);
  return it == kFrom.end() ? "" : std::string(it->second);
}

// Expands every string of one recipe part and reports what is wrong with it at its place.
class Expander {
 public:
  Expander(const Variables& vars, base::Diagnostics& diags, std::string what)
      : vars_(vars), diags_(diags), what_(std::move(what)) {}

  // A string value with its variables expanded; false (and a diagnostic) when a name is unknown.
  bool text(const Val<std::string>& v, std::string& out) {
    std::vector<std::string> missing;
    out = substitute(v.value, vars_, missing);
    for (const std::string& m : missing) {
      std::vector<std::string> names;
      for (const auto& [k, _] : vars_) names.push_back(k);
      std::string hint = where_from(m);
      if (hint.empty()) {
        hint = "the variables are: " + base::join(names, ", ");
        std::vector<std::string_view> views(names.begin(), names.end());
        if (auto near = base::closest_match(m, views)) hint = "did you mean ${" + *near + "}?";
      }
      diags_.error("recipe-variable", v.loc, "unknown variable ${" + m + "} in " + what_, hint);
    }
    return missing.empty();
  }

  bool list(const std::vector<Val<std::string>>& in, std::vector<std::string>& out) {
    bool ok = true;
    for (const auto& v : in) {
      std::string s;
      ok = text(v, s) && ok;
      out.push_back(std::move(s));
    }
    return ok;
  }

  // An argument vector: present, not empty, no empty program name.
  bool argv(ObjectReader& r, std::string_view key, std::vector<std::string>& out, bool required) {
    std::vector<Val<std::string>> raw;
    r.str_list(key, raw);
    if (raw.empty()) {
      if (required) {
        diags_.error("recipe-step", r.node().loc(), std::string(key) + " is missing in " + what_,
                     "give the program and its arguments as a list, e.g. [systemctl, restart, x]");
      }
      return !required;
    }
    if (!list(raw, out)) return false;
    if (out.front().empty()) {
      diags_.error("recipe-step", raw.front().loc, "the program name is empty in " + what_);
      return false;
    }
    return true;
  }

  base::Diagnostics& diags() { return diags_; }
  const std::string& what() const { return what_; }

 private:
  const Variables& vars_;
  base::Diagnostics& diags_;
  std::string what_;
};

std::optional<unsigned> parse_mode(std::string_view s) {
  if (s.size() < 3 || s.size() > 4) return std::nullopt;
  unsigned v = 0;
  for (char c : s) {
    if (c < '0' || c > '7') return std::nullopt;
    v = v * 8 + static_cast<unsigned>(c - '0');
  }
  return v;
}

bool absolute_path(Expander& x, const Val<std::string>& v, std::string& out, std::string_view key) {
  if (!v.present) {
    x.diags().error("recipe-step", v.loc, std::string(key) + " is missing in " + x.what());
    return false;
  }
  if (!x.text(v, out)) return false;
  if (out.empty() || out.front() != '/') {
    x.diags().error("recipe-step", v.loc,
                    std::string(key) + " \"" + out + "\" in " + x.what() + " is not absolute",
                    "paths in a guest start with /");
    return false;
  }
  return true;
}

std::optional<FileStep> read_file_step(ObjectReader& r, Expander& x) {
  FileStep f;
  Val<std::string> path, content, artifact, from_host, owner, group, mode;
  r.str("path", path);
  r.str("content", content);
  r.str("artifact", artifact);
  r.str("from_host", from_host);
  r.str("owner", owner);
  r.str("group", group);
  r.str("mode", mode);
  bool ok = absolute_path(x, path, f.path, "path");
  int sources = content.present + artifact.present + from_host.present;
  if (sources != 1) {
    x.diags().error("recipe-step", r.node().loc(),
                    "a file in " + x.what() + " needs exactly one of content, artifact, from_host",
                    "content: the text; artifact: a file Phoenix renders for the guest, by its "
                    "path there; from_host: a file of the machine Phoenix runs on");
    return std::nullopt;
  }
  if (content.present) {
    f.content.kind = FileContent::Kind::kInline;
    ok = x.text(content, f.content.text) && ok;
  } else if (artifact.present) {
    f.content.kind = FileContent::Kind::kArtifact;
    ok = x.text(artifact, f.content.text) && ok;
    if (f.content.text.empty()) {
      x.diags().error("recipe-step", artifact.loc, "an empty artifact name in " + x.what());
      ok = false;
    }
  } else {
    f.content.kind = FileContent::Kind::kHostFile;
    ok = absolute_path(x, from_host, f.content.text, "from_host") && ok;
  }
  if (owner.present) ok = x.text(owner, f.owner) && ok;
  if (group.present) ok = x.text(group, f.group) && ok;
  if (mode.present) {
    auto m = parse_mode(mode.value);
    if (!m) {
      x.diags().error("recipe-step", mode.loc,
                      "mode \"" + mode.value + "\" in " + x.what() + " is not an octal mode",
                      "write it as a quoted string such as \"0644\"");
      ok = false;
    } else {
      f.mode = *m;
    }
  }
  if (!ok) return std::nullopt;
  return f;
}

std::optional<Step> read_step(const Node& item, Expander& x) {
  if (!item.is_object() || item.size() != 1) {
    x.diags().error("recipe-step", item.loc(),
                    "each step of " + x.what() + " is a mapping with one key",
                    "one of packages, file, link, absent, service, command");
    return std::nullopt;
  }
  const Node::Member& m = item.members().front();
  const Node& v = m.value;
  static constexpr std::string_view kSteps[] = {"packages", "file",    "link",
                                                "absent",   "service", "command"};
  if (std::find(std::begin(kSteps), std::end(kSteps), m.key) == std::end(kSteps)) {
    x.diags().error("recipe-step", m.key_loc, "unknown step \"" + m.key + "\" in " + x.what(),
                    "a step is one of packages, file, link, absent, service, command");
    return std::nullopt;
  }
  auto need_object = [&]() -> bool {
    if (v.is_object()) return true;
    x.diags().error("recipe-step", v.loc(), m.key + " in " + x.what() + " must be a mapping");
    return false;
  };
  if (m.key == "packages") {
    PackagesStep p;
    if (!v.is_array() || v.items().empty()) {
      x.diags().error("recipe-step", v.loc(),
                      "packages in " + x.what() + " must be a list of names");
      return std::nullopt;
    }
    for (const Node& n : v.items()) {
      if (!n.is_string() || n.text().empty()) {
        x.diags().error("recipe-step", n.loc(),
                        "a package name in " + x.what() + " must be a string");
        return std::nullopt;
      }
      std::string name;
      if (!x.text({n.text(), n.loc(), true}, name)) return std::nullopt;
      p.names.push_back(std::move(name));
    }
    return p;
  }
  if (m.key == "absent") {
    AbsentStep a;
    if (!v.is_string()) {
      x.diags().error("recipe-step", v.loc(), "absent in " + x.what() + " takes a path");
      return std::nullopt;
    }
    if (!absolute_path(x, {v.text(), v.loc(), true}, a.path, "absent")) return std::nullopt;
    return a;
  }
  if (!need_object()) return std::nullopt;
  ObjectReader r(v, x.diags(), m.key + " in " + x.what());
  if (m.key == "file") {
    auto f = read_file_step(r, x);
    if (!f) return std::nullopt;
    return *f;
  }
  if (m.key == "link") {
    LinkStep l;
    Val<std::string> path, target;
    r.str("path", path);
    r.str("target", target);
    bool ok = absolute_path(x, path, l.path, "path");
    ok = absolute_path(x, target, l.target, "target") && ok;
    if (!ok) return std::nullopt;
    return l;
  }
  if (m.key == "service") {
    ServiceStep s;
    Val<std::string> name, unit;
    Val<bool> enable, reload;
    std::vector<Val<std::string>> restart_on;
    r.str("name", name);
    r.str("unit", unit);
    r.boolean("enable", enable);
    r.boolean("reload", reload);
    r.str_list("restart_on", restart_on);
    if (!name.present || name.value.empty()) {
      x.diags().error("recipe-step", v.loc(), "a service in " + x.what() + " needs a name");
      return std::nullopt;
    }
    bool ok = x.text(name, s.name);
    if (s.name.find('/') != std::string::npos) {
      x.diags().error("recipe-step", name.loc, "service name \"" + s.name + "\" holds a /");
      ok = false;
    }
    if (unit.present) {
      FileStep f;
      std::string unit_name = s.name.find('.') == std::string::npos ? s.name + ".service" : s.name;
      f.path = "/etc/systemd/system/" + unit_name;
      ok = x.text(unit, f.content.text) && ok;
      s.unit = std::move(f);
    }
    if (enable.present) s.enable = enable.value;
    if (reload.present) s.reload = reload.value;
    for (const auto& p : restart_on) {
      std::string path;
      ok = absolute_path(x, p, path, "restart_on") && ok;
      s.restart_on.push_back(std::move(path));
    }
    if (!ok) return std::nullopt;
    return s;
  }
  if (m.key == "command") {
    CommandStep c;
    Val<std::string> name, creates;
    std::vector<Val<std::string>> on_change;
    r.str("name", name);
    r.str("creates", creates);
    r.str_list("on_change", on_change);
    bool ok = x.argv(r, "run", c.run, true);
    ok = x.argv(r, "unless", c.unless, false) && ok;
    if (name.present) ok = x.text(name, c.name) && ok;
    if (c.name.empty() && !c.run.empty()) c.name = base::join(c.run, " ");
    if (creates.present) ok = absolute_path(x, creates, c.creates, "creates") && ok;
    for (const auto& p : on_change) {
      std::string path;
      ok = absolute_path(x, p, path, "on_change") && ok;
      c.on_change.push_back(std::move(path));
    }
    if (!ok) return std::nullopt;
    return c;
  }
  x.diags().error("recipe-step", m.key_loc, "unknown step \"" + m.key + "\" in " + x.what(),
                  "a step is one of packages, file, link, absent, service, command");
  return std::nullopt;
}

std::optional<HealthCheck> read_health(const Node& item, Expander& x) {
  if (!item.is_object()) {
    x.diags().error("health-check", item.loc(), "a health check in " + x.what() + " is a mapping");
    return std::nullopt;
  }
  ObjectReader r(item, x.diags(), "a health check of " + x.what());
  HealthCheck h;
  h.loc = item.loc();
  Val<std::string> name, type, url, host, address;
  Val<std::int64_t> port, status, deadline;
  r.str("name", name);
  r.str("type", type);
  r.str("url", url);
  r.str("host", host);
  r.str("address", address);
  r.integer("port", port, 1, 65535);
  r.integer("status", status, 100, 599);
  r.integer("deadline", deadline, 1, 3600);
  bool ok = true;
  if (name.present) ok = x.text(name, h.name);
  if (deadline.present) h.deadline = std::chrono::seconds(deadline.value);
  if (status.present) h.expect_status = static_cast<int>(status.value);
  const std::string kind = type.present ? base::to_lower(type.value) : "";
  if (kind == "http" || kind == "https") {
    h.kind = kind == "http" ? HealthCheck::Kind::kHttp : HealthCheck::Kind::kHttps;
    if (!url.present) {
      x.diags().error("health-check", item.loc(), "an " + kind + " check needs a url");
      return std::nullopt;
    }
    ok = x.text(url, h.url) && ok;
    if (ok && !h.url.starts_with(kind + "://")) {
      x.diags().error("health-check", url.loc,
                      "the url of an " + kind + " check must start with " + kind + "://");
      ok = false;
    }
    if (host.present) ok = x.text(host, h.host_header) && ok;
  } else if (kind == "tcp") {
    h.kind = HealthCheck::Kind::kTcp;
    if (!address.present || !port.present) {
      x.diags().error("health-check", item.loc(), "a tcp check needs an address and a port");
      return std::nullopt;
    }
    ok = x.text(address, h.address) && ok;
    h.port = static_cast<int>(port.value);
  } else if (kind == "command") {
    h.kind = HealthCheck::Kind::kCommand;
    ok = x.argv(r, "run", h.argv, true) && ok;
  } else {
    x.diags().error("health-check", type.present ? type.loc : item.loc(),
                    type.present ? "unknown health check type \"" + type.value + "\""
                                 : "a health check needs a type",
                    "one of http, https, tcp, command");
    return std::nullopt;
  }
  if (h.name.empty()) h.name = kind + " " + (h.url.empty() ? h.address : h.url);
  if (!ok) return std::nullopt;
  return h;
}

}  // namespace

const Recipe* RecipeBook::find(std::string_view feature) const {
  auto it = recipes.find(feature);
  return it == recipes.end() ? nullptr : &it->second;
}

void add_recipe(RecipeBook& book, std::string name, std::uint32_t file,
                const base::SourceManager& sources, base::Diagnostics& diags) {
  const std::string& path = sources.path(file);
  auto root = config::parse_yaml(sources.text(file), file);
  if (!root) {
    diags.error("yaml-syntax", root.error().loc(), root.error().message());
    return;
  }
  if (!root->is_object()) {
    diags.error("recipe", root->loc(), "recipe " + path + " must be a mapping",
                "with description, after, steps and health");
    return;
  }
  Recipe recipe;
  recipe.name = name;
  recipe.loc = SourceLoc{file, 0, 0};
  {
    ObjectReader r(*root, diags, "recipe " + name);
    Val<std::string> description;
    std::vector<Val<std::string>> after;
    r.str("description", description);
    r.str_list("after", after);
    recipe.description = description.value;
    for (const auto& a : after) recipe.after.push_back(a.value);
    for (auto [key, out] : {std::pair{"steps", &recipe.steps}, {"health", &recipe.health}}) {
      const Node* list = r.raw(key);
      if (!list || list->is_null()) {
        *out = Node::array(root->loc());
      } else if (!list->is_array()) {
        diags.error("recipe", list->loc(),
                    std::string(key) + " of recipe " + name + " must be a list");
        *out = Node::array(list->loc());
      } else {
        *out = *list;
      }
    }
  }
  book.recipes[name] = std::move(recipe);
}

RecipeBook builtin_recipes(base::SourceManager& sources, base::Diagnostics& diags) {
  RecipeBook book;
  for (const EmbeddedRecipe& e : embedded_recipes()) {
    std::uint32_t file =
        sources.add("recipes/" + std::string(e.name) + ".yml", std::string(e.text));
    add_recipe(book, std::string(e.name), file, sources, diags);
  }
  return book;
}

Plan expand(const Recipe& recipe, const Variables& vars, base::Diagnostics& diags,
            std::string_view guest) {
  Plan plan;
  plan.feature = recipe.name;
  const std::string for_guest = guest.empty() ? "" : " for " + std::string(guest);
  for (std::size_t i = 0; i < recipe.steps.items().size(); ++i) {
    Expander x(vars, diags,
               "step " + std::to_string(i + 1) + " of recipe " + recipe.name + for_guest);
    if (auto s = read_step(recipe.steps.items()[i], x)) plan.steps.push_back(std::move(*s));
  }
  plan.health = expand_health(recipe.health, vars, "recipe " + recipe.name + for_guest, diags);
  return plan;
}

std::vector<HealthCheck> expand_health(const Node& list, const Variables& vars,
                                       std::string_view what, base::Diagnostics& diags) {
  std::vector<HealthCheck> out;
  if (list.is_null()) return out;
  if (!list.is_array()) {
    diags.error("wrong-type", list.loc(),
                "health_checks of " + std::string(what) + " must be a list");
    return out;
  }
  for (const Node& item : list.items()) {
    Expander x(vars, diags, std::string(what));
    if (auto h = read_health(item, x)) out.push_back(std::move(*h));
  }
  return out;
}

std::vector<const Recipe*> order_features(const RecipeBook& book,
                                          const std::vector<std::string>& features) {
  std::vector<const Recipe*> wanted;
  for (const std::string& f : features) {
    const Recipe* r = book.find(f);
    if (r && std::find(wanted.begin(), wanted.end(), r) == wanted.end()) wanted.push_back(r);
  }
  // Depth first along `after`, restricted to the guest's own features, in their order. A cycle
  // (a recipe bug the tests catch) is broken where it closes.
  std::vector<const Recipe*> out;
  std::set<const Recipe*> done, active;
  auto visit = [&](auto& self, const Recipe* r) -> void {
    if (done.count(r) || active.count(r)) return;
    active.insert(r);
    for (const std::string& a : r->after) {
      const Recipe* dep = book.find(a);
      if (dep && std::find(wanted.begin(), wanted.end(), dep) != wanted.end()) self(self, dep);
    }
    active.erase(r);
    done.insert(r);
    out.push_back(r);
  };
  for (const Recipe* r : wanted) visit(visit, r);
  return out;
}

std::string substitute(std::string_view text, const Variables& vars,
                       std::vector<std::string>& missing) {
  std::string out;
  out.reserve(text.size());
  std::size_t i = 0;
  while (i < text.size()) {
    if (text[i] == '$' && i + 1 < text.size() && text[i + 1] == '$') {
      out += '$';  // $$ is a literal $
      i += 2;
      continue;
    }
    if (text[i] == '$' && i + 1 < text.size() && text[i + 1] == '{') {
      std::size_t end = text.find('}', i + 2);
      if (end != std::string_view::npos) {
        std::string_view name = text.substr(i + 2, end - i - 2);
        if (auto it = vars.find(name); it != vars.end()) {
          out += it->second;
        } else {
          missing.emplace_back(name);
        }
        i = end + 1;
        continue;
      }
    }
    out += text[i++];
  }
  return out;
}

Variables guest_variables(const model::Estate& e, const compile::Desired& d,
                          const model::Guest& g) {
  Variables v;
  auto set = [&](const std::string& k, const Val<std::string>& val) {
    if (val.present && !val.value.empty()) v[k] = val.value;
  };
  v["guest.id"] = std::to_string(g.id);
  v["guest.name"] = base::to_lower(g.name.value);
  if (auto ip = compile::guest_ip(g)) v["guest.ip"] = *ip;
  for (const compile::Certificate& c : d.certificates) {
    if (c.guest != g.id) continue;
    v["guest.cert"] = c.cert_path;
    v["guest.key"] = c.key_path;
    break;
  }
  if (!d.domain.empty()) v["domain"] = d.domain;
  v["timezone"] = e.platform.timezone.present && !e.platform.timezone.value.empty()
                      ? e.platform.timezone.value
                      : "Etc/UTC";
  const model::StepCa& ca = e.platform.step_ca;
  set("step_ca.url", ca.url);
  set("step_ca.fingerprint", ca.fingerprint);
  set("step_ca.dns_name", ca.dns_name);
  set("step_ca.name", ca.root_ca_name);
  set("step_ca.provisioner_name", ca.provisioner_name);
  const model::GuestFeatureSettings& f = e.platform.guest_features;
  auto file = [&](const std::string& k, const Val<std::string>& val, const std::string& name) {
    std::string path =
        val.present && !val.value.empty() ? val.value : "/usr/local/lib/phoenix/" + name;
    if (!path.starts_with('/')) path = e.paths.config_dir + "/" + path;
    v[k] = path;
  };
  file("bin.step", f.step_binary, "step");
  file("bin.step_ca", f.step_ca_binary, "step-ca");
  file("bin.traefik", f.traefik_binary, "traefik");
  if (const base::Node* ver =
          e.platform.nvidia_driver.is_object() ? e.platform.nvidia_driver.find("version") : nullptr;
      ver && ver->is_string()) {
    v["nvidia.version"] = ver->text();
    file("nvidia.runfile", f.nvidia_runfile, "NVIDIA-Linux-x86_64-" + ver->text() + ".run");
  }
  v["vllm.version"] = f.vllm_version.present && !f.vllm_version.value.empty() ? f.vllm_version.value
                                                                              : kDefaultVllmVersion;
  for (const compile::VllmService& s : d.vllm) {
    if (s.guest == g.id) v["vllm.port"] = std::to_string(s.port);
  }
  return v;
}

}  // namespace phoenix::features
