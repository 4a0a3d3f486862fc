#include <cctype>
#include <iostream>
#include <map>
#include <set>

#include "cli/commands.h"
#include "compile/desired.h"

namespace phoenix::cli {
namespace {

std::string node_id(const std::string& id) {
  std::string out;
  for (char c : id) out += (std::isalnum(static_cast<unsigned char>(c)) != 0) ? c : '_';
  return out;
}

std::string quote_dot(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

std::string label_of(const compile::Resource& r) {
  if (r.kind == "lxc" || r.kind == "vm") {
    std::string kind = r.kind == "lxc" ? "LXC " : "VM ";
    return kind + std::to_string(*r.owner) + (r.name.empty() ? "" : "\\n" + r.name);
  }
  return r.id;
}

}  // namespace

int run_graph(const GlobalOptions& g, const GraphOptions& o) {
  LoadedEstate loaded = load_and_validate(g);
  if (loaded.diags.has_errors()) return report_invalid(g, loaded);
  compile::Desired desired = compile::compile_estate(*loaded.estate);
  std::vector<const compile::Resource*> nodes;
  for (const compile::Resource& r : desired.resources) {
    if (!o.guests_only || r.kind == "lxc" || r.kind == "vm" || r.kind == "stack") {
      nodes.push_back(&r);
    }
  }
  std::set<std::string> shown;
  for (const auto* r : nodes) shown.insert(r->id);
  if (g.output == OutputFormat::kJson) {
    nlohmann::json jnodes = nlohmann::json::array(), edges = nlohmann::json::array();
    for (const auto* r : nodes) {
      jnodes.push_back({{"id", r->id},
                        {"kind", r->kind},
                        {"name", r->name},
                        {"stage", static_cast<int>(r->stage)}});
      for (const std::string& d : r->deps) {
        if (shown.count(d)) edges.push_back({{"from", r->id}, {"to", d}});
      }
    }
    print_json({{"nodes", jnodes}, {"edges", edges}});
    return kExitOk;
  }
  std::string out;
  if (o.format == "mermaid") {
    out += "graph LR\n";
    for (const auto* r : nodes) {
      std::string label = label_of(*r);
      for (std::size_t p = label.find("\\n"); p != std::string::npos; p = label.find("\\n")) {
        label.replace(p, 2, "<br/>");
      }
      out += "  " + node_id(r->id) + "[\"" + label + "\"]\n";
    }
    for (const auto* r : nodes) {
      for (const std::string& d : r->deps) {
        if (shown.count(d)) out += "  " + node_id(r->id) + " --> " + node_id(d) + "\n";
      }
    }
  } else {
    out += "digraph phoenix {\n  rankdir=LR;\n  node [shape=box, fontname=\"Helvetica\"];\n";
    std::map<int, std::vector<const compile::Resource*>> by_stage;
    for (const auto* r : nodes) by_stage[static_cast<int>(r->stage)].push_back(r);
    for (const auto& [stage, rs] : by_stage) {
      out += "  subgraph cluster_stage" + std::to_string(stage) + " {\n    label=" +
             quote_dot("stage " + std::to_string(stage) + ": " +
                       std::string(compile::to_string(static_cast<compile::Stage>(stage)))) +
             ";\n";
      for (const auto* r : rs) {
        out += "    " + quote_dot(r->id) + " [label=" + quote_dot(label_of(*r)) + "];\n";
      }
      out += "  }\n";
    }
    for (const auto* r : nodes) {
      for (const std::string& d : r->deps) {
        if (shown.count(d)) out += "  " + quote_dot(r->id) + " -> " + quote_dot(d) + ";\n";
      }
    }
    out += "}\n";
  }
  std::cout << out;
  return kExitOk;
}

}  // namespace phoenix::cli
