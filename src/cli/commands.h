#pragma once

#include <vector>

#include "cli/context.h"

namespace phoenix::cli {

int run_validate(const GlobalOptions& g);

struct RenderOptions {
  std::string out_dir;
};
int run_render(const GlobalOptions& g, const RenderOptions& o);

struct PlanOptions {
  std::vector<std::string> ids;
  std::optional<std::string> observed_file;
};
int run_plan(const GlobalOptions& g, const PlanOptions& o);
int run_snapshot(const GlobalOptions& g);

struct GraphOptions {
  std::string format = "dot";  // dot | mermaid
  bool guests_only = false;
};
int run_graph(const GlobalOptions& g, const GraphOptions& o);

}  // namespace phoenix::cli
