#include "config/reader.h"

#include <algorithm>
#include <cmath>

#include "base/strings.h"

namespace phoenix::config {

using base::Node;

ObjectReader::ObjectReader(const Node& object, base::Diagnostics& diags, std::string what)
    : object_(object), diags_(diags), what_(std::move(what)), used_(object.members().size()) {}

ObjectReader::~ObjectReader() { finish(); }

const Node* ObjectReader::take(std::string_view key) {
  known_.push_back(key);
  const Node::Member* m = object_.find_member(key);
  if (!m) return nullptr;
  used_[static_cast<std::size_t>(m - object_.members().data())] = true;
  return &m->value;
}

void ObjectReader::known(std::string_view key) { (void)take(key); }

void ObjectReader::type_error(const Node& value, std::string_view key, std::string_view expected) {
  std::string hint;
  if (value.is_string() && (expected == "an integer" || expected == "a number")) {
    hint = "write the number without quotes";
  } else if (value.is_string() && expected == "true or false") {
    hint = "write true or false without quotes";
  }
  diags_.error("wrong-type", value.loc(),
               std::string(key) + " in " + what_ + " must be " + std::string(expected) + ", not " +
                   std::string(value.kind_name()),
               hint);
}

void ObjectReader::str(std::string_view key, Val<std::string>& out) {
  out.loc = object_.loc();
  const Node* v = take(key);
  if (!v || v->is_null()) return;
  if (!v->is_string()) {
    type_error(*v, key, "a string");
    return;
  }
  out.value = v->text();
  out.loc = v->loc();
  out.present = true;
}

void ObjectReader::integer(std::string_view key, Val<std::int64_t>& out, std::int64_t min,
                           std::int64_t max) {
  out.loc = object_.loc();
  const Node* v = take(key);
  if (!v || v->is_null()) return;
  if (!v->is_int()) {
    type_error(*v, key, "an integer");
    return;
  }
  if (v->as_int() < min || v->as_int() > max) {
    diags_.error("out-of-range", v->loc(),
                 std::string(key) + " in " + what_ + " must be between " + std::to_string(min) +
                     " and " + std::to_string(max) + ", not " + v->text());
    return;
  }
  out.value = v->as_int();
  out.loc = v->loc();
  out.present = true;
}

void ObjectReader::number(std::string_view key, Val<double>& out, double min, double max) {
  out.loc = object_.loc();
  const Node* v = take(key);
  if (!v || v->is_null()) return;
  if (!v->is_number()) {
    type_error(*v, key, "a number");
    return;
  }
  double d = v->as_double();
  if (!(d >= min && d <= max)) {
    auto fmt = [](double x) {
      std::string s = std::to_string(x);
      while (s.size() > 1 && s.back() == '0') s.pop_back();
      if (!s.empty() && s.back() == '.') s.pop_back();
      return s;
    };
    diags_.error("out-of-range", v->loc(),
                 std::string(key) + " in " + what_ + " must be between " + fmt(min) + " and " +
                     fmt(max) + ", not " + v->text());
    return;
  }
  out.value = d;
  out.loc = v->loc();
  out.present = true;
}

void ObjectReader::boolean(std::string_view key, Val<bool>& out) {
  out.loc = object_.loc();
  const Node* v = take(key);
  if (!v || v->is_null()) return;
  if (!v->is_bool()) {
    type_error(*v, key, "true or false");
    return;
  }
  out.value = v->as_bool();
  out.loc = v->loc();
  out.present = true;
}

void ObjectReader::str_list(std::string_view key, std::vector<Val<std::string>>& out,
                            bool allow_single) {
  const Node* v = take(key);
  if (!v || v->is_null()) return;
  if (allow_single && v->is_string()) {
    out.push_back(Val<std::string>{v->text(), v->loc(), true});
    return;
  }
  if (!v->is_array()) {
    type_error(*v, key, "an array of strings");
    return;
  }
  for (const Node& item : v->items()) {
    if (!item.is_string()) {
      diags_.error("wrong-type", item.loc(),
                   "each element of " + std::string(key) + " in " + what_ +
                       " must be a string, not " + std::string(item.kind_name()));
      continue;
    }
    out.push_back(Val<std::string>{item.text(), item.loc(), true});
  }
}

void ObjectReader::object(std::string_view key, const std::function<void(ObjectReader&)>& fn) {
  const Node* v = take(key);
  if (!v || v->is_null()) return;
  if (!v->is_object()) {
    type_error(*v, key, "an object");
    return;
  }
  ObjectReader sub(*v, diags_, std::string(key) + " of " + what_);
  fn(sub);
  sub.finish();
}

void ObjectReader::object_list(std::string_view key, const std::function<void(ObjectReader&)>& fn) {
  const Node* v = take(key);
  if (!v || v->is_null()) return;
  if (!v->is_array()) {
    type_error(*v, key, "an array of objects");
    return;
  }
  for (const Node& item : v->items()) {
    if (!item.is_object()) {
      diags_.error("wrong-type", item.loc(),
                   "each element of " + std::string(key) + " in " + what_ +
                       " must be an object, not " + std::string(item.kind_name()));
      continue;
    }
    ObjectReader sub(item, diags_, std::string(key) + " entry of " + what_);
    fn(sub);
    sub.finish();
  }
}

const Node* ObjectReader::raw(std::string_view key) { return take(key); }

void ObjectReader::unused(std::string_view key, std::string_view why) {
  const Node::Member* m = object_.find_member(key);
  known_.push_back(key);
  if (!m) return;
  diags_.warning("unused-key", m->key_loc,
                 "\"" + std::string(key) + "\" in " + what_ + " is not used by Phoenix",
                 std::string(why));
}

void ObjectReader::finish() {
  if (finished_) return;
  finished_ = true;
  const auto& members = object_.members();
  for (std::size_t i = 0; i < members.size(); ++i) {
    if (used_[i]) continue;
    const Node::Member& m = members[i];
    // (A key given twice, where a parser keeps both, is found once: the other is known too.)
    if (std::find(known_.begin(), known_.end(), m.key) != known_.end()) continue;
    auto suggestion = base::closest_match(m.key, known_);
    std::string hint = suggestion ? "did you mean \"" + *suggestion + "\"?"
                                  : "remove it, or check the spelling against the documentation";
    diags_.warning("unknown-key", m.key_loc,
                   "unknown key \"" + m.key + "\" in " + what_ + "; it is ignored", hint);
  }
}

}  // namespace phoenix::config
