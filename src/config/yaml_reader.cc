#include "config/yaml_reader.h"

#include "base/scalar.h"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <charconv>
#include <cmath>
#include <limits>
#include <optional>
#include <sstream>

namespace phoenix::config {
namespace {

using base::ErrorKind;
using base::Node;
using base::SourceLoc;

constexpr int kMaxDepth = 128;
// Far more values than any real file holds, yet few enough to convert in well under a second.
constexpr std::size_t kMaxNodes = 100'000;
constexpr std::size_t kMaxDocuments = 100;

// yaml-cpp's parser recurses per nesting level; refuse input nested deeper than any real file
// before handing it over, so that hostile input cannot overflow the stack.
std::optional<SourceLoc> find_excessive_flow_nesting(std::string_view text, std::uint32_t file) {
  int depth = 0;
  std::uint32_t line = 1, col = 1;
  char quote = 0;
  bool comment = false;
  for (char c : text) {
    if (c == '\n') {
      ++line;
      col = 1;
      comment = false;
      continue;
    }
    if (!comment) {
      if (quote) {
        if (c == quote) quote = 0;
      } else if (c == '"' || c == '\'') {
        quote = c;
      } else if (c == '#') {
        comment = true;
      } else if (c == '[' || c == '{') {
        if (++depth > kMaxDepth) return SourceLoc{file, line, col};
      } else if ((c == ']' || c == '}') && depth > 0) {
        --depth;
      }
    }
    ++col;
  }
  return std::nullopt;
}

// Only counts documents. yaml-cpp 0.7 reports an endless stream of empty documents for some
// invalid input (e.g. `{a},b`), so YAML::LoadAll never returns; counting with a bound does.
class DocumentCounter final : public YAML::EventHandler {
 public:
  void OnDocumentStart(const YAML::Mark&) override {}
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
};

class Converter {
 public:
  explicit Converter(std::uint32_t file) : file_(file) {}

  base::Result<Node> convert(const YAML::Node& y, int depth) {
    SourceLoc loc = loc_of(y);
    if (++count_ > kMaxNodes) {
      return base::fail(ErrorKind::kInvalidInput,
                        "document expands to more than " + std::to_string(kMaxNodes) +
                            " values (alias expansion?)",
                        loc);
    }
    if (depth > kMaxDepth) {
      return base::fail(ErrorKind::kInvalidInput,
                        "values are nested more than " + std::to_string(kMaxDepth) + " levels deep",
                        loc);
    }
    switch (y.Type()) {
      case YAML::NodeType::Undefined:
      case YAML::NodeType::Null:
        return Node::null(loc);
      case YAML::NodeType::Scalar:
        // yaml-cpp tags non-plain (quoted or block) scalars "!"; those are always strings.
        if (y.Tag() == "!" || y.Tag() == "tag:yaml.org,2002:str" || y.Tag() == "!!str") {
          return Node::string(y.Scalar(), loc);
        }
        return base::resolve_plain_scalar(y.Scalar(), loc);
      case YAML::NodeType::Sequence: {
        Node arr = Node::array(loc);
        for (const YAML::Node& item : y) arr.push_back(PHX_TRY(convert(item, depth + 1)));
        return arr;
      }
      case YAML::NodeType::Map: {
        Node obj = Node::object(loc);
        std::vector<Node> merges;
        for (const auto& kv : y) {
          if (!kv.first.IsScalar()) {
            return base::fail(ErrorKind::kInvalidInput, "mapping keys must be plain scalars",
                              loc_of(kv.first));
          }
          const std::string& key = kv.first.Scalar();
          if (key == "<<" && kv.first.Tag() != "!") {
            merges.push_back(PHX_TRY(convert(kv.second, depth + 1)));
            continue;
          }
          if (obj.find(key) != nullptr) {
            return base::fail(ErrorKind::kInvalidInput, "duplicate key \"" + key + "\"",
                              loc_of(kv.first));
          }
          obj.set(key, PHX_TRY(convert(kv.second, depth + 1)), loc_of(kv.first));
        }
        // Merge keys: explicit keys win, then earlier merged maps win over later ones.
        for (const Node& m : merges) {
          std::vector<const Node*> sources;
          if (m.is_object()) {
            sources.push_back(&m);
          } else if (m.is_array()) {
            for (const Node& item : m.items()) sources.push_back(&item);
          } else {
            return base::fail(ErrorKind::kInvalidInput, "a merge key (<<) needs a mapping",
                              m.loc());
          }
          for (const Node* src : sources) {
            if (!src->is_object()) {
              return base::fail(ErrorKind::kInvalidInput, "a merge key (<<) needs a mapping",
                                src->loc());
            }
            for (const Node::Member& member : src->members()) {
              if (obj.find(member.key) == nullptr) {
                obj.set(member.key, member.value, member.key_loc);
              }
            }
          }
        }
        return obj;
      }
    }
    return Node::null(loc);
  }

 private:
  SourceLoc loc_of(const YAML::Node& y) const {
    YAML::Mark m = y.Mark();
    if (m.is_null()) return SourceLoc{file_, 0, 0};
    return SourceLoc{file_, static_cast<std::uint32_t>(m.line + 1),
                     static_cast<std::uint32_t>(m.column + 1)};
  }

  std::uint32_t file_;
  std::size_t count_ = 0;
};

}  // namespace

base::Result<Node> parse_yaml(std::string_view text, std::uint32_t file) {
  if (auto deep = find_excessive_flow_nesting(text, file)) {
    return base::fail(ErrorKind::kInvalidInput,
                      "values are nested more than " + std::to_string(kMaxDepth) + " levels deep",
                      *deep);
  }
  YAML::Node root;
  try {
    std::istringstream in{std::string(text)};
    YAML::Parser parser(in);
    DocumentCounter counter;
    std::size_t docs = 0;
    while (docs <= kMaxDocuments && parser.HandleNextDocument(counter)) ++docs;
    if (docs > 1) {
      return base::fail(ErrorKind::kInvalidInput,
                        "the file holds " +
                            (docs > kMaxDocuments ? "more than " + std::to_string(kMaxDocuments)
                                                  : std::to_string(docs)) +
                            " YAML documents; expected one",
                        SourceLoc{file, 0, 0});
    }
    if (docs == 1) root = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    SourceLoc loc{file, 0, 0};
    if (!e.mark.is_null()) {
      loc = SourceLoc{file, static_cast<std::uint32_t>(e.mark.line + 1),
                      static_cast<std::uint32_t>(e.mark.column + 1)};
    }
    return base::fail(ErrorKind::kInvalidInput, "YAML syntax error: " + e.msg, loc);
  } catch (const std::exception& e) {
    return base::fail(ErrorKind::kInvalidInput, std::string("YAML syntax error: ") + e.what(),
                      SourceLoc{file, 0, 0});
  }
  try {
    Converter conv(file);
    return conv.convert(root, 0);
  } catch (const std::exception& e) {
    return base::fail(ErrorKind::kInvalidInput, std::string("YAML error: ") + e.what(),
                      SourceLoc{file, 0, 0});
  }
}

}  // namespace phoenix::config
