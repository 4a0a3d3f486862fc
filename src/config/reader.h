#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "base/diagnostics.h"
#include "base/node.h"
#include "model/estate.h"

namespace phoenix::config {

using model::Val;

// Reads the members of one JSON object into typed fields. Every key the caller asks about
// becomes "known"; finish() then warns about each remaining key, suggesting the closest known
// one. Type and range errors are reported where the value was written, and leave the field at
// its default so that loading goes on and every problem is reported in one run.
class ObjectReader {
 public:
  // `what` names the object in messages, e.g. "LXC 101" or "network_config".
  ObjectReader(const base::Node& object, base::Diagnostics& diags, std::string what);
  ~ObjectReader();
  ObjectReader(const ObjectReader&) = delete;
  ObjectReader& operator=(const ObjectReader&) = delete;

  void str(std::string_view key, Val<std::string>& out);
  void integer(std::string_view key, Val<std::int64_t>& out, std::int64_t min, std::int64_t max);
  void number(std::string_view key, Val<double>& out, double min, double max);
  void boolean(std::string_view key, Val<bool>& out);
  // An array of strings; a single string is accepted as a one-element list when
  // `allow_single` (the seeds write `nameservers` both ways).
  void str_list(std::string_view key, std::vector<Val<std::string>>& out,
                bool allow_single = false);
  // A nested object; `fn` is called only when the key is present and is an object.
  void object(std::string_view key, const std::function<void(ObjectReader&)>& fn);
  // An array of objects; `fn` is called for each element that is an object.
  void object_list(std::string_view key, const std::function<void(ObjectReader&)>& fn);
  // Any value, kept as written; returns nullptr when absent.
  const base::Node* raw(std::string_view key);
  // A key Phoenix knows from older installations but does not use: reported, never silent.
  void unused(std::string_view key, std::string_view why);

  // Marks `key` known without reading it (the caller handles it).
  void known(std::string_view key);

  const base::Node& node() const { return object_; }
  base::Diagnostics& diags() { return diags_; }
  const std::string& what() const { return what_; }

  void finish();

 private:
  const base::Node* take(std::string_view key);
  void type_error(const base::Node& value, std::string_view key, std::string_view expected);

  const base::Node& object_;
  base::Diagnostics& diags_;
  std::string what_;
  std::vector<std::string_view> known_;  // every key asked for: the suggestions for unknown ones
  std::vector<bool> used_;               // by member: asked for, so not unknown
  bool finished_ = false;
};

}  // namespace phoenix::config
