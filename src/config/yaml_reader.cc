#include "config/yaml_reader.h"

#include <yaml.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/scalar.h"

namespace phoenix::config {
namespace {

using base::ErrorKind;
using base::Node;
using base::SourceLoc;

constexpr std::size_t kMaxDepth = 128;
// Far more values than any real file holds, yet few enough that alias expansion of hostile
// input ends in well under a second.
constexpr std::size_t kMaxNodes = 100'000;

// Builds Nodes from libyaml's event stream. libyaml parses with explicit stacks, not recursion,
// so nesting depth cannot exhaust ours; the depth bound protects the recursive code downstream.
class Builder {
 public:
  explicit Builder(std::uint32_t file) : file_(file) {}

  base::Result<Node> run(std::string_view text) {
    std::unique_ptr<yaml_parser_t, void (*)(yaml_parser_t*)> parser(new yaml_parser_t,
                                                                    [](yaml_parser_t* p) {
                                                                      yaml_parser_delete(p);
                                                                      delete p;
                                                                    });
    if (!yaml_parser_initialize(parser.get())) {
      return base::fail(ErrorKind::kInternal, "cannot initialise the YAML parser");
    }
    yaml_parser_set_input_string(parser.get(), reinterpret_cast<const unsigned char*>(text.data()),
                                 text.size());
    std::size_t documents = 0;
    while (true) {
      yaml_event_t event;
      if (!yaml_parser_parse(parser.get(), &event)) return syntax_error(*parser);
      std::unique_ptr<yaml_event_t, void (*)(yaml_event_t*)> guard(&event, yaml_event_delete);
      SourceLoc loc = at(event.start_mark);
      switch (event.type) {
        case YAML_STREAM_END_EVENT:
          if (!root_) return Node::null(SourceLoc{file_, 1, 1});  // empty file
          return std::move(*root_);
        case YAML_DOCUMENT_START_EVENT:
          if (++documents > 1) {
            return base::fail(ErrorKind::kInvalidInput,
                              "the file holds more than one YAML document; expected one", loc);
          }
          break;
        case YAML_SCALAR_EVENT: {
          std::string value(reinterpret_cast<const char*>(event.data.scalar.value),
                            event.data.scalar.length);
          bool plain = event.data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
          std::string tag =
              event.data.scalar.tag ? reinterpret_cast<const char*>(event.data.scalar.tag) : "";
          bool as_string = !plain || tag == YAML_STR_TAG || tag == "!";
          Node n = as_string ? Node::string(std::move(value), loc)
                             : base::resolve_plain_scalar(value, loc);
          PHX_TRY(add(std::move(n), anchor(event.data.scalar.anchor), plain));
          break;
        }
        case YAML_ALIAS_EVENT: {
          std::string name = anchor(event.data.alias.anchor);
          auto it = anchors_.find(name);
          if (it == anchors_.end()) {
            return base::fail(ErrorKind::kInvalidInput, "unknown alias *" + name, loc);
          }
          count_ += it->second.second;
          PHX_TRY(check_count(loc));
          Node copy = it->second.first;
          PHX_TRY(add(std::move(copy), "", false));
          break;
        }
        case YAML_SEQUENCE_START_EVENT:
          PHX_TRY(open(Node::array(loc), anchor(event.data.sequence_start.anchor)));
          break;
        case YAML_MAPPING_START_EVENT:
          PHX_TRY(open(Node::object(loc), anchor(event.data.mapping_start.anchor)));
          break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
          PHX_TRY(close());
          break;
        default:
          break;
      }
    }
  }

 private:
  struct Frame {
    Node node;
    std::string anchor;
    std::size_t count_at_open = 0;
    // Mappings: the pending key, then merge sources (<<) applied when the mapping closes.
    std::optional<Node> key;
    bool key_is_merge = false;
    std::vector<Node> merges;
  };

  SourceLoc at(const yaml_mark_t& m) const {
    return SourceLoc{file_, static_cast<std::uint32_t>(m.line + 1),
                     static_cast<std::uint32_t>(m.column + 1)};
  }

  static std::string anchor(const yaml_char_t* a) {
    return a ? reinterpret_cast<const char*>(a) : "";
  }

