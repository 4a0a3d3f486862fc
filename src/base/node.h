#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/source.h"

namespace phoenix::base {

// A parsed JSON or YAML value that remembers where it came from. Objects keep their members in
// document order and the location of each key, so that diagnostics can point at either.
//
// A large estate holds hundreds of thousands of these, so a Node keeps only what its kind uses:
// a string's (or a number's source) text, an array's items and an object's members share one
// union. Accessors of another kind's storage see an empty one; writes to it are dropped.
class Node {
 public:
  enum class Kind : std::uint8_t { kNull, kBool, kInt, kDouble, kString, kArray, kObject };

  struct Member;

  Node() {}
  Node(const Node& other);
  Node(Node&& other) noexcept;
  Node& operator=(const Node& other);
  Node& operator=(Node&& other) noexcept;
  ~Node() { destroy(); }

  static Node null(SourceLoc loc = {});
  static Node boolean(bool v, SourceLoc loc = {});
  static Node integer(std::int64_t v, SourceLoc loc = {}, std::string text = {});
  static Node real(double v, SourceLoc loc = {}, std::string text = {});
  static Node string(std::string v, SourceLoc loc = {});
  static Node array(SourceLoc loc = {});
  static Node object(SourceLoc loc = {});

  Kind kind() const { return kind_; }
  SourceLoc loc() const { return loc_; }
  void set_loc(SourceLoc loc) { loc_ = loc; }

  bool is_null() const { return kind_ == Kind::kNull; }
  bool is_bool() const { return kind_ == Kind::kBool; }
  bool is_int() const { return kind_ == Kind::kInt; }
  bool is_number() const { return kind_ == Kind::kInt || kind_ == Kind::kDouble; }
  bool is_string() const { return kind_ == Kind::kString; }
  bool is_array() const { return kind_ == Kind::kArray; }
  bool is_object() const { return kind_ == Kind::kObject; }
  bool is_scalar() const { return kind_ != Kind::kArray && kind_ != Kind::kObject; }

  bool as_bool() const { return kind_ == Kind::kBool && bool_; }
  std::int64_t as_int() const { return kind_ == Kind::kInt ? int_ : 0; }
  double as_double() const {
    return kind_ == Kind::kInt ? static_cast<double>(int_) : kind_ == Kind::kDouble ? double_ : 0;
  }
  // For strings, the string; for numbers, their source text (e.g. "0.50"); for booleans and null,
  // their canonical spelling; empty for arrays and objects.
  const std::string& text() const;
  // A string's text, for parsers that build it in place.
  std::string& mutable_text();

  // Arrays.
  const std::vector<Node>& items() const;
  std::vector<Node>& items();
  void push_back(Node n);

  // Objects.
  const std::vector<Member>& members() const;
  std::vector<Member>& members();
  const Node* find(std::string_view key) const;
  Node* find(std::string_view key);
  const Member* find_member(std::string_view key) const;
  // Appends or replaces `key`; returns the stored value.
  Node& set(std::string key, Node value, SourceLoc key_loc = {});
  bool erase(std::string_view key);

  std::size_t size() const;

  // "string", "integer", "object", ... as a user would say it.
  std::string_view kind_name() const;

  friend bool operator==(const Node& a, const Node& b);  // compares values, not locations

 private:
  bool has_text() const {
    return kind_ == Kind::kString || kind_ == Kind::kInt || kind_ == Kind::kDouble;
  }
  // Makes `kind` the node's kind, with that kind's storage empty (the old one destroyed).
  void reset(Kind kind);
  void destroy();
  void take(Node&& other);  // `this` holds no storage

  Kind kind_ = Kind::kNull;
  SourceLoc loc_;
  union {
    bool bool_;
    std::int64_t int_ = 0;
    double double_;
  };
  union Storage {
    Storage() {}
    ~Storage() {}
    std::string text;
    std::vector<Node> items;
    std::vector<Member> members;
  } s_;
};

struct Node::Member {
  std::string key;
  SourceLoc key_loc;
  Node value;
};

// Defined after Member is complete: clang instantiates std::vector<Member>'s members at the point
// of an inline definition inside the class.
inline const std::vector<Node>& Node::items() const {
  static const std::vector<Node> kNone;
  return kind_ == Kind::kArray ? s_.items : kNone;
}
inline const std::vector<Node::Member>& Node::members() const {
  static const std::vector<Member> kNone;
  return kind_ == Kind::kObject ? s_.members : kNone;
}
inline void Node::push_back(Node n) { items().push_back(std::move(n)); }
inline std::size_t Node::size() const {
  return kind_ == Kind::kArray ? s_.items.size() : kind_ == Kind::kObject ? s_.members.size() : 0;
}

std::string_view kind_name(Node::Kind kind);

}  // namespace phoenix::base
