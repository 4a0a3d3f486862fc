#pragma once

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"

namespace phoenix::pvesim {

// Request parameters as Proxmox sees them after decoding the query string or body: every value is
// text ("1", "eth0", "10.0.0.5/24"). JSON bodies are flattened to the same form.
using Params = std::map<std::string, std::string>;

// The values of an array parameter (given more than once) within one Params value.
inline constexpr char kArraySeparator = '\0';
std::vector<std::string> array_values(const std::string& value);

// Parameter name -> Proxmox's message for it, as sent in the "errors" object of a 400.
using ParamErrors = std::map<std::string, std::string>;

// One method of one API path, e.g. POST /nodes/{node}/lxc.
struct MethodSchema {
  std::string method;                    // "GET", "POST", ...
  std::string path_template;             // "/nodes/{node}/lxc"
  const nlohmann::json* info = nullptr;  // the schema's info.<METHOD> object
  bool returns_string() const;           // the method returns a UPID (or another string)
};

struct Match {
  const MethodSchema* method = nullptr;
  Params path_params;  // {node} -> "pve", ...
};

// The official API tree (pve-apidata.json: nodes with path, info, children), indexed for matching
// concrete request paths.
class ApiSchema {
 public:
  static base::Result<ApiSchema> load(const std::string& file);
  static base::Result<ApiSchema> parse(std::string_view text);

  // Finds the schema of `method` on the concrete `path` ("/nodes/pve/lxc/101/config"). A literal
  // path segment wins over a template segment at the same position, as in Proxmox's router.
  // Returns kNotFound when no path matches, kInvalidInput when the path exists without `method`.
  base::Result<Match> match(std::string_view method, std::string_view path) const;

  std::size_t path_count() const { return nodes_ ? nodes_->size() : 0; }

 private:
  struct Node {
    std::string path;
    std::vector<std::string> segments;
    std::map<std::string, MethodSchema> methods;
  };
  std::shared_ptr<nlohmann::json> tree_;
  std::shared_ptr<std::vector<Node>> nodes_;
};

// Validates `params` (path parameters already merged in) against the method's parameter schema,
// the way PVE::JSONSchema::validate does; returns every problem, keyed by parameter name.
ParamErrors validate_params(const MethodSchema& method, const Params& params);

// Checks one value against one property schema; returns Proxmox's message or "" when valid.
// `path` is the parameter name used to prefix errors of property-string keys ("net0.ip").
std::string check_value(const nlohmann::json& schema, const std::string& value,
                        const std::string& path);

// Parses a property string ("name=eth0,bridge=vmbr0") against an inline format; on success
// returns the key/value pairs (the default key resolved). Errors are Proxmox's messages.
base::Result<Params> parse_property_string(const nlohmann::json& format, std::string_view value,
                                           const std::string& path);

// Checks `value` against the named format ("mac-addr", "pve-vmid", ...); returns "" when valid
// or the text Proxmox dies with ("value does not look like a valid unicast MAC address\n").
// Unknown format names are accepted.
std::string check_named_format(std::string_view format, std::string_view value);

}  // namespace phoenix::pvesim
