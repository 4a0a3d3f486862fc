#include <iostream>

#include "base/fs.h"
#include "cli/commands.h"
#include "compile/desired.h"
#include "render/render.h"

namespace phoenix::cli {

int run_render(const GlobalOptions& g, const RenderOptions& o) {
  const LoadedEstate& loaded = keep_until_exit(load_and_validate(g));
  if (loaded.diags.has_errors()) {
    int code = report_invalid(g, loaded);
    if (g.output == OutputFormat::kText) {
      std::cerr << "phoenix: nothing was written to " << o.out_dir << ".\n";
    }
    return code;
  }
  if (g.output == OutputFormat::kText) print_diagnostics(loaded, g);  // warnings
  const compile::Desired& desired =
      keep_until_exit(compile::compile_estate(*loaded.estate, {.resources = false}));
  std::vector<render::Artifact>& artifacts = keep_until_exit(render::render_all(desired));
  // The contents move into the tree; what is reported keeps their sizes.
  std::vector<std::size_t> sizes;
  sizes.reserve(artifacts.size());
  base::FileTree& tree = keep_until_exit(base::FileTree());
  for (render::Artifact& a : artifacts) {
    sizes.push_back(a.content.size());
    tree[a.path] = std::move(a.content);
  }
  bool unchanged = false;
  if (!g.dry_run) {
    auto w = base::write_tree_atomic(o.out_dir, tree);
    if (!w) {
      print_error(g, w.error().describe());
      return kExitInvalid;
    }
    unchanged = *w == base::TreeWrite::kUnchanged;
  }
  if (g.output == OutputFormat::kJson) {
    nlohmann::json files = nlohmann::json::array();
    for (std::size_t i = 0; i < artifacts.size(); ++i) {
      const render::Artifact& a = artifacts[i];
      nlohmann::json f = {{"path", a.path}, {"bytes", sizes[i]}};
      if (!a.target.empty()) {
        f["target"] = a.target;
        f["guest"] = a.guest ? nlohmann::json(*a.guest) : nlohmann::json("host");
      }
      files.push_back(std::move(f));
    }
    print_json({{"ok", true},
                {"out", o.out_dir},
                {"dry_run", g.dry_run},
                {"changed", !g.dry_run && !unchanged},
                {"files", files}});
  } else {
    for (const render::Artifact& a : artifacts) {
      std::cout << (g.dry_run   ? "would write "
                    : unchanged ? "unchanged "
                                : "wrote ")
                << o.out_dir << "/" << a.path;
      if (!a.target.empty()) {
        std::cout << "  (for " << (a.guest ? "guest " + std::to_string(*a.guest) : "the host")
                  << ": " << a.target << ")";
      }
      std::cout << '\n';
    }
  }
  if (unchanged && g.output == OutputFormat::kText) {
    std::cout << o.out_dir << " already held this output: nothing was written.\n";
  }
  return kExitOk;
}

}  // namespace phoenix::cli
