#include "schema.h"

#include <algorithm>
#include <charconv>
#include <mutex>
#include <optional>
#include <regex>

#include "base/fs.h"

namespace phoenix::pvesim {
namespace {

using nlohmann::json;

std::vector<std::string> split_path(std::string_view path) {
  std::vector<std::string> out;
  std::size_t i = 0;
  while (i < path.size()) {
    while (i < path.size() && path[i] == '/') ++i;
    std::size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    if (j > i) out.emplace_back(path.substr(i, j - i));
    i = j;
  }
  return out;
}

bool is_template(const std::string& seg) {
  return seg.size() > 2 && seg.front() == '{' && seg.back() == '}';
}

// Proxmox dumps Perl regexes: "(?^:...)" is a non-capturing group with default flags, "(?^i:"
// the same ignoring case. Returns nullopt for what std::regex cannot compile, which is accepted.
std::optional<std::regex> compile_perl_regex(const std::string& pattern) {
  static std::mutex mu;
  static std::map<std::string, std::optional<std::regex>> cache;
  std::lock_guard lock(mu);
  if (auto it = cache.find(pattern); it != cache.end()) return it->second;
  std::string p = pattern;
  auto flags = std::regex::ECMAScript;
  for (std::size_t pos; (pos = p.find("(?^i:")) != std::string::npos;) {
    p.replace(pos, 5, "(?:");
    flags |= std::regex::icase;
  }
  for (std::size_t pos; (pos = p.find("(?^:")) != std::string::npos;) p.replace(pos, 4, "(?:");
  std::optional<std::regex> re;
  try {
    re.emplace("^(?:" + p + ")$", flags);
  } catch (const std::regex_error&) {
    re.reset();
  }
  return cache[pattern] = re;
}

bool full_match(const std::string& pattern, std::string_view value) {
  auto re = compile_perl_regex(pattern);
  if (!re) return true;
  return std::regex_match(value.begin(), value.end(), *re);
}

bool is_integer(std::string_view v) {
  static const std::regex re(R"(^[+-]?\d+$)");
  return std::regex_match(v.begin(), v.end(), re);
}

bool is_number(std::string_view v) {
  static const std::regex re(R"(^[+-]?(\d+|\d+\.\d*|\d*\.\d+)([eE][+-]?\d+)?$)");
  return std::regex_match(v.begin(), v.end(), re);
}

// PVE::JSONSchema::parse_boolean.
std::optional<bool> parse_boolean(std::string_view v) {
  std::string l(v);
  std::transform(l.begin(), l.end(), l.begin(), [](unsigned char c) { return std::tolower(c); });
  if (l == "1" || l == "true" || l == "yes" || l == "on") return true;
  if (l == "0" || l == "false" || l == "no" || l == "off") return false;
  return std::nullopt;
}

std::string number_text(const json& n) {
  if (n.is_number_integer()) return std::to_string(n.get<long long>());
  if (n.is_number_float()) {
    double d = n.get<double>();
    if (d == static_cast<double>(static_cast<long long>(d))) {
      return std::to_string(static_cast<long long>(d));
    }
    return n.dump();
  }
  return n.is_string() ? n.get<std::string>() : n.dump();
}

bool truthy(const json& schema, const char* key) {
  auto it = schema.find(key);
  if (it == schema.end()) return false;
  if (it->is_boolean()) return it->get<bool>();
  if (it->is_number()) return it->get<double>() != 0;
  if (it->is_string()) return it->get<std::string>() == "1";
  return false;
}

// "net[n]" -> "net" when `name` is "net0", "net12", ...
bool matches_indexed(const std::string& schema_name, const std::string& name) {
  if (schema_name.size() < 4 || !schema_name.ends_with("[n]")) return false;
  std::string_view prefix(schema_name.data(), schema_name.size() - 3);
  if (!name.starts_with(prefix) || name.size() == prefix.size()) return false;
  std::string_view idx(name.data() + prefix.size(), name.size() - prefix.size());
  if (idx.size() > 1 && idx.front() == '0') return false;
  return std::all_of(idx.begin(), idx.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::string strip_newline(std::string s) {
  while (!s.empty() && s.back() == '\n') s.pop_back();
  return s;
}

}  // namespace

bool MethodSchema::returns_string() const {
  if (!info) return false;
  auto it = info->find("returns");
  return it != info->end() && it->value("type", "") == "string";
}

base::Result<ApiSchema> ApiSchema::load(const std::string& file) {
  std::string text = PHX_TRY(base::read_file(file));
  auto r = parse(text);
  if (!r) return std::unexpected(std::move(r).error().with_context("loading " + file));
  return r;
}

base::Result<ApiSchema> ApiSchema::parse(std::string_view text) {
  ApiSchema s;
  s.tree_ = std::make_shared<json>(json::parse(text, nullptr, false));
  if (s.tree_->is_discarded() || !s.tree_->is_array()) {
    return base::fail(base::ErrorKind::kInvalidInput, "not a Proxmox API schema (a JSON array)");
  }
  s.nodes_ = std::make_shared<std::vector<Node>>();
  std::vector<const json*> stack;
  for (const auto& n : *s.tree_) stack.push_back(&n);
  while (!stack.empty()) {
    const json* n = stack.back();
    stack.pop_back();
    if (!n->is_object()) continue;
    Node node;
    node.path = n->value("path", "");
    node.segments = split_path(node.path);
    if (auto info = n->find("info"); info != n->end() && info->is_object()) {
      for (auto it = info->begin(); it != info->end(); ++it) {
        node.methods[it.key()] =
            MethodSchema{.method = it.key(), .path_template = node.path, .info = &it.value()};
      }
    }
    s.nodes_->push_back(std::move(node));
    if (auto c = n->find("children"); c != n->end() && c->is_array()) {
      for (const auto& child : *c) stack.push_back(&child);
    }
  }
  return s;
}

base::Result<Match> ApiSchema::match(std::string_view method, std::string_view path) const {
  auto segs = split_path(path);
  const Node* best = nullptr;
  int best_literals = -1;
  for (const auto& node : *nodes_) {
    if (node.segments.size() != segs.size()) continue;
    int literals = 0;
    bool ok = true;
    for (std::size_t i = 0; i < segs.size() && ok; ++i) {
      if (is_template(node.segments[i])) continue;
      ok = node.segments[i] == segs[i];
      ++literals;
    }
    if (ok && literals > best_literals) {
      best = &node;
      best_literals = literals;
    }
  }
  if (!best) {
    return base::fail(base::ErrorKind::kNotFound, "no such API path '" + std::string(path) + "'");
  }
  auto m = best->methods.find(std::string(method));
  if (m == best->methods.end()) {
    return base::fail(base::ErrorKind::kInvalidInput,
                      "method '" + std::string(method) + " " + best->path + "' not implemented");
  }
  Match out;
  out.method = &m->second;
  for (std::size_t i = 0; i < segs.size(); ++i) {
    const auto& t = best->segments[i];
    if (is_template(t)) out.path_params[t.substr(1, t.size() - 2)] = segs[i];
  }
  return out;
}

base::Result<Params> parse_property_string(const json& format, std::string_view value,
                                           const std::string& path) {
  auto die = [](std::string msg) { return base::fail(base::ErrorKind::kInvalidInput, msg); };
  Params res;
  std::string default_key;
  std::size_t i = 0;
  while (i <= value.size()) {
    std::size_t j = value.find(',', i);
    if (j == std::string_view::npos) j = value.size();
    std::string part(value.substr(i, j - i));
    i = j + 1;
    if (part.find_first_not_of(" \t\r\n") == std::string::npos) continue;
    auto eq = part.find('=');
    if (eq != std::string::npos && eq > 0 && eq + 1 < part.size()) {
      std::string k = part.substr(0, eq);
      std::string v = part.substr(eq + 1);
      if (res.contains(k))
        return die("duplicate key in comma-separated list property: " + k + "\n");
      auto sch = format.find(k);
      if (sch != format.end() && sch->contains("alias")) {
        // "virtio=BC:24:11:..." sets model=virtio and macaddr=BC:24:11:...
        if (auto ka = sch->find("keyAlias"); ka != sch->end() && ka->is_string()) {
          if (res.contains(ka->get<std::string>()))
            return die("key alias '" + ka->get<std::string>() + "' is already defined\n");
          res[ka->get<std::string>()] = k;
        }
        k = (*sch)["alias"].get<std::string>();
        sch = format.find(k);
      }
      if (sch == format.end())
        return die("invalid key in comma-separated list property: " + k + "\n");
      if (sch->value("type", "") == "boolean") {
        if (auto b = parse_boolean(v)) v = *b ? "1" : "0";
      }
      res[k] = v;
    } else if (eq == std::string::npos) {
      if (!default_key.empty()) {
        return die("duplicate key in comma-separated list property: " + default_key + "\n");
      }
      for (auto it = format.begin(); it != format.end(); ++it) {
        if (truthy(*it, "default_key")) default_key = it.key();
      }
      if (default_key.empty())
        return die("value without key, but schema does not define a default key\n");
      if (res.contains(default_key)) {
        return die("duplicate key in comma-separated list property: " + default_key + "\n");
      }
      res[default_key] = part;
    } else {
      return die("missing key in comma-separated list property\n");
    }
    if (j == value.size()) break;
  }
  // check_object on the parsed hash, with "path.key" names.
  ParamErrors errors;
  for (auto it = format.begin(); it != format.end(); ++it) {
    if (it->contains("alias")) continue;  // another name of a key checked on its own
    std::string sub = path.empty() ? it.key() : path + "." + it.key();
    auto v = res.find(it.key());
    if (v == res.end()) {
      if (!truthy(*it, "optional")) errors[sub] = "property is missing and it is not optional";
      continue;
    }
    if (auto msg = check_value(*it, v->second, sub); !msg.empty()) errors[sub] = msg;
  }
  if (!errors.empty()) {
    std::string msg = "format error\n";
    for (const auto& [k, m] : errors) msg += k + ": " + strip_newline(m) + "\n";
    return die(msg);
  }
  return res;
}

std::vector<std::string> array_values(const std::string& value) {
  std::vector<std::string> out;
  std::size_t i = 0;
  while (true) {
    std::size_t j = value.find(kArraySeparator, i);
    out.push_back(value.substr(i, j == std::string::npos ? std::string::npos : j - i));
    if (j == std::string::npos) return out;
    i = j + 1;
  }
}

std::string check_value(const json& schema, const std::string& value, const std::string& path) {
  std::string type = schema.value("type", "string");
  if (type == "array") {
    static const json kString = {{"type", "string"}};
    auto items = schema.find("items");
    const json& item = items != schema.end() && items->is_object() ? *items : kString;
    for (const std::string& v : array_values(value)) {
      if (auto msg = check_value(item, v, path); !msg.empty()) return msg;
    }
    return "";
  }
  if (value.find(kArraySeparator) != std::string::npos) {
    return "type check ('" + type + "') failed - got an array";
  }
  if (type == "integer" && !is_integer(value)) {
    return "type check ('integer') failed - got '" + value + "'";
  }
  if (type == "number" && !is_number(value)) {
    return "type check ('number') failed - got '" + value + "'";
  }
  if (type == "boolean" && !parse_boolean(value)) {
    return "type check ('boolean') failed - got '" + value + "'";
  }
  if (auto f = schema.find("format"); f != schema.end()) {
    std::string err;
    if (f->is_object()) {
      auto r = parse_property_string(*f, value, path);
      if (!r) err = r.error().message();
    } else if (f->is_string()) {
      err = check_named_format(f->get<std::string>(), value);
    }
    if (!err.empty()) return "invalid format - " + err;
  }
  if (auto p = schema.find("pattern"); p != schema.end() && p->is_string()) {
    if (!full_match(p->get<std::string>(), value)) return "value does not match the regex pattern";
  }
  if (auto m = schema.find("maxLength"); m != schema.end() && m->is_number()) {
    if (value.size() > m->get<std::size_t>()) {
      return "value may only be " + number_text(*m) + " characters long";
    }
  }
  if (auto m = schema.find("minLength"); m != schema.end() && m->is_number()) {
    if (value.size() < m->get<std::size_t>()) {
      return "value must be at least " + number_text(*m) + " characters long";
    }
  }
  if (is_number(value) && type != "string") {
    double d = std::strtod(value.c_str(), nullptr);
    if (auto m = schema.find("maximum");
        m != schema.end() && m->is_number() && d > m->get<double>()) {
      return "value must have a maximum value of " + number_text(*m);
    }
    if (auto m = schema.find("minimum");
        m != schema.end() && m->is_number() && d < m->get<double>()) {
      return "value must have a minimum value of " + number_text(*m);
    }
  }
  if (auto e = schema.find("enum"); e != schema.end() && e->is_array()) {
    bool found = false;
    std::string all;
    for (const auto& v : *e) {
      std::string s = number_text(v);
      found = found || s == value;
      all += (all.empty() ? "" : "', '") + s;
    }
    if (!found) {
      return "value '" + value + "' does not have a value in the enumeration '" + all + "'";
    }
  }
  return "";
}

ParamErrors validate_params(const MethodSchema& method, const Params& params) {
  ParamErrors errors;
  static const json kEmpty = json::object();
  const json* props = &kEmpty;
  bool additional = false;
  if (auto p = method.info->find("parameters"); p != method.info->end()) {
    if (auto pp = p->find("properties"); pp != p->end() && pp->is_object()) props = &*pp;
    additional = truthy(*p, "additionalProperties");
  }
  for (auto it = props->begin(); it != props->end(); ++it) {
    const std::string& name = it.key();
    if (name.ends_with("[n]")) continue;  // indexed ones are checked per instance below
    auto v = params.find(name);
    if (v == params.end()) {
      if (!truthy(*it, "optional")) errors[name] = "property is missing and it is not optional";
      continue;
    }
    if (auto msg = check_value(*it, v->second, name); !msg.empty()) errors[name] = msg;
  }
  for (const auto& [name, value] : params) {
    if (props->contains(name)) continue;
    const json* indexed = nullptr;
    for (auto it = props->begin(); it != props->end() && !indexed; ++it) {
      if (matches_indexed(it.key(), name)) indexed = &it.value();
    }
    if (indexed) {
      if (auto msg = check_value(*indexed, value, name); !msg.empty()) errors[name] = msg;
    } else if (!additional) {
      errors[name] =
          "property is not defined in schema and the schema does not allow additional properties";
    }
  }
  return errors;
}

}  // namespace phoenix::pvesim
