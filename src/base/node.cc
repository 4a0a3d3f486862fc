#include "base/node.h"

namespace phoenix::base {

Node Node::null(SourceLoc loc) {
  Node n;
  n.loc_ = loc;
  return n;
}

Node Node::boolean(bool v, SourceLoc loc) {
  Node n;
  n.kind_ = Kind::kBool;
  n.bool_ = v;
  n.loc_ = loc;
  return n;
}

Node Node::integer(std::int64_t v, SourceLoc loc, std::string text) {
  Node n;
  n.kind_ = Kind::kInt;
  n.int_ = v;
  n.loc_ = loc;
  n.text_ = text.empty() ? std::to_string(v) : std::move(text);
  return n;
}

Node Node::real(double v, SourceLoc loc, std::string text) {
  Node n;
  n.kind_ = Kind::kDouble;
  n.double_ = v;
  n.loc_ = loc;
  n.text_ = text.empty() ? std::to_string(v) : std::move(text);
  return n;
}

Node Node::string(std::string v, SourceLoc loc) {
  Node n;
  n.kind_ = Kind::kString;
  n.text_ = std::move(v);
  n.loc_ = loc;
  return n;
}

Node Node::array(SourceLoc loc) {
  Node n;
  n.kind_ = Kind::kArray;
  n.loc_ = loc;
  return n;
}

Node Node::object(SourceLoc loc) {
  Node n;
  n.kind_ = Kind::kObject;
  n.loc_ = loc;
  return n;
}

const std::string& Node::text() const {
  static const std::string kNull = "null", kTrue = "true", kFalse = "false";
  if (kind_ == Kind::kNull) return kNull;
  if (kind_ == Kind::kBool) return bool_ ? kTrue : kFalse;
  return text_;
}

const Node::Member* Node::find_member(std::string_view key) const {
  for (const Member& m : members_) {
    if (m.key == key) return &m;
  }
  return nullptr;
}

const Node* Node::find(std::string_view key) const {
  const Member* m = find_member(key);
  return m ? &m->value : nullptr;
}

Node* Node::find(std::string_view key) {
  for (Member& m : members_) {
    if (m.key == key) return &m.value;
  }
  return nullptr;
}

Node& Node::set(std::string key, Node value, SourceLoc key_loc) {
  for (Member& m : members_) {
    if (m.key == key) {
      m.value = std::move(value);
      return m.value;
    }
  }
  members_.push_back(Member{std::move(key), key_loc, std::move(value)});
  return members_.back().value;
}

bool Node::erase(std::string_view key) {
  for (auto it = members_.begin(); it != members_.end(); ++it) {
    if (it->key == key) {
      members_.erase(it);
      return true;
    }
  }
  return false;
}

std::string_view kind_name(Node::Kind kind) {
  switch (kind) {
    case Node::Kind::kNull:
      return "null";
    case Node::Kind::kBool:
      return "boolean";
    case Node::Kind::kInt:
      return "integer";
    case Node::Kind::kDouble:
      return "number";
    case Node::Kind::kString:
      return "string";
    case Node::Kind::kArray:
      return "array";
    case Node::Kind::kObject:
      return "object";
  }
  return "value";
}

std::string_view Node::kind_name() const { return phoenix::base::kind_name(kind_); }

bool operator==(const Node& a, const Node& b) {
  if (a.kind_ != b.kind_) {
    return a.is_number() && b.is_number() && a.as_double() == b.as_double();
  }
  switch (a.kind_) {
    case Node::Kind::kNull:
      return true;
    case Node::Kind::kBool:
      return a.bool_ == b.bool_;
    case Node::Kind::kInt:
      return a.int_ == b.int_;
    case Node::Kind::kDouble:
      return a.double_ == b.double_;
    case Node::Kind::kString:
      return a.text_ == b.text_;
    case Node::Kind::kArray:
      return a.items_ == b.items_;
    case Node::Kind::kObject:
      if (a.members_.size() != b.members_.size()) return false;
      for (std::size_t i = 0; i < a.members_.size(); ++i) {
        if (a.members_[i].key != b.members_[i].key) return false;
        if (!(a.members_[i].value == b.members_[i].value)) return false;
      }
      return true;
  }
  return false;
}

}  // namespace phoenix::base
