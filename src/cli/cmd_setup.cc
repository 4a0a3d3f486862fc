// phoenix sync guests [ids]: what runs inside each guest, converged (setup/): its feature
// recipes applied, its application script run once per change of its content, then its health
// checks (the recipes' and its own health_checks) polled until they pass. Guests go in
// dependency order; a guest that fails stops only the guests that depend on it.

#include <ctime>
#include <iostream>
#include <mutex>
#include <set>

#include "base/fs.h"
#include "cli/commands.h"
#include "cli/engines.h"
#include "cli/guest_setup.h"
#include "deliver/targets.h"
#include "features/recipe.h"
#include "providers/ca/stepca.h"
#include "render/render.h"
#include "setup/setup.h"

namespace phoenix::cli {
namespace {

using nlohmann::json;

std::set<std::string> artifacts_needed(const std::map<model::GuestId, GuestSetup::Work>& work) {
  std::set<std::string> out;
  for (const auto& [id, w] : work) {
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

// The artifacts the recipes name, as far as Phoenix can make them: the rendered files and the
// step-ca password from its file. What cannot be made is left out with the reason, which a
// recipe that needs it fails with.
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
  // The internal root is fetched when a guest first needs it (GuestSetup::artifacts_now): the
  // CA may be one of the guests being set up.
  return out;
}

json report_actions_json(const setup::Report& r) {
  json list = json::array();
  for (const setup::Action& a : r.actions) {
    list.push_back(
        {{"feature", a.feature}, {"what", a.what}, {"detail", a.detail}, {"changed", a.changed}});
  }
  return list;
}

}  // namespace

// ---- GuestSetup ----------------------------------------------------------------------------

std::variant<std::unique_ptr<GuestSetup>, int> GuestSetup::prepare(
    const GlobalOptions& g, LoadedEstate& loaded, const std::vector<model::GuestId>& ids,
    const SetupSettings& settings) {
  auto s = std::unique_ptr<GuestSetup>(new GuestSetup(g, *loaded.estate, settings));
  model::Estate& e = *loaded.estate;
  compile::Desired desired = compile::compile_estate(e, {.resources = false});
  // Every guest's recipes, expanded: an unknown variable or a malformed step is reported at its
  // place before anything runs.
  features::RecipeBook book = features::builtin_recipes(e.sources, loaded.diags);
  for (model::GuestId id : ids) {
    const model::Guest* guest = e.guest(id);
    if (guest->is_template.value) continue;
    Work w;
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
    s->work_[id] = std::move(w);
  }
  if (loaded.diags.has_errors()) return report_invalid(g, loaded);

  // Every channel first: a guest Phoenix cannot reach changes nothing.
  for (const auto& [id, w] : s->work_) {
    auto ch = s->channels_.get(id);
    if (!ch) {
      print_error(g, ch.error().message());
      return ch.error().kind() == base::ErrorKind::kInvalidInput ? kExitInvalid
                                                                 : provider_exit(ch.error());
    }
    s->open_[id] = *ch;
  }
  s->artifacts_ = make_artifacts(e, desired, artifacts_needed(s->work_));
  const model::Guest* ca_guest = step_ca_guest(e);
  if (e.platform.step_ca.url.present && e.platform.step_ca.provisioner_password_file.present) {
    for (auto& c : deliver::certificate_deliveries(e, desired)) {
      if (!s->work_.contains(c.guest) || (ca_guest && c.guest == ca_guest->id)) continue;
      c.delivery.reload.clear();  // the recipes start the services, after the files are there
      s->certs_[c.guest].push_back(std::move(c.delivery));
    }
  }
  if (ca_guest) {
    if (auto ch = s->channels_.get(ca_guest->id)) s->ca_channel_ = *ch;
  }
  if (settings.health_scale > 0) s->health_.deadline_scale = settings.health_scale;
  s->prober_ = setup::curl_prober();
  return s;
}

base::Result<void> GuestSetup::run(const model::Guest& guest) {
  auto it = work_.find(guest.id);
  if (it == work_.end()) return {};
  const Work& w = it->second;
  guest::GuestChannel& ch = *open_.at(guest.id);
  setup::Options opt;
  opt.dry_run = g_.dry_run;
  opt.progress = [this, &guest](const std::string& line) {
    if (g_.output != OutputFormat::kText) return;
    std::lock_guard lock(mu_);
    std::cerr << "  " << guest.label() << ": " << line << '\n';
  };
  auto keep = [&](setup::Report r) -> base::Result<void> {
    std::optional<base::Error> err = r.error;
    {
      std::lock_guard lock(mu_);
      reports_[guest.id].push_back(std::move(r));
    }
    if (err) return std::unexpected(*err);
    return {};
  };
  // The internal root, when this guest's recipes or HTTPS checks need it.
  bool need_root = artifacts_needed({{guest.id, w}}).contains("root_ca");
  for (const features::HealthCheck& h : w.health) {
    need_root |= h.kind == features::HealthCheck::Kind::kHttps;
  }
  setup::Artifacts artifacts = artifacts_now(need_root).first;
  if (auto c = certs_.find(guest.id); c != certs_.end()) {
    PHX_TRY(keep(deliver_certificates(ch, c->second, opt)));
  }
  PHX_TRY(keep(setup::apply_features(ch, w.plans, artifacts, opt)));
  if (guest.application_script && guest.application_script->exists) {
    auto content = base::read_file(guest.application_script->resolved);
    if (!content) return std::unexpected(content.error());
    std::string name = guest.application_script->name.value;
    name = name.substr(name.rfind('/') + 1);
    PHX_TRY(keep(setup::run_application_script(ch, name, *content, opt)));
  }
  if (settings_.no_health || g_.dry_run || w.health.empty()) return {};
  // Again: the CA's own guest has its root only now.
  setup::HealthOptions health = artifacts_now(need_root).second;
  return keep(setup::wait_healthy(ch, w.health, *prober_, health));
}

base::Result<ca::CertificateAuthority*> GuestSetup::authority() {
  std::lock_guard lock(mu_);
  if (!authority_) {
    auto options = step_ca_options(estate_, ca_channel_);
    if (!options) return std::unexpected(options.error());
    auto made = ca::make_step_ca(*options);
    if (!made) return std::unexpected(made.error());
    authority_ = std::move(*made);
  }
  return authority_.get();
}

setup::Report GuestSetup::deliver_certificates(guest::GuestChannel& ch,
                                               const std::vector<deliver::CertDelivery>& certs,
                                               const setup::Options& opt) {
  setup::Report out;
  auto ca = authority();
  if (!ca) {
    out.error = std::move(ca).error().with_context("its certificates, before its features");
    return out;
  }
  auto now = static_cast<std::int64_t>(std::time(nullptr));
  for (const deliver::CertDelivery& d : certs) {
    deliver::Report r = deliver::deliver_certificate(ch, **ca, d, now, {.dry_run = opt.dry_run});
    for (const deliver::Step& step : r.steps) {
      bool changed = r.changed && step.what != "keep" && step.what != "unchanged";
      out.actions.push_back({"certificate", step.what, step.detail, changed});
      if (changed && opt.progress) opt.progress("certificate: " + step.what + " " + step.detail);
    }
    out.changed |= r.changed;
    if (r.error) {
      out.error = *r.error;
      return out;
    }
  }
  return out;
}

std::pair<setup::Artifacts, setup::HealthOptions> GuestSetup::artifacts_now(bool need_root) {
  std::lock_guard lock(mu_);
  if (need_root && !artifacts_.files.contains("root_ca")) {
    auto options = step_ca_options(estate_, ca_channel_);
    auto ca = options ? ca::make_step_ca(*options)
                      : base::Result<std::unique_ptr<ca::CertificateAuthority>>(
                            std::unexpected(options.error()));
    auto root = ca ? (*ca)->root_pem() : base::Result<std::string>(std::unexpected(ca.error()));
    if (root) {
      artifacts_.files["root_ca"] = *root;
      artifacts_.unavailable.erase("root_ca");
      health_.ca_pem = *root;
    } else {
      artifacts_.unavailable["root_ca"] = root.error().message();
    }
  }
  return {artifacts_, health_};
}

bool GuestSetup::changed() const {
  for (const auto& [id, list] : reports_) {
    for (const setup::Report& r : list) {
      if (r.changed) return true;
    }
  }
  return false;
}

json GuestSetup::actions_json(model::GuestId id) const {
  json acts = json::array();
  if (auto it = reports_.find(id); it != reports_.end()) {
    for (const setup::Report& rep : it->second) {
      for (auto& a : report_actions_json(rep)) acts.push_back(a);
    }
  }
  return acts;
}

void GuestSetup::print(const model::Guest& guest, const base::Result<void>& result) const {
  std::cout << guest.label() << " (" << open_.at(guest.id)->describe() << "):\n";
  int shown = 0;
  if (auto it = reports_.find(guest.id); it != reports_.end()) {
    for (const setup::Report& rep : it->second) {
      for (const setup::Action& a : rep.actions) {
        if (!a.changed && a.feature != "health" && g_.verbose == 0) continue;
        std::cout << "  " << a.feature << ": " << a.what << " " << a.detail << '\n';
        ++shown;
      }
    }
  }
  if (result && shown == 0) std::cout << "  converged, nothing to do\n";
  if (!result) std::cout << "  failed: " << result.error().message() << '\n';
}

// ---- phoenix sync guests ---------------------------------------------------------------------

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
  std::vector<const model::Guest*> order;
  for (const model::Guest* guest : provision::creation_order(e, ids)) {
    if (std::find(ids.begin(), ids.end(), guest->id) != ids.end() && !guest->is_template.value) {
      order.push_back(guest);
    }
  }
  auto prepared = GuestSetup::prepare(g, loaded, ids, o.setup);
  if (auto* code = std::get_if<int>(&prepared)) return *code;
  GuestSetup& setup = *std::get<0>(prepared);
  if (g.output == OutputFormat::kText) print_diagnostics(loaded, g);  // warnings

  auto results = provision::run_in_order(
      order, 1, [&](const model::Guest& guest) { return setup.run(guest); });

  bool ok = true;
  json list = json::array();
  for (const model::Guest* guest : order) {
    const base::Result<void>& r = results.at(guest->id);
    ok &= r.has_value();
    if (g.output == OutputFormat::kJson) {
      list.push_back({{"guest", guest->id},
                      {"name", guest->label()},
                      {"ok", r.has_value()},
                      {"actions", setup.actions_json(guest->id)},
                      {"error", r ? json(nullptr) : json(r.error().message())}});
    } else {
      setup.print(*guest, r);
    }
  }
  bool changed = setup.changed();
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
