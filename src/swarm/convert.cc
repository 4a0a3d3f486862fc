#include "swarm/convert.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <set>
#include <tuple>

#include "base/hash.h"
#include "base/sort.h"
#include "base/strings.h"

namespace phoenix::swarm {
namespace {

using base::Error;
using base::ErrorKind;
using base::Node;
using base::Result;
using nlohmann::json;

std::unexpected<Error> bad(const Node& at, std::string message) {
  return std::unexpected(Error(ErrorKind::kInvalidInput, std::move(message), at.loc()));
}

std::string base64(std::string_view data) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((data.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 2 < data.size(); i += 3) {
    unsigned v = (static_cast<unsigned char>(data[i]) << 16) |
                 (static_cast<unsigned char>(data[i + 1]) << 8) |
                 static_cast<unsigned char>(data[i + 2]);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (i < data.size()) {
    unsigned v = static_cast<unsigned char>(data[i]) << 16;
    if (i + 1 < data.size()) v |= static_cast<unsigned char>(data[i + 1]) << 8;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += i + 1 < data.size() ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

// A scalar as compose reads it: strings as written, numbers by their source text.
std::string scalar_text(const Node& n) { return n.is_null() ? std::string() : n.text(); }

Result<std::string> need_string(const Node& n, std::string_view what) {
  if (!n.is_scalar() || n.is_null()) return bad(n, std::string(what) + " must be a string");
  return n.text();
}

Result<bool> need_bool(const Node& n, std::string_view what) {
  if (!n.is_bool()) return bad(n, std::string(what) + " must be true or false");
  return n.as_bool();
}

Result<std::int64_t> need_int(const Node& n, std::string_view what) {
  if (!n.is_int()) return bad(n, std::string(what) + " must be an integer");
  return n.as_int();
}

Result<std::int64_t> need_duration(const Node& n, std::string_view what) {
  auto d = n.is_scalar() ? parse_duration(n.text()) : std::nullopt;
  if (!d) return bad(n, std::string(what) + " must be a duration such as \"10s\" or \"1m30s\"");
  return *d;
}

Result<std::int64_t> need_bytes(const Node& n, std::string_view what) {
  auto b = n.is_scalar() ? parse_bytes(n.text()) : std::nullopt;
  if (!b) return bad(n, std::string(what) + " must be a size such as \"512M\" or \"1g\"");
  return *b;
}

// "0.5" CPUs in units of 1e-9 CPUs, as `docker service create --limit-cpu`.
Result<std::int64_t> need_cpus(const Node& n, std::string_view what) {
  if (n.is_number() || n.is_string()) {
    char* end = nullptr;
    std::string text = n.text();
    double v = std::strtod(text.c_str(), &end);
    if (!text.empty() && end == text.c_str() + text.size() && v >= 0 && std::isfinite(v)) {
      return static_cast<std::int64_t>(std::llround(v * 1e9));
    }
  }
  return bad(n, std::string(what) + " must be a number of CPUs such as \"0.5\"");
}

// A list of strings, or a single string where compose allows one.
Result<std::vector<std::string>> string_list(const Node& n, std::string_view what,
                                             bool allow_single = false) {
  std::vector<std::string> out;
  if (allow_single && n.is_scalar() && !n.is_null()) {
    out.push_back(n.text());
    return out;
  }
  if (!n.is_array()) return bad(n, std::string(what) + " must be a list of strings");
  for (const Node& i : n.items()) out.push_back(PHX_TRY(need_string(i, what)));
  return out;
}

// Labels and similar maps: a mapping, or a list of "key=value".
Result<std::map<std::string, std::string>> string_map(const Node& n, std::string_view what) {
  std::map<std::string, std::string> out;
  if (n.is_object()) {
    for (const auto& m : n.members()) out[m.key] = scalar_text(m.value);
    return out;
  }
  if (n.is_array()) {
    for (const Node& i : n.items()) {
      std::string item = PHX_TRY(need_string(i, what));
      auto eq = item.find('=');
      if (eq == std::string::npos) {
        out[item] = "";
      } else {
        out[item.substr(0, eq)] = item.substr(eq + 1);
      }
    }
    return out;
  }
  return bad(n, std::string(what) + " must be a mapping or a list of \"key=value\"");
}

// Splits a command written as one string the way compose does (shell words: quotes and
// backslashes, no expansion). Nothing is ever run through a shell.
Result<std::vector<std::string>> shell_words(const Node& n) {
  const std::string& s = n.text();
  std::vector<std::string> out;
  std::string cur;
  bool in_word = false;
  char quote = 0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (quote == '\'') {
      if (c == '\'') {
        quote = 0;
      } else {
        cur += c;
      }
    } else if (quote == '"') {
      if (c == '"') {
        quote = 0;
      } else if (c == '\\' && i + 1 < s.size() &&
                 std::string_view("\"\\$`").find(s[i + 1]) != std::string_view::npos) {
        cur += s[++i];
      } else {
        cur += c;
      }
    } else if (c == '\'' || c == '"') {
      quote = c;
      in_word = true;
    } else if (c == '\\' && i + 1 < s.size()) {
      cur += s[++i];
      in_word = true;
    } else if (c == ' ' || c == '\t' || c == '\n') {
      if (in_word) out.push_back(std::move(cur));
      cur.clear();
      in_word = false;
    } else {
      cur += c;
      in_word = true;
    }
  }
  if (quote) return bad(n, "unterminated quote in command");
  if (in_word) out.push_back(std::move(cur));
  return out;
}

Result<std::vector<std::string>> command(const Node& n, std::string_view what) {
  if (n.is_string()) return shell_words(n);
  return string_list(n, what);
}

// Keys of a service that become part of the swarm service.
constexpr std::string_view kServiceKeys[] = {
    "cap_add",
    "cap_drop",
    "command",
    "configs",
    "deploy",
    "dns",
    "dns_search",
    "entrypoint",
    "environment",
    "extra_hosts",
    "healthcheck",
    "hostname",
    "image",
    "init",
    "labels",
    "logging",
    "networks",
    "read_only",
    "ports",
    "restart",
    "secrets",
    "stdin_open",
    "stop_grace_period",
    "stop_signal",
    "sysctls",
    "tty",
    "ulimits",
    "user",
    "volumes",
    "working_dir",
};

class Converter {
 public:
  Converter(std::string ns, const Node& compose, const ReadFile& read)
      : ns_(std::move(ns)), compose_(compose), read_(read) {}

  Result<StackSpec> run() {
    out_.ns = ns_;
    if (!compose_.is_object()) return bad(compose_, "a compose file must be a mapping");
    const Node* services = compose_.find("services");
    if (!services || !services->is_object() || services->size() == 0) {
      return bad(compose_, "the compose file defines no services");
    }
    if (const Node* n = compose_.find("networks")) {
      if (!n->is_object()) return bad(*n, "networks must be a mapping");
      networks_ = n;
    }
    if (const Node* v = compose_.find("volumes")) {
      if (!v->is_object()) return bad(*v, "volumes must be a mapping");
      volumes_ = v;
    }
    PHX_TRY(file_objects("configs", out_.configs));
    PHX_TRY(file_objects("secrets", out_.secrets));
    for (const auto& m : services->members()) {
      out_.services.push_back(PHX_TRY(service(m.key, m.value)));
    }
    PHX_TRY(networks());
    base::sort_by_key(out_.services,
                      [](const ServiceSpec& s) -> const std::string& { return s.name; });
    return std::move(out_);
  }

 private:
  std::string scope(std::string_view name) const { return ns_ + "_" + std::string(name); }

  json stack_labels(const std::map<std::string, std::string>& extra = {}) const {
    json labels = json::object();
    for (const auto& [k, v] : extra) labels[k] = v;
    labels[kNamespaceLabel] = ns_;
    return labels;
  }

  // ---- configs and secrets -------------------------------------------------------------------

  Result<void> file_objects(const char* section, std::vector<FileObject>& out) {
    const Node* objs = compose_.find(section);
    if (!objs) return {};
    if (!objs->is_object()) return bad(*objs, std::string(section) + " must be a mapping");
    for (const auto& m : objs->members()) {
      const Node& def = m.value;
      if (!def.is_object())
        return bad(def, std::string(section) + "." + m.key + " must be a mapping");
      std::string what = std::string(section) + "." + m.key;
      bool external = false;
      if (const Node* e = def.find("external")) {
        external = e->is_object() || (e->is_bool() && e->as_bool());
        if (!e->is_object() && !e->is_bool())
          return bad(*e, what + ".external must be true or false");
      }
      std::string explicit_name;
      if (const Node* n = def.find("name"))
        explicit_name = PHX_TRY(need_string(*n, what + ".name"));
      if (external) {
        external_objects_[section][m.key] = explicit_name.empty() ? m.key : explicit_name;
        continue;
      }
      const Node* file = def.find("file");
      if (!file) {
        return bad(def, what +
                            " needs \"file\" (or \"external: true\"); Phoenix creates configs "
                            "and secrets from files");
      }
      std::string path = PHX_TRY(need_string(*file, what + ".file"));
      auto data = read_(path);
      if (!data) {
        return std::unexpected(Error(ErrorKind::kInvalidInput,
                                     what + ": cannot read " + path + ": " + data.error().message(),
                                     file->loc()));
      }
      std::map<std::string, std::string> labels;
      if (const Node* l = def.find("labels")) labels = PHX_TRY(string_map(*l, what + ".labels"));
      labels[kSourceLabel] = m.key;
      // Content-addressed: the engine cannot update a config or secret in place.
      std::string name = explicit_name.empty()
                             ? scope(m.key) + "_" + base::sha256_hex(*data).substr(0, 12)
                             : explicit_name;
      FileObject obj;
      obj.key = m.key;
      obj.name = name;
      obj.spec = {{"Name", name}, {"Labels", stack_labels(labels)}, {"Data", base64(*data)}};
      names_[section][m.key] = name;
      out.push_back(std::move(obj));
    }
    base::sort_by_key(out, [](const FileObject& o) -> const std::string& { return o.name; });
    return {};
  }

  Result<json> file_refs(const Node& list, const char* section, const std::string& service) {
    if (!list.is_array())
      return bad(list, "services." + service + "." + section + " must be a list");
    json refs = json::array();
    for (const Node& item : list.items()) {
      std::string source, target, uid = "0", gid = "0";
      std::int64_t mode = 0444;
      if (item.is_string()) {
        source = item.text();
      } else if (item.is_object()) {
        for (const auto& m : item.members()) {
          if (m.key == "source") {
            source = PHX_TRY(need_string(m.value, "source"));
          } else if (m.key == "target") {
            target = PHX_TRY(need_string(m.value, "target"));
          } else if (m.key == "uid") {
            uid = PHX_TRY(need_string(m.value, "uid"));
          } else if (m.key == "gid") {
            gid = PHX_TRY(need_string(m.value, "gid"));
          } else if (m.key == "mode") {
            mode = PHX_TRY(file_mode(m.value));
          } else {
            return bad(m.value, "unknown key \"" + m.key + "\" in a " + section +
                                    " reference; expected source, target, uid, gid or mode");
          }
        }
      } else {
        return bad(item, std::string(section) + " entries are names or mappings");
      }
      std::string name;
      if (auto it = names_[section].find(source); it != names_[section].end()) {
        name = it->second;
      } else if (auto ext = external_objects_[section].find(source);
                 ext != external_objects_[section].end()) {
        name = ext->second;
      } else {
        return bad(item, "service " + service + " uses " +
                             std::string(section).substr(0, std::strlen(section) - 1) + " \"" +
                             source + "\", which the top-level " + section +
                             " section does not define");
      }
      json file = {
          {"Name", target.empty() ? source : target}, {"UID", uid}, {"GID", gid}, {"Mode", mode}};
      refs.push_back({{"File", file},
                      {std::string(section) == "configs" ? "ConfigName" : "SecretName", name}});
    }
    std::sort(refs.begin(), refs.end(), [&](const json& a, const json& b) {
      const char* key = std::string(section) == "configs" ? "ConfigName" : "SecretName";
      return a[key].get<std::string>() < b[key].get<std::string>();
    });
    return refs;
  }

  // A file mode: compose writes it in octal (0440), which a YAML 1.2 reader sees as decimal.
  static Result<std::int64_t> file_mode(const Node& n) {
    if (n.is_int()) {
      const std::string& t = n.text();
      if (t.size() > 1 && t[0] == '0' && t.find_first_not_of("01234567") == std::string::npos) {
        return std::stoll(t, nullptr, 8);
      }
      if (t.starts_with("0o")) return std::stoll(t.substr(2), nullptr, 8);
      return n.as_int();
    }
    return bad(n, "mode must be an octal number such as 0440");
  }

  // ---- services -------------------------------------------------------------------------------

  Result<ServiceSpec> service(const std::string& key, const Node& svc) {
    if (!svc.is_object()) return bad(svc, "services." + key + " must be a mapping");
    std::string where = "services." + key;
    ServiceSpec out;
    out.key = key;
    out.name = scope(key);

    for (const auto& m : svc.members()) {
      if (std::find(std::begin(kServiceKeys), std::end(kServiceKeys), m.key) ==
          std::end(kServiceKeys)) {
        out_.warnings.push_back(where + "." + m.key +
                                " is not supported by swarm stacks and is ignored (as docker "
                                "stack deploy ignores it)");
      }
    }

    const Node* image = svc.find("image");
    if (!image) return bad(svc, where + " has no image; swarm services cannot be built");
    std::string image_name = PHX_TRY(need_string(*image, where + ".image"));

    json container = {{"Image", image_name}};
    if (const Node* n = svc.find("entrypoint"))
      container["Command"] = PHX_TRY(command(*n, "entrypoint"));
    if (const Node* n = svc.find("command")) container["Args"] = PHX_TRY(command(*n, "command"));
    if (const Node* n = svc.find("hostname"))
      container["Hostname"] = PHX_TRY(need_string(*n, "hostname"));
    if (const Node* n = svc.find("extra_hosts")) {
      json hosts = json::array();
      if (n->is_object()) {
        for (const auto& m : n->members()) hosts.push_back(scalar_text(m.value) + " " + m.key);
      } else {
        for (const std::string& h : PHX_TRY(string_list(*n, "extra_hosts"))) {
          auto colon = h.find(':');
          if (colon == std::string::npos) return bad(*n, "extra_hosts entries are \"host:ip\"");
          hosts.push_back(h.substr(colon + 1) + " " + h.substr(0, colon));
        }
      }
      container["Hosts"] = hosts;
    }
    {
      json dns = json::object();
      if (const Node* n = svc.find("dns"))
        dns["Nameservers"] = PHX_TRY(string_list(*n, "dns", true));
      if (const Node* n = svc.find("dns_search"))
        dns["Search"] = PHX_TRY(string_list(*n, "dns_search", true));
      if (!dns.empty()) container["DNSConfig"] = dns;
    }
    if (const Node* n = svc.find("healthcheck")) {
      container["Healthcheck"] = PHX_TRY(healthcheck(*n, where));
      out.has_healthcheck = !(container["Healthcheck"]["Test"] == json::array({"NONE"}));
    }
    if (const Node* n = svc.find("environment")) container["Env"] = PHX_TRY(environment(*n, where));
    {
      std::map<std::string, std::string> labels;
      if (const Node* n = svc.find("labels")) labels = PHX_TRY(string_map(*n, where + ".labels"));
      container["Labels"] = stack_labels(labels);
    }
    if (const Node* n = svc.find("working_dir"))
      container["Dir"] = PHX_TRY(need_string(*n, "working_dir"));
    if (const Node* n = svc.find("user")) container["User"] = PHX_TRY(need_string(*n, "user"));
    if (const Node* n = svc.find("volumes")) {
      json mounts = PHX_TRY(volume_mounts(*n, where));
      if (!mounts.empty()) container["Mounts"] = mounts;
    }
    if (const Node* n = svc.find("stop_grace_period")) {
      container["StopGracePeriod"] = PHX_TRY(need_duration(*n, "stop_grace_period"));
    }
    if (const Node* n = svc.find("stop_signal"))
      container["StopSignal"] = PHX_TRY(need_string(*n, "stop_signal"));
    if (const Node* n = svc.find("tty")) container["TTY"] = PHX_TRY(need_bool(*n, "tty"));
    if (const Node* n = svc.find("stdin_open"))
      container["OpenStdin"] = PHX_TRY(need_bool(*n, "stdin_open"));
    if (const Node* n = svc.find("read_only"))
      container["ReadOnly"] = PHX_TRY(need_bool(*n, "read_only"));
    if (const Node* n = svc.find("init")) container["Init"] = PHX_TRY(need_bool(*n, "init"));
    if (const Node* n = svc.find("secrets")) {
      json refs = PHX_TRY(file_refs(*n, "secrets", key));
      if (!refs.empty()) container["Secrets"] = refs;
    }
    if (const Node* n = svc.find("configs")) {
      json refs = PHX_TRY(file_refs(*n, "configs", key));
      if (!refs.empty()) container["Configs"] = refs;
    }
    if (const Node* n = svc.find("sysctls")) {
      auto m = PHX_TRY(string_map(*n, where + ".sysctls"));
      container["Sysctls"] = m;
    }
    if (const Node* n = svc.find("cap_add"))
      container["CapabilityAdd"] = PHX_TRY(string_list(*n, "cap_add"));
    if (const Node* n = svc.find("cap_drop"))
      container["CapabilityDrop"] = PHX_TRY(string_list(*n, "cap_drop"));
    if (const Node* n = svc.find("ulimits")) container["Ulimits"] = PHX_TRY(ulimits(*n, where));
    // As docker stack deploy sends it (no credential spec or SELinux context from compose).
    container["Privileges"] = {{"CredentialSpec", nullptr}, {"SELinuxContext", nullptr}};

    json task = {{"ContainerSpec", container}};
    if (const Node* n = svc.find("logging")) {
      if (!n->is_object()) return bad(*n, where + ".logging must be a mapping");
      json driver = json::object();
      if (const Node* d = n->find("driver"))
        driver["Name"] = PHX_TRY(need_string(*d, "logging.driver"));
      if (const Node* o = n->find("options"))
        driver["Options"] = PHX_TRY(string_map(*o, "logging.options"));
      task["LogDriver"] = driver;
    }

    const Node* deploy = svc.find("deploy");
    if (deploy && !deploy->is_object()) return bad(*deploy, where + ".deploy must be a mapping");
    static const Node kEmpty = Node::object();
    const Node& d = deploy ? *deploy : kEmpty;

    task["Resources"] = PHX_TRY(resources(d, where));
    if (auto rp = PHX_TRY(restart_policy(svc, d, where)); !rp.is_null()) task["RestartPolicy"] = rp;
    json placement = json::object();
    if (const Node* p = d.find("placement")) {
      if (!p->is_object()) return bad(*p, where + ".deploy.placement must be a mapping");
      if (const Node* c = p->find("constraints"))
        placement["Constraints"] = PHX_TRY(string_list(*c, "constraints"));
      if (const Node* pr = p->find("preferences")) {
        if (!pr->is_array()) return bad(*pr, "placement.preferences must be a list");
        json prefs = json::array();
        for (const Node& item : pr->items()) {
          const Node* spread = item.is_object() ? item.find("spread") : nullptr;
          if (!spread) return bad(item, "a placement preference is {spread: <descriptor>}");
          prefs.push_back(
              {{"Spread", {{"SpreadDescriptor", PHX_TRY(need_string(*spread, "spread"))}}}});
        }
        placement["Preferences"] = prefs;
      }
      if (const Node* mr = p->find("max_replicas_per_node")) {
        placement["MaxReplicas"] = PHX_TRY(need_int(*mr, "max_replicas_per_node"));
      }
    }
    task["Placement"] = placement;
    task["Networks"] = PHX_TRY(service_networks(svc, key));

    std::map<std::string, std::string> labels;
    if (const Node* n = d.find("labels"))
      labels = PHX_TRY(string_map(*n, where + ".deploy.labels"));
    labels[kImageLabel] = image_name;

    json spec = {{"Name", out.name}, {"Labels", stack_labels(labels)}, {"TaskTemplate", task}};
    json endpoint = json::object();
    if (const Node* n = d.find("endpoint_mode")) {
      endpoint["Mode"] = base::to_lower(PHX_TRY(need_string(*n, "endpoint_mode")));
    }
    // Stacks of the estate never publish ports (validation forbids it: traffic goes through
    // Traefik); Phoenix's own core services may.
    if (const Node* n = svc.find("ports")) {
      json ports = PHX_TRY(published_ports(*n, where));
      if (!ports.empty()) endpoint["Ports"] = ports;
    }
    spec["EndpointSpec"] = endpoint;
    spec["Mode"] = PHX_TRY(mode(d, where));
    json update = PHX_TRY(update_config(d.find("update_config"), where + ".deploy.update_config"));
    if (update.is_null()) update = {{"Parallelism", 1}};
    // Phoenix's rule: a failed update rolls back unless the compose file asks otherwise.
    if (!update.contains("FailureAction")) update["FailureAction"] = "rollback";
    spec["UpdateConfig"] = update;
    json rollback =
        PHX_TRY(update_config(d.find("rollback_config"), where + ".deploy.rollback_config"));
    if (!rollback.is_null()) spec["RollbackConfig"] = rollback;
    out.spec = std::move(spec);
    return out;
  }

  Result<json> published_ports(const Node& n, const std::string& where) {
    if (!n.is_array()) return bad(n, where + ".ports must be a list");
    json out = json::array();
    for (const Node& p : n.items()) {
      std::int64_t target = 0, published = 0;
      std::string protocol = "tcp", mode = "ingress";
      if (p.is_object()) {
        if (const Node* v = p.find("target")) target = PHX_TRY(need_int(*v, "ports.target"));
        if (const Node* v = p.find("published"))
          published = PHX_TRY(need_int(*v, "ports.published"));
        if (const Node* v = p.find("protocol"))
          protocol = PHX_TRY(need_string(*v, "ports.protocol"));
        if (const Node* v = p.find("mode")) mode = PHX_TRY(need_string(*v, "ports.mode"));
      } else if (p.is_scalar()) {
        std::string text = p.text();
        if (auto slash = text.find('/'); slash != std::string::npos) {
          protocol = text.substr(slash + 1);
          text = text.substr(0, slash);
        }
        auto parts = base::split(text, ':');
        auto number = [&](const std::string& t) -> std::optional<std::int64_t> {
          auto v = base::parse_uint(t);
          if (!v || *v > 65535) return std::nullopt;
          return static_cast<std::int64_t>(*v);
        };
        std::optional<std::int64_t> t = number(parts.back()), pub;
        if (parts.size() == 2) pub = number(parts[0]);
        if (!t || parts.size() > 2 || (parts.size() == 2 && !pub)) {
          return bad(p, "a port is \"[published:]target[/protocol]\"");
        }
        target = *t;
        published = pub.value_or(0);
      } else {
        return bad(p, "a port is a string or a mapping");
      }
      if (target < 1 || target > 65535) return bad(p, "a port's target must be 1 to 65535");
      json port = {{"Protocol", protocol}, {"TargetPort", target}, {"PublishMode", mode}};
      if (published) port["PublishedPort"] = published;
      out.push_back(port);
    }
    std::sort(out.begin(), out.end(), [](const json& a, const json& b) {
      return std::tie(a["TargetPort"], a["Protocol"]) < std::tie(b["TargetPort"], b["Protocol"]);
    });
    return out;
  }

  Result<json> healthcheck(const Node& n, const std::string& where) {
    if (!n.is_object()) return bad(n, where + ".healthcheck must be a mapping");
    json h = json::object();
    bool disable = false;
    if (const Node* d = n.find("disable")) disable = PHX_TRY(need_bool(*d, "healthcheck.disable"));
    const Node* test = n.find("test");
    if (disable) {
      if (test) return bad(*test, "healthcheck: test and disable cannot both be set");
      return json{{"Test", json::array({"NONE"})}};
    }
    if (test) {
      if (test->is_string()) {
        h["Test"] = json::array({"CMD-SHELL", test->text()});
      } else {
        h["Test"] = PHX_TRY(string_list(*test, "healthcheck.test"));
      }
    }
    if (const Node* v = n.find("interval"))
      h["Interval"] = PHX_TRY(need_duration(*v, "healthcheck.interval"));
    if (const Node* v = n.find("timeout"))
      h["Timeout"] = PHX_TRY(need_duration(*v, "healthcheck.timeout"));
    if (const Node* v = n.find("start_period"))
      h["StartPeriod"] = PHX_TRY(need_duration(*v, "healthcheck.start_period"));
    if (const Node* v = n.find("retries"))
      h["Retries"] = PHX_TRY(need_int(*v, "healthcheck.retries"));
    return h;
  }

  Result<json> environment(const Node& n, const std::string& where) {
    std::vector<std::string> env;
    if (n.is_object()) {
      for (const auto& m : n.members()) {
        env.push_back(m.value.is_null() ? m.key : m.key + "=" + m.value.text());
      }
    } else if (n.is_array()) {
      for (const Node& i : n.items())
        env.push_back(PHX_TRY(need_string(i, where + ".environment")));
    } else {
      return bad(n, where + ".environment must be a mapping or a list of \"NAME=value\"");
    }
    std::sort(env.begin(), env.end());
    return json(env);
  }

  Result<json> ulimits(const Node& n, const std::string& where) {
    if (!n.is_object()) return bad(n, where + ".ulimits must be a mapping");
    json out = json::array();
    std::vector<std::pair<std::string, const Node*>> items;
    for (const auto& m : n.members()) items.emplace_back(m.key, &m.value);
    std::sort(items.begin(), items.end());
    for (const auto& [name, v] : items) {
      std::int64_t soft = 0, hard = 0;
      if (v->is_int()) {
        soft = hard = v->as_int();
      } else if (v->is_object() && v->find("soft") && v->find("hard")) {
        soft = PHX_TRY(need_int(*v->find("soft"), "soft"));
        hard = PHX_TRY(need_int(*v->find("hard"), "hard"));
      } else {
        return bad(*v, where + ".ulimits." + name + " is a number or {soft, hard}");
      }
      out.push_back({{"Name", name}, {"Soft", soft}, {"Hard", hard}});
    }
    return out;
  }

  Result<json> resources(const Node& d, const std::string& where) {
    json out = json::object();
    const Node* r = d.find("resources");
    if (!r) return out;
    if (!r->is_object()) return bad(*r, where + ".deploy.resources must be a mapping");
    auto part = [&](const char* key) -> Result<json> {
      const Node* p = r->find(key);
      if (!p) return json(nullptr);
      if (!p->is_object())
        return bad(*p, where + ".deploy.resources." + key + " must be a mapping");
      json o = json::object();
      if (const Node* c = p->find("cpus")) o["NanoCPUs"] = PHX_TRY(need_cpus(*c, "cpus"));
      if (const Node* m = p->find("memory")) o["MemoryBytes"] = PHX_TRY(need_bytes(*m, "memory"));
      if (const Node* pid = p->find("pids")) o["Pids"] = PHX_TRY(need_int(*pid, "pids"));
      return o;
    };
    if (json l = PHX_TRY(part("limits")); !l.is_null()) out["Limits"] = l;
    if (json res = PHX_TRY(part("reservations")); !res.is_null()) out["Reservations"] = res;
    return out;
  }

  Result<json> restart_policy(const Node& svc, const Node& d, const std::string& where) {
    if (const Node* rp = d.find("restart_policy")) {
      if (!rp->is_object()) return bad(*rp, where + ".deploy.restart_policy must be a mapping");
      json out = json::object();
      if (const Node* c = rp->find("condition"))
        out["Condition"] = PHX_TRY(need_string(*c, "condition"));
      if (const Node* v = rp->find("delay")) out["Delay"] = PHX_TRY(need_duration(*v, "delay"));
      if (const Node* v = rp->find("max_attempts"))
        out["MaxAttempts"] = PHX_TRY(need_int(*v, "max_attempts"));
      if (const Node* v = rp->find("window")) out["Window"] = PHX_TRY(need_duration(*v, "window"));
      return out;
    }
    const Node* restart = svc.find("restart");
    if (!restart) return json(nullptr);
    std::string r = PHX_TRY(need_string(*restart, "restart"));
    std::string name = r.substr(0, r.find(':'));
    std::int64_t max = 0;
    if (auto colon = r.find(':'); colon != std::string::npos) {
      auto n = base::parse_uint(r.substr(colon + 1));
      if (!n) return bad(*restart, "restart: the retry count after ':' must be a number");
      max = static_cast<std::int64_t>(*n);
    }
    json out = json::object();
    if (name == "no" || name.empty()) return json(nullptr);
    if (name == "always" || name == "unless-stopped") {
      out["Condition"] = "any";
    } else if (name == "on-failure") {
      out["Condition"] = "on-failure";
    } else {
      return bad(*restart, "restart must be no, always, on-failure or unless-stopped");
    }
    if (max > 0) out["MaxAttempts"] = max;
    return out;
  }

  Result<json> mode(const Node& d, const std::string& where) {
    std::string m = "replicated";
    if (const Node* n = d.find("mode")) m = PHX_TRY(need_string(*n, "deploy.mode"));
    const Node* replicas = d.find("replicas");
    if (m == "global") {
      if (replicas) return bad(*replicas, where + ": replicas cannot be used with mode global");
      return json{{"Global", json::object()}};
    }
    if (m != "replicated") {
      return bad(*d.find("mode"), where + ".deploy.mode must be replicated or global");
    }
    json r = json::object();
    if (replicas) r["Replicas"] = PHX_TRY(need_int(*replicas, "replicas"));
    return json{{"Replicated", r}};
  }

  Result<json> update_config(const Node* n, const std::string& where) {
    if (!n) return json(nullptr);
    if (!n->is_object()) return bad(*n, where + " must be a mapping");
    json out = {{"Parallelism", 1}};
    if (const Node* v = n->find("parallelism"))
      out["Parallelism"] = PHX_TRY(need_int(*v, "parallelism"));
    if (const Node* v = n->find("delay")) out["Delay"] = PHX_TRY(need_duration(*v, "delay"));
    if (const Node* v = n->find("failure_action"))
      out["FailureAction"] = PHX_TRY(need_string(*v, "failure_action"));
    if (const Node* v = n->find("monitor")) out["Monitor"] = PHX_TRY(need_duration(*v, "monitor"));
    if (const Node* v = n->find("max_failure_ratio")) {
      if (!v->is_number()) return bad(*v, "max_failure_ratio must be a number");
      out["MaxFailureRatio"] = v->as_double();
    }
    if (const Node* v = n->find("order")) out["Order"] = PHX_TRY(need_string(*v, "order"));
    return out;
  }

  // ---- networks -------------------------------------------------------------------------------

  // The engine name of compose network `key`, and whether it is the stack's own.
  Result<std::pair<std::string, bool>> network_name(const std::string& key, const Node& at) {
    const Node* def = networks_ ? networks_->find(key) : nullptr;
    if (!def && key != "default") {
      return bad(at, "network \"" + key + "\" is not defined in the top-level networks section");
    }
    std::string name = scope(key);
    bool external = false;
    if (def && def->is_object()) {
      if (const Node* n = def->find("name"))
        name = PHX_TRY(need_string(*n, "networks." + key + ".name"));
      if (const Node* e = def->find("external")) {
        if (e->is_bool()) {
          external = e->as_bool();
        } else if (e->is_object()) {
          external = true;
          if (const Node* n = e->find("name")) name = PHX_TRY(need_string(*n, "external.name"));
        } else {
          return bad(*e, "networks." + key + ".external must be true or false");
        }
        if (external && !def->find("name") && !(e->is_object() && e->find("name"))) name = key;
      }
    }
    return std::make_pair(name, !external);
  }

  Result<json> service_networks(const Node& svc, const std::string& key) {
    std::vector<std::pair<std::string, const Node*>> attached;  // compose key, options
    const Node* nets = svc.find("networks");
    if (!nets || nets->size() == 0) {
      attached.emplace_back("default", nullptr);
    } else if (nets->is_array()) {
      for (const Node& i : nets->items())
        attached.emplace_back(PHX_TRY(need_string(i, "networks")), &i);
    } else if (nets->is_object()) {
      for (const auto& m : nets->members()) attached.emplace_back(m.key, &m.value);
    } else {
      return bad(*nets, "services." + key + ".networks must be a list or a mapping");
    }
    json out = json::array();
    for (const auto& [net, opts] : attached) {
      auto [name, own] = PHX_TRY(network_name(net, opts ? *opts : svc));
      used_networks_.insert(net);
      json aliases = json::array();
      if (opts && opts->is_object()) {
        if (const Node* a = opts->find("aliases")) {
          for (const std::string& s : PHX_TRY(string_list(*a, "aliases"))) aliases.push_back(s);
        }
      }
      // docker stack deploy gives every service its name as an alias on user-defined networks.
      if (name != "host" && name != "bridge" && name != "none" && name != "default")
        aliases.push_back(key);
      json att = {{"Target", name}};
      if (!aliases.empty()) att["Aliases"] = aliases;
      out.push_back(att);
    }
    std::sort(out.begin(), out.end(), [](const json& a, const json& b) {
      return a["Target"].get<std::string>() < b["Target"].get<std::string>();
    });
    return out;
  }

  Result<void> networks() {
    for (const std::string& key : used_networks_) {
      static const Node kNone = Node::object();
      auto [name, own] = PHX_TRY(network_name(key, kNone));
      if (!own) {
        out_.external_networks.push_back(name);
        continue;
      }
      const Node* def = networks_ ? networks_->find(key) : nullptr;
      json body = {{"Name", name}, {"Driver", "overlay"}, {"CheckDuplicate", true}};
      std::map<std::string, std::string> labels;
      if (def && def->is_object()) {
        std::string what = "networks." + key;
        if (const Node* n = def->find("driver"))
          body["Driver"] = PHX_TRY(need_string(*n, what + ".driver"));
        if (const Node* n = def->find("driver_opts"))
          body["Options"] = PHX_TRY(string_map(*n, what + ".driver_opts"));
        if (const Node* n = def->find("attachable"))
          body["Attachable"] = PHX_TRY(need_bool(*n, what + ".attachable"));
        if (const Node* n = def->find("internal"))
          body["Internal"] = PHX_TRY(need_bool(*n, what + ".internal"));
        if (const Node* n = def->find("labels")) labels = PHX_TRY(string_map(*n, what + ".labels"));
        if (const Node* ipam = def->find("ipam")) {
          if (!ipam->is_object()) return bad(*ipam, what + ".ipam must be a mapping");
          json i = json::object();
          if (const Node* n = ipam->find("driver"))
            i["Driver"] = PHX_TRY(need_string(*n, "ipam.driver"));
          if (const Node* c = ipam->find("config")) {
            if (!c->is_array()) return bad(*c, what + ".ipam.config must be a list");
            json configs = json::array();
            for (const Node& e : c->items()) {
              const Node* subnet = e.is_object() ? e.find("subnet") : nullptr;
              if (!subnet) return bad(e, what + ".ipam.config entries need a subnet");
              configs.push_back({{"Subnet", PHX_TRY(need_string(*subnet, "subnet"))}});
            }
            i["Config"] = configs;
          }
          body["IPAM"] = i;
        }
      }
      body["Labels"] = stack_labels(labels);
      out_.networks[name] = body;
    }
    std::sort(out_.external_networks.begin(), out_.external_networks.end());
    return {};
  }

  // ---- volumes --------------------------------------------------------------------------------

  Result<json> volume_mounts(const Node& n, const std::string& where) {
    if (!n.is_array()) return bad(n, where + ".volumes must be a list");
    json out = json::array();
    for (const Node& v : n.items()) out.push_back(PHX_TRY(volume_mount(v)));
    return out;
  }

  Result<json> volume_mount(const Node& v) {
    std::string type, source, target;
    bool read_only = false, nocopy = false;
    json bind_opts, tmpfs_opts;
    if (v.is_string()) {
      // short syntax: [source:]target[:mode]
      std::vector<std::string> parts = base::split(v.text(), ':');
      if (parts.empty() || parts.size() > 3) return bad(v, "a volume is [source:]target[:mode]");
      if (parts.size() == 1) {
        target = parts[0];
      } else {
        source = parts[0];
        target = parts[1];
      }
      if (parts.size() == 3) {
        for (const std::string& opt : base::split(parts[2], ',')) {
          if (opt == "ro") {
            read_only = true;
          } else if (opt == "nocopy") {
            nocopy = true;
          } else if (opt != "rw" && opt != "z" && opt != "Z" && !opt.empty()) {
            bind_opts = {{"Propagation", opt}};
          }
        }
      }
      type = source.empty() || (source[0] != '/' && source[0] != '.' && source[0] != '~') ? "volume"
                                                                                          : "bind";
    } else if (v.is_object()) {
      for (const auto& m : v.members()) {
        if (m.key == "type") {
          type = PHX_TRY(need_string(m.value, "type"));
        } else if (m.key == "source") {
          source = PHX_TRY(need_string(m.value, "source"));
        } else if (m.key == "target") {
          target = PHX_TRY(need_string(m.value, "target"));
        } else if (m.key == "read_only") {
          read_only = PHX_TRY(need_bool(m.value, "read_only"));
        } else if (m.key == "volume") {
          if (const Node* nc = m.value.find("nocopy")) nocopy = PHX_TRY(need_bool(*nc, "nocopy"));
        } else if (m.key == "bind") {
          if (const Node* p = m.value.find("propagation")) {
            bind_opts = {{"Propagation", PHX_TRY(need_string(*p, "propagation"))}};
          }
        } else if (m.key == "tmpfs") {
          if (const Node* s = m.value.find("size"))
            tmpfs_opts = {{"SizeBytes", PHX_TRY(need_bytes(*s, "size"))}};
        } else if (m.key != "consistency") {
          return bad(m.value, "unknown key \"" + m.key + "\" in a volume");
        }
      }
      if (type.empty()) return bad(v, "a volume in the long syntax needs a type");
    } else {
      return bad(v, "a volume is a string or a mapping");
    }
    if (target.empty() || target[0] != '/')
      return bad(v, "a volume's target must be an absolute path");
    json m = {{"Type", type}, {"Target", target}};
    if (read_only) m["ReadOnly"] = true;
    if (type == "bind") {
      if (source.empty() || source[0] != '/') {
        return bad(v, "a bind mount's source must be an absolute path on the swarm node (\"" +
                          source + "\" is relative)");
      }
      m["Source"] = source;
      if (!bind_opts.is_null()) m["BindOptions"] = bind_opts;
    } else if (type == "volume") {
      if (!source.empty()) {
        const Node* def = volumes_ ? volumes_->find(source) : nullptr;
        if (!def) {
          return bad(v,
                     "volume \"" + source + "\" is not defined in the top-level volumes section");
        }
        json opts = json::object();
        if (nocopy) opts["NoCopy"] = true;
        std::string name = scope(source);
        bool external = false;
        if (def->is_object()) {
          if (const Node* n = def->find("name"))
            name = PHX_TRY(need_string(*n, "volumes." + source + ".name"));
          if (const Node* e = def->find("external"))
            external = e->is_object() || (e->is_bool() && e->as_bool());
          if (external && !def->find("name")) name = source;
          if (!external) {
            std::map<std::string, std::string> labels;
            if (const Node* l = def->find("labels"))
              labels = PHX_TRY(string_map(*l, "volumes." + source + ".labels"));
            opts["Labels"] = stack_labels(labels);
            const Node* driver = def->find("driver");
            const Node* driver_opts = def->find("driver_opts");
            if (driver || driver_opts) {
              json dc = json::object();
              if (driver) dc["Name"] = PHX_TRY(need_string(*driver, "driver"));
              if (driver_opts) dc["Options"] = PHX_TRY(string_map(*driver_opts, "driver_opts"));
              opts["DriverConfig"] = dc;
            }
          }
        } else if (!def->is_null()) {
          return bad(*def, "volumes." + source + " must be a mapping");
        } else {
          opts["Labels"] = stack_labels();
        }
        m["Source"] = name;
        m["VolumeOptions"] = opts;
      }
    } else if (type == "tmpfs") {
      if (!source.empty()) return bad(v, "a tmpfs mount has no source");
      if (!tmpfs_opts.is_null()) m["TmpfsOptions"] = tmpfs_opts;
    } else {
      return bad(v, "a volume's type is volume, bind or tmpfs");
    }
    return m;
  }

  std::string ns_;
  const Node& compose_;
  const ReadFile& read_;
  const Node* networks_ = nullptr;
  const Node* volumes_ = nullptr;
  std::set<std::string> used_networks_;
  std::map<std::string, std::map<std::string, std::string>> names_;  // section -> key -> name
  std::map<std::string, std::map<std::string, std::string>> external_objects_;
  StackSpec out_;
};

}  // namespace

std::optional<std::int64_t> parse_duration(std::string_view text) {
  // Go's time.ParseDuration: a sequence of decimal numbers with units ns, us, ms, s, m, h.
  if (text.empty()) return std::nullopt;
  if (text == "0") return 0;
  double total = 0;
  std::size_t i = 0;
  while (i < text.size()) {
    std::size_t start = i;
    while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.'))
      ++i;
    if (i == start) return std::nullopt;
    double v = std::strtod(std::string(text.substr(start, i - start)).c_str(), nullptr);
    std::size_t u = i;
    while (i < text.size() && std::isalpha(static_cast<unsigned char>(text[i]))) ++i;
    std::string_view unit = text.substr(u, i - u);
    double scale = 0;
    if (unit == "ns")
      scale = 1;
    else if (unit == "us" || unit == "µs")
      scale = 1e3;
    else if (unit == "ms")
      scale = 1e6;
    else if (unit == "s")
      scale = 1e9;
    else if (unit == "m")
      scale = 60e9;
    else if (unit == "h")
      scale = 3600e9;
    else
      return std::nullopt;
    total += v * scale;
  }
  if (total > 9.2e18) return std::nullopt;
  return static_cast<std::int64_t>(std::llround(total));
}

std::optional<std::int64_t> parse_bytes(std::string_view text) {
  std::string t = base::to_lower(base::trim(text));
  std::size_t i = 0;
  while (i < t.size() && (std::isdigit(static_cast<unsigned char>(t[i])) || t[i] == '.')) ++i;
  if (i == 0) return std::nullopt;
  double v = std::strtod(t.substr(0, i).c_str(), nullptr);
  std::string unit(base::trim(std::string_view(t).substr(i)));
  if (unit.ends_with("ib"))
    unit = unit.substr(0, unit.size() - 2);
  else if (unit.size() == 2 && unit.back() == 'b')
    unit.pop_back();
  double scale = 0;
  if (unit.empty() || unit == "b")
    scale = 1;
  else if (unit == "k")
    scale = 1024.0;
  else if (unit == "m")
    scale = 1024.0 * 1024;
  else if (unit == "g")
    scale = 1024.0 * 1024 * 1024;
  else if (unit == "t")
    scale = 1024.0 * 1024 * 1024 * 1024;
  else
    return std::nullopt;
  double bytes = v * scale;
  if (bytes > 9.2e18) return std::nullopt;
  return static_cast<std::int64_t>(bytes);
}

Result<StackSpec> convert_stack(const std::string& ns, const Node& compose,
                                const ReadFile& read_file) {
  return Converter(ns, compose, read_file).run();
}

}  // namespace phoenix::swarm
