#include "render/yaml_emit.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "base/scalar.h"
#include "base/strings.h"

namespace phoenix::render {
namespace {

using base::Node;

std::string scalar(const Node& n) {
  switch (n.kind()) {
    case Node::Kind::kNull:
      return "null";
    case Node::Kind::kBool:
      return n.as_bool() ? "true" : "false";
    case Node::Kind::kInt:
      return std::to_string(n.as_int());
    case Node::Kind::kDouble: {
      double d = n.as_double();
      if (std::isnan(d)) return ".nan";
      if (std::isinf(d)) return d > 0 ? ".inf" : "-.inf";
      // The source text keeps the user's spelling (0.50); fall back to shortest round-trip.
      if (!n.text().empty() &&
          base::resolve_plain_scalar(n.text(), {}).kind() == Node::Kind::kDouble) {
        return n.text();
      }
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.17g", d);
      return buf;
    }
    case Node::Kind::kString:
      return is_plain_safe(n.text()) ? n.text() : base::json_quote(n.text());
    default:
      return "";
  }
}

std::vector<const Node::Member*> sorted_members(const Node& n) {
  std::vector<const Node::Member*> out;
  for (const auto& m : n.members()) out.push_back(&m);
  std::sort(out.begin(), out.end(),
            [](const Node::Member* a, const Node::Member* b) { return a->key < b->key; });
  return out;
}

std::string key_text(const std::string& key) {
  return is_plain_safe(key) ? key : base::json_quote(key);
}

bool is_empty_collection(const Node& n) { return (n.is_array() || n.is_object()) && n.size() == 0; }

void emit(const Node& n, int indent, std::string& out);

void emit_value_after_key(const Node& v, int indent, std::string& out) {
  if (v.is_scalar() || is_empty_collection(v)) {
    out += ' ';
    out += v.is_array() ? "[]" : v.is_object() ? "{}" : scalar(v);
    out += '\n';
    return;
  }
  out += '\n';
  emit(v, v.is_array() ? indent : indent + 2, out);
}

void emit(const Node& n, int indent, std::string& out) {
  std::string pad(static_cast<std::size_t>(indent), ' ');
  if (n.is_object()) {
    for (const Node::Member* m : sorted_members(n)) {
      out += pad;
      out += key_text(m->key);
      out += ':';
      emit_value_after_key(m->value, indent, out);
    }
  } else if (n.is_array()) {
    for (const Node& item : n.items()) {
      out += pad;
      out += '-';
      if (item.is_scalar() || is_empty_collection(item)) {
        out += ' ';
        out += item.is_array() ? "[]" : item.is_object() ? "{}" : scalar(item);
        out += '\n';
      } else if (item.is_object()) {
        // First member on the dash line, the rest aligned under it.
        std::string nested;
        emit(item, indent + 2, nested);
        out += ' ';
        out += nested.substr(static_cast<std::size_t>(indent) + 2);
      } else {
        out += '\n';
        emit(item, indent + 2, out);
      }
    }
  } else {
    out += pad + scalar(n) + '\n';
  }
}

}  // namespace

bool is_plain_safe(std::string_view t) {
  if (t.empty()) return false;
  // Anything that would read back as another type must be quoted. Only text starting with a
  // digit, a sign, a dot, '~' or the first letter of null/true/false can; skip the rest.
  static constexpr std::string_view kTypedStart = "0123456789+-.~nNtTfF";
  if (kTypedStart.find(t.front()) != std::string_view::npos &&
      base::resolve_plain_scalar(std::string(t), {}).kind() != Node::Kind::kString) {
    return false;
  }
  static const std::string_view kYaml11[] = {"y",  "Y",  "yes", "Yes", "YES", "n",   "N",   "no",
                                             "No", "NO", "on",  "On",  "ON",  "off", "Off", "OFF"};
  for (std::string_view w : kYaml11) {
    if (t == w) return false;  // booleans to YAML 1.1 readers such as Go's yaml.v2
  }
  if (t.front() == ' ' || t.back() == ' ') return false;
  if (t == "<<") return false;  // would read back as a merge key
  // "80:80" is a base-60 number to YAML 1.1 readers.
  if (t.find(':') != std::string_view::npos &&
      t.find_first_not_of("0123456789:._+-") == std::string_view::npos) {
    return false;
  }
  static constexpr std::string_view kSpecialStart = "-?:,[]{}#&*!|>'\"%@`";
  if (kSpecialStart.find(t.front()) != std::string_view::npos) {
    // "-x" and "/path" are common; only '-' followed by a non-space is safe.
    if (!(t.front() == '-' && t.size() > 1 && t[1] != ' ')) return false;
  }
  for (std::size_t i = 0; i < t.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(t[i]);
    if (c < 0x20 || c == 0x7f) return false;
    if (t[i] == '#' && i > 0 && t[i - 1] == ' ') return false;
    if (t[i] == ':' && (i + 1 == t.size() || t[i + 1] == ' ')) return false;
    if (t[i] == '`' || t[i] == '"' || t[i] == '\'' || t[i] == '{' || t[i] == '}' || t[i] == '[' ||
        t[i] == ']' || t[i] == ',') {
      return false;
    }
  }
  return true;
}

std::string emit_yaml(const Node& node) {
  std::string out;
  if (node.is_scalar() || is_empty_collection(node)) {
    return node.is_array() ? "[]\n" : node.is_object() ? "{}\n" : scalar(node) + "\n";
  }
  emit(node, 0, out);
  return out;
}

}  // namespace phoenix::render
