#include "model/interpolate.h"

namespace phoenix::model {
namespace {

bool is_name_start(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_'; }
bool is_name_char(char c) { return is_name_start(c) || (c >= '0' && c <= '9'); }

}  // namespace

InterpolationResult interpolate(std::string_view text,
                                const std::map<std::string, std::string, std::less<>>& vars) {
  InterpolationResult r;
  std::size_t i = 0;
  while (i < text.size()) {
    char c = text[i];
    if (c != '$') {
      r.text += c;
      ++i;
      continue;
    }
    if (i + 1 < text.size() && text[i + 1] == '$') {
      r.text += '$';
      i += 2;
      continue;
    }
    if (i + 1 < text.size() && is_name_start(text[i + 1])) {
      std::size_t j = i + 1;
      while (j < text.size() && is_name_char(text[j])) ++j;
      std::string_view name = text.substr(i + 1, j - i - 1);
      auto it = vars.find(name);
      if (it != vars.end()) {
        r.text += it->second;
      } else {
        r.unset.emplace_back(name);
      }
      i = j;
      continue;
    }
    if (i + 1 < text.size() && text[i + 1] == '{') {
      std::size_t close = text.find('}', i + 2);
      if (close == std::string_view::npos) {
        r.error = "unterminated \"${\" in \"" + std::string(text) + "\"";
        return r;
      }
      std::string_view body = text.substr(i + 2, close - i - 2);
      std::size_t n = 0;
      while (n < body.size() && is_name_char(body[n])) ++n;
      std::string_view name = body.substr(0, n);
      std::string_view op = body.substr(n);
      if (name.empty() || !is_name_start(name[0])) {
        r.error = "invalid variable reference \"${" + std::string(body) + "}\"";
        return r;
      }
      auto it = vars.find(name);
      bool set = it != vars.end();
      bool empty = set && it->second.empty();
      if (op.empty()) {
        if (set) {
          r.text += it->second;
        } else {
          r.unset.emplace_back(name);
        }
      } else if (op.starts_with(":-") || op.starts_with("-")) {
        bool colon = op[0] == ':';
        std::string_view def = op.substr(colon ? 2 : 1);
        bool use_default = colon ? (!set || empty) : !set;
        r.text += use_default ? std::string(def) : it->second;
      } else if (op.starts_with(":?") || op.starts_with("?")) {
        bool colon = op[0] == ':';
        std::string_view msg = op.substr(colon ? 2 : 1);
        bool missing = colon ? (!set || empty) : !set;
        if (missing) {
          r.error = "required variable " + std::string(name) + " is not set" +
                    (msg.empty() ? "" : ": " + std::string(msg));
          return r;
        }
        r.text += it->second;
      } else {
        r.error = "invalid variable reference \"${" + std::string(body) + "}\"";
        return r;
      }
      i = close + 1;
      continue;
    }
    // A lone '$' is kept, as compose does.
    r.text += '$';
    ++i;
  }
  return r;
}

}  // namespace phoenix::model
