#include "base/node.h"

#include <utility>

namespace phoenix::base {

void Node::destroy() {
  switch (kind_) {
    case Kind::kString:
    case Kind::kInt:
    case Kind::kDouble:
      s_.text.~basic_string();
      break;
    case Kind::kArray:
      s_.items.~vector();
      break;
    case Kind::kObject:
      s_.members.~vector();
      break;
    case Kind::kNull:
    case Kind::kBool:
      break;
  }
  kind_ = Kind::kNull;
}

void Node::reset(Kind kind) {
  destroy();
  switch (kind) {
    case Kind::kString:
    case Kind::kInt:
    case Kind::kDouble:
      new (&s_.text) std::string();
      break;
    case Kind::kArray:
      new (&s_.items) std::vector<Node>();
      break;
    case Kind::kObject:
      new (&s_.members) std::vector<Member>();
      break;
    case Kind::kNull:
    case Kind::kBool:
      break;
  }
  kind_ = kind;
}

void Node::take(Node&& other) {
  kind_ = other.kind_;
  loc_ = other.loc_;
  int_ = other.int_;  // the widest of the scalars: copies whichever is set
  switch (kind_) {
    case Kind::kString:
    case Kind::kInt:
    case Kind::kDouble:
      new (&s_.text) std::string(std::move(other.s_.text));
      break;
    case Kind::kArray:
      new (&s_.items) std::vector<Node>(std::move(other.s_.items));
      break;
    case Kind::kObject:
      new (&s_.members) std::vector<Member>(std::move(other.s_.members));
      break;
    case Kind::kNull:
    case Kind::kBool:
      break;
  }
}

Node::Node(const Node& other) : kind_(other.kind_), loc_(other.loc_), int_(other.int_) {
  switch (kind_) {
    case Kind::kString:
    case Kind::kInt:
    case Kind::kDouble:
      new (&s_.text) std::string(other.s_.text);
      break;
    case Kind::kArray:
      new (&s_.items) std::vector<Node>(other.s_.items);
      break;
    case Kind::kObject:
      new (&s_.members) std::vector<Member>(other.s_.members);
      break;
    case Kind::kNull:
    case Kind::kBool:
      break;
  }
}

Node::Node(Node&& other) noexcept { take(std::move(other)); }

// Both assignments build the new value before dropping the old one: `other` may be part of
// this node (a node assigned one of its own members).
Node& Node::operator=(const Node& other) {
  if (this != &other) *this = Node(other);
  return *this;
}

Node& Node::operator=(Node&& other) noexcept {
  if (this == &other) return *this;
  Node value;
  value.take(std::move(other));
  destroy();
  take(std::move(value));
  return *this;
}

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
  n.reset(Kind::kInt);
  n.int_ = v;
  n.loc_ = loc;
  n.s_.text = text.empty() ? std::to_string(v) : std::move(text);
  return n;
}

Node Node::real(double v, SourceLoc loc, std::string text) {
  Node n;
  n.reset(Kind::kDouble);
  n.double_ = v;
  n.loc_ = loc;
  n.s_.text = text.empty() ? std::to_string(v) : std::move(text);
  return n;
}

Node Node::string(std::string v, SourceLoc loc) {
  Node n;
  n.reset(Kind::kString);
  n.s_.text = std::move(v);
  n.loc_ = loc;
  return n;
}

Node Node::array(SourceLoc loc) {
  Node n;
  n.reset(Kind::kArray);
  n.loc_ = loc;
  return n;
}

Node Node::object(SourceLoc loc) {
  Node n;
  n.reset(Kind::kObject);
  n.loc_ = loc;
  return n;
}

const std::string& Node::text() const {
  static const std::string kNull = "null", kTrue = "true", kFalse = "false", kNone;
  if (has_text()) return s_.text;
  if (kind_ == Kind::kNull) return kNull;
  if (kind_ == Kind::kBool) return bool_ ? kTrue : kFalse;
  return kNone;
}

// Writes through a mutable accessor of another kind's storage land in a scratch value that
// nobody reads, as they did when every node carried all three.
std::string& Node::mutable_text() {
  if (has_text()) return s_.text;
  thread_local std::string scratch;
  scratch.clear();
  return scratch;
}

std::vector<Node>& Node::items() {
  if (kind_ == Kind::kArray) return s_.items;
  thread_local std::vector<Node> scratch;
  scratch.clear();
  return scratch;
}

std::vector<Node::Member>& Node::members() {
  if (kind_ == Kind::kObject) return s_.members;
  thread_local std::vector<Member> scratch;
  scratch.clear();
  return scratch;
}

// Lengths are compared first: most keys of an object differ in length from the one looked for,
// and string == string_view compares the bytes before the lengths.
const Node::Member* Node::find_member(std::string_view key) const {
  for (const Member& m : members()) {
    if (m.key.size() == key.size() && std::string_view(m.key) == key) return &m;
  }
  return nullptr;
}

const Node* Node::find(std::string_view key) const {
  const Member* m = find_member(key);
  return m ? &m->value : nullptr;
}

Node* Node::find(std::string_view key) { return const_cast<Node*>(std::as_const(*this).find(key)); }

Node& Node::set(std::string key, Node value, SourceLoc key_loc) {
  std::vector<Member>& members = this->members();
  for (Member& m : members) {
    if (m.key == key) {
      m.value = std::move(value);
      return m.value;
    }
  }
  members.push_back(Member{std::move(key), key_loc, std::move(value)});
  return members.back().value;
}

bool Node::erase(std::string_view key) {
  if (kind_ != Kind::kObject) return false;
  for (auto it = s_.members.begin(); it != s_.members.end(); ++it) {
    if (it->key == key) {
      s_.members.erase(it);
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
      return a.s_.text == b.s_.text;
    case Node::Kind::kArray:
      return a.s_.items == b.s_.items;
    case Node::Kind::kObject:
      if (a.s_.members.size() != b.s_.members.size()) return false;
      for (std::size_t i = 0; i < a.s_.members.size(); ++i) {
        if (a.s_.members[i].key != b.s_.members[i].key) return false;
        if (!(a.s_.members[i].value == b.s_.members[i].value)) return false;
      }
      return true;
  }
  return false;
}

}  // namespace phoenix::base