  base::Result<Node> syntax_error(const yaml_parser_t& p) const {
    std::string msg = "YAML syntax error: ";
    msg += p.problem ? p.problem : "malformed document";
    SourceLoc loc = at(p.problem_mark);
    if (p.context) {
      msg += std::string(" (") + p.context + " that starts at line " +
             std::to_string(p.context_mark.line + 1) + ", column " +
             std::to_string(p.context_mark.column + 1) + ")";
    }
    return base::fail(ErrorKind::kInvalidInput, std::move(msg), loc);
  }

  base::Result<void> check_count(SourceLoc loc) const {
    if (count_ > kMaxNodes) {
      return base::fail(ErrorKind::kInvalidInput,
                        "document expands to more than " + std::to_string(kMaxNodes) +
                            " values (alias expansion?)",
                        loc);
    }
    return {};
  }

  base::Result<void> open(Node n, std::string anchor_name) {
    if (stack_.size() >= kMaxDepth) {
      return base::fail(ErrorKind::kInvalidInput,
                        "values are nested more than " + std::to_string(kMaxDepth) + " levels deep",
                        n.loc());
    }
    ++count_;
    PHX_TRY(check_count(n.loc()));
    Frame f;
    f.node = std::move(n);
    f.anchor = std::move(anchor_name);
    f.count_at_open = count_;
    stack_.push_back(std::move(f));
    return {};
  }

  base::Result<void> close() {
    Frame f = std::move(stack_.back());
    stack_.pop_back();
    if (f.node.is_object()) PHX_TRY(apply_merges(f));
    std::size_t size = count_ - f.count_at_open + 1;
    if (!f.anchor.empty()) anchors_[f.anchor] = {f.node, size};
    return place(std::move(f.node));
  }

  // A scalar or an alias copy: counted, remembered under its anchor, placed in its parent.
  base::Result<void> add(Node n, std::string anchor_name, bool plain) {
    ++count_;
    PHX_TRY(check_count(n.loc()));
    if (!anchor_name.empty()) anchors_[anchor_name] = {n, 1};
    // A plain `<<` in key position is a merge key.
    if (plain && n.is_string() && n.text() == "<<" && !stack_.empty() &&
        stack_.back().node.is_object() && !stack_.back().key) {
      stack_.back().key = std::move(n);
      stack_.back().key_is_merge = true;
      return {};
    }
    return place(std::move(n));
  }

  base::Result<void> place(Node n) {
    if (stack_.empty()) {
      root_ = std::move(n);
      return {};
    }
    Frame& parent = stack_.back();
    if (parent.node.is_array()) {
      parent.node.push_back(std::move(n));
      return {};
    }
    if (!parent.key) {
      if (!n.is_scalar()) {
        return base::fail(ErrorKind::kInvalidInput, "mapping keys must be plain scalars", n.loc());
      }
      parent.key = std::move(n);
      return {};
    }
    Node key = std::move(*parent.key);
    parent.key.reset();
    if (parent.key_is_merge) {
      parent.key_is_merge = false;
      parent.merges.push_back(std::move(n));
      return {};
    }
    if (parent.node.find(key.text()) != nullptr) {
      return base::fail(ErrorKind::kInvalidInput, "duplicate key \"" + key.text() + "\"",
                        key.loc());
    }
    parent.node.members().push_back(Node::Member{key.text(), key.loc(), std::move(n)});
    return {};
  }

  // Merge keys: explicit keys win, then earlier merged maps win over later ones.
  static base::Result<void> apply_merges(Frame& f) {
    for (const Node& m : f.merges) {
      std::vector<const Node*> sources;
      if (m.is_object()) {
        sources.push_back(&m);
      } else if (m.is_array()) {
        for (const Node& item : m.items()) sources.push_back(&item);
      } else {
        return base::fail(ErrorKind::kInvalidInput, "a merge key (<<) needs a mapping", m.loc());
      }
      for (const Node* src : sources) {
        if (!src->is_object()) {
          return base::fail(ErrorKind::kInvalidInput, "a merge key (<<) needs a mapping",
                            src->loc());
        }
        for (const Node::Member& member : src->members()) {
          if (f.node.find(member.key) == nullptr) {
            f.node.members().push_back(member);
          }
        }
      }
    }
    return {};
  }

  std::uint32_t file_;
  std::vector<Frame> stack_;
  std::optional<Node> root_;
  std::map<std::string, std::pair<Node, std::size_t>> anchors_;  // node and its value count
  std::size_t count_ = 0;
};

}  // namespace

base::Result<Node> parse_yaml(std::string_view text, std::uint32_t file) {
  return Builder(file).run(text);
}

}  // namespace phoenix::config
