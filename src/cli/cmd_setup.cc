// phoenix sync guests [ids]: what runs inside each guest, converged (setup/): its feature
// recipes applied, its application script run once per change of its content, then its health
// checks (the recipes' and its own health_checks) polled until they pass. Guests go in
// dependency order; a guest that fails stops only the guests that depend on it.

#include <iostream>
#include <mutex>
#include <set>

#include "base/fs.h"
#include "cli/commands.h"
#include "cli/engines.h"
#include "features/recipe.h"
#include "providers/ca/stepca.h"
#include "render/render.h"
#include "setup/setup.h"

namespace phoenix::cli {
namespace {

using nlohmann::json;

// What one guest gets: its expanded recipes and health checks.
struct GuestWork {
  const model::Guest* guest = nullptr;
  std::vector<features::Plan> plans;
  std::vector<features::HealthCheck> health;
};

std::set<std::string> artifacts_needed(const std::vector<GuestWork>& work) {
  std::set<std::string> out;
  for (const GuestWork& w : work) {
    for (const features::Plan& p : w.plans) {
      for (const features::Step& s : p.steps) {
        const features::FileStep* f = std::get_if<features::FileStep>(&s);
        if (const auto* svc = std::get_if<features::ServiceStep>(&s); svc && svc->unit) {
          f = &*svc->unit;
        }
        if (f && f->content.kind == features::FileContent::Kind::kArtifact) {
          out.insert(f->content.text);
        }
      }
    }
  }
  return out;
}

// The artifacts the recipes name, as far as Phoenix can make them: the rendered files, the
// step-ca password from its file, the internal root from step-ca. What cannot be made is left
// out with the reason, which a recipe that needs it fails with.
setup::Artifacts make_artifacts(const model::Estate& e, const compile::Desired& d,
                                const std::set<std::string>& needed) {
  setup::Artifacts out;
  auto& a = out.files;
  auto& problems = out.unavailable;
  if (d.traefik) {
    a[compile::Paths::kTraefikStatic] = render::render_traefik_static(d);
    a[compile::Paths::kTraefikDynamic] = render::render_traefik_dynamic(d);
  }
  for (const compile::VllmService& v : d.vllm)
    a[compile::Paths::kVllmUnit] = render::render_vllm_unit(v);
  const model::StepCa& sc = e.platform.step_ca;
  auto resolve = [&](const std::string& path) {
    return path.starts_with('/') ? path : e.paths.config_dir + "/" + path;
  };
  if (needed.contains("step_ca_password")) {
    if (!sc.provisioner_password_file.present) {
      problems["step_ca_password"] = "step_ca.provisioner_password_file is not set";
    } else if (auto pw = base::read_file(resolve(sc.provisioner_password_file.value)); !pw) {
      problems["step_ca_password"] = pw.error().message();
    } else {
      a["step_ca_password"] = *pw;
    }
  }
  if (needed.contains("root_ca")) {
    if (!sc.url.present || !sc.fingerprint.present) {
      problems["root_ca"] = "step_ca.url and step_ca.fingerprint are needed to fetch it";
    } else {
      auto ca = ca::make_step_ca({.url = sc.url.value,
                                  .fingerprint = sc.fingerprint.value,
                                  .root_file = "",
                                  .provisioner = sc.provisioner_name.value,
                                  .password_file = sc.provisioner_password_file.present
                                                       ? resolve(sc.provisioner_password_file.value)
                                                       : ""});
      auto root = ca ? (*ca)->root_pem() : base::Result<std::string>(std::unexpected(ca.error()));
      if (root) {
        a["root_ca"] = *root;
      } else {
        problems["root_ca"] = root.error().message();
      }
    }
  }
  return out;
}

json actions_json(const setup::Report& r) {
  json list = json::array();
  for (const setup::Action& a : r.actions) {
    list.push_back(
        {{"feature", a.feature}, {"what", a.what}, {"detail", a.detail}, {"changed", a.changed}});
  }
  return list;
}

}  // namespace

int run_sync_guests(const GlobalOptions& g, const SyncGuestsOptions& o) {
  LoadedEstate loaded = load_and_validate(g);
  if (loaded.diags.has_errors()) return report_invalid(g, loaded);
  model::Estate& e = *loaded.estate;
  std::vector<model::GuestId> ids;
  if (o.ids.empty()) {
    for (const model::Guest& guest : e.guests) {
      if (!guest.is_template.value) ids.push_back(guest.id);
    }
  } else {
    auto parsed = parse_guest_ids(e, o.ids);
    if (!parsed) {
      print_error(g, parsed.error().message());
      return kExitInvalid;
    }
    ids = *parsed;
  }
  compile::Desired desired = compile::compile_estate(e, {.resources = false});

  // Every guest's recipes, expanded: an unknown variable or a malformed step is reported at its
  // place before anything runs.
  features::RecipeBook book = features::builtin_recipes(e.sources, loaded.diags);
  std::vector<GuestWork> work;
  for (const model::Guest* guest : provision::creation_order(e, ids)) {
    if (guest->is_template.value) continue;
    if (std::find(ids.begin(), ids.end(), guest->id) == ids.end()) continue;
    GuestWork w;
    w.guest = guest;
    features::Variables vars = features::guest_variables(e, desired, *guest);
    std::vector<std::string> names;
    for (const auto& f : guest->features) names.push_back(f.value);
    for (const features::Recipe* r : features::order_features(book, names)) {
      features::Plan plan = features::expand(*r, vars, loaded.diags, guest->label());
      w.health.insert(w.health.end(), plan.health.begin(), plan.health.end());
      w.plans.push_back(std::move(plan));
    }
    auto own = features::expand_health(guest->health_checks, vars, guest->label(), loaded.diags);
    w.health.insert(w.health.end(), own.begin(), own.end());
    work.push_back(std::move(w));
  }
  if (loaded.diags.has_errors()) return report_invalid(g, loaded);
  if (g.output == OutputFormat::kText) print_diagnostics(loaded, g);  // warnings

  // Every channel first: a guest Phoenix cannot reach changes nothing.
  GuestChannels channels(e);
  std::map<model::GuestId, guest::GuestChannel*> open;
  for (const GuestWork& w : work) {
    auto ch = channels.get(w.guest->id);
    if (!ch) {
      print_error(g, ch.error().message());
      return ch.error().kind() == base::ErrorKind::kInvalidInput ? kExitInvalid
                                                                 : provider_exit(ch.error());
    }
    open[w.guest->id] = *ch;
  }

  setup::Artifacts artifacts = make_artifacts(e, desired, artifacts_needed(work));
  auto prober = setup::curl_prober();
  setup::HealthOptions health;
  if (auto it = artifacts.files.find("root_ca"); it != artifacts.files.end()) {
    health.ca_pem = it->second;
  }
  if (o.health_scale > 0) health.deadline_scale = o.health_scale;

  std::mutex mu;
  setup::Options options;
  options.dry_run = g.dry_run;
  std::map<model::GuestId, std::vector<setup::Report>> reports;
  std::vector<const model::Guest*> order;
  for (const GuestWork& w : work) order.push_back(w.guest);
  auto results =
      provision::run_in_order(order, 1, [&](const model::Guest& guest) -> base::Result<void> {
        const GuestWork& w = *std::find_if(
            work.begin(), work.end(), [&](const GuestWork& x) { return x.guest->id == guest.id; });
        guest::GuestChannel& ch = *open.at(guest.id);
        setup::Options opt = options;
        opt.progress = [&](const std::string& line) {
          if (g.output != OutputFormat::kText) return;
          std::lock_guard lock(mu);
          std::cerr << "  " << guest.label() << ": " << line << '\n';
        };
        auto keep = [&](setup::Report r) -> base::Result<void> {
          std::optional<base::Error> err = r.error;
          reports[guest.id].push_back(std::move(r));
          if (err) return std::unexpected(*err);
          return {};
        };
        PHX_TRY(keep(setup::apply_features(ch, w.plans, artifacts, opt)));
        if (guest.application_script && guest.application_script->exists) {
          auto content = base::read_file(guest.application_script->resolved);
          if (!content) return std::unexpected(content.error());
          std::string name = guest.application_script->name.value;
          name = name.substr(name.rfind('/') + 1);
          PHX_TRY(keep(setup::run_application_script(ch, name, *content, opt)));
        }
        if (o.no_health || g.dry_run || w.health.empty()) return {};
        return keep(setup::wait_healthy(ch, w.health, *prober, health));
      });

  bool ok = true, changed = false;
  json list = json::array();
  for (const GuestWork& w : work) {
    const base::Result<void>& r = results.at(w.guest->id);
    ok &= r.has_value();
    json acts = json::array();
    for (const setup::Report& rep : reports[w.guest->id]) {
      changed |= rep.changed;
      for (auto& a : actions_json(rep)) acts.push_back(a);
    }
    std::string error = r ? "" : r.error().message();
    if (g.output == OutputFormat::kJson) {
      list.push_back({{"guest", w.guest->id},
                      {"name", w.guest->label()},
                      {"ok", r.has_value()},
                      {"actions", acts},
                      {"error", r ? json(nullptr) : json(error)}});
      continue;
    }
    std::cout << w.guest->label() << " (" << open.at(w.guest->id)->describe() << "):\n";
    int shown = 0;
    for (const setup::Report& rep : reports[w.guest->id]) {
      for (const setup::Action& a : rep.actions) {
        if (!a.changed && a.feature != "health" && g.verbose == 0) continue;
        std::cout << "  " << a.feature << ": " << a.what << " " << a.detail << '\n';
        ++shown;
      }
    }
    if (r && shown == 0) std::cout << "  converged, nothing to do\n";
    if (!r) std::cout << "  failed: " << error << '\n';
  }
  if (g.output == OutputFormat::kJson) {
    print_json({{"command", "sync guests"},
                {"dry_run", g.dry_run},
                {"guests", list},
                {"changed", changed},
                {"ok", ok}});
  } else {
    std::cout << (!ok         ? "some guests failed\n"
                  : !changed  ? "no changes\n"
                  : g.dry_run ? "changes would be made\n"
                              : "converged\n");
  }
  return ok ? kExitOk : kExitPartial;
}

}  // namespace phoenix::cli
