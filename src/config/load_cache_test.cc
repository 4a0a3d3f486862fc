#include "config/load_cache.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "compile/desired.h"
#include "config/estate_image.h"
#include "plan/plan.h"
#include "render/render.h"
#include "validate/validate.h"

namespace phoenix::config {
namespace {

namespace fs = std::filesystem;

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void spit(const fs::path& p, std::string_view text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary | std::ios::trunc) << text;
}

// Everything a command can see of a load: the model's image, the diagnostics after validation
// as printed (with their source lines), the rendered files and the desired state's snapshot.
// The last two use the model without going through the image, so that a field the image left
// out shows there.
struct Seen {
  std::string image, diagnostics, rendered, snapshot;
  friend bool operator==(const Seen&, const Seen&) = default;
};

Seen seen(LoadResult r) {
  Seen s;
  s.image = encode_estate_image(r);
  validate::validate_estate(*r.estate, r.diags);
  for (const base::Diagnostic& d : r.diags.sorted()) {
    s.diagnostics += base::format_diagnostic(d, r.estate->sources);
  }
  if (r.diags.has_errors()) return s;
  compile::Desired desired = compile::compile_estate(*r.estate);
  for (const render::Artifact& a : render::render_all(desired)) {
    s.rendered += a.path + "\n" + a.content + "\n";
  }
  s.snapshot = plan::make_snapshot(desired.resources).dump();
  return s;
}

class LoadCache : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/phoenix-load-cache-test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    cache_ = (dir_ / "cache").string();
  }
  void TearDown() override {
    std::error_code ec;
    fs::permissions(dir_ / "cache", fs::perms::owner_all, ec);
    fs::remove_all(dir_, ec);
  }

  // A copy of the example estate, to change.
  LoadOptions copy_example() {
    fs::copy(fs::path(PHOENIX_SOURCE_DIR) / "examples/estate", dir_ / "estate",
             fs::copy_options::recursive);
    return {(dir_ / "estate/etc").string(), {}, {}};
  }

  LoadResult cached(const LoadOptions& o, CacheOutcome expect, const std::string& note = {}) {
    CacheReport report;
    LoadResult r = load_estate_cached(o, cache_, &report);
    EXPECT_EQ(to_string(report.outcome), to_string(expect)) << report.note;
    EXPECT_EQ(report.outcome, expect) << report.note;
    if (!note.empty()) {
      EXPECT_NE(report.note.find(note), std::string::npos) << report.note;
    }
    return r;
  }

  static LoadResult fresh(const LoadOptions& o) {
    DiskTree disk;
    return load_estate(o, disk);
  }

  // Loads once through the cache (filling it, on a miss) and returns the entry's path.
  std::string entry_path(const LoadOptions& o) {
    CacheReport report;
    (void)load_estate_cached(o, cache_, &report);
    return report.entry;
  }

  fs::path dir_;
  std::string cache_;
};

TEST_F(LoadCache, AHitSeesWhatParsingSees) {
  LoadOptions o = copy_example();
  Seen parsed = seen(fresh(o));
  ASSERT_FALSE(parsed.rendered.empty());
  EXPECT_EQ(seen(cached(o, CacheOutcome::kMiss, "no entry yet")), parsed);
  EXPECT_EQ(seen(cached(o, CacheOutcome::kHit)), parsed);
  EXPECT_EQ(seen(cached(o, CacheOutcome::kHit)), parsed);
}

TEST_F(LoadCache, EveryBrokenEstateOfTheCorpusComesBackTheSame) {
  int cases = 0;
  for (const auto& e : fs::directory_iterator(fs::path(PHOENIX_SOURCE_DIR) / "tests/corpus")) {
    if (!e.is_directory()) continue;
    ++cases;
    LoadOptions o{(e.path() / "etc").string(), {}, {}};
    Seen parsed = seen(fresh(o));
    EXPECT_FALSE(parsed.diagnostics.empty()) << e.path();
    EXPECT_EQ(seen(cached(o, CacheOutcome::kMiss)), parsed) << e.path();
    EXPECT_EQ(seen(cached(o, CacheOutcome::kHit)), parsed) << e.path();
  }
  EXPECT_GE(cases, 30);
}

TEST_F(LoadCache, AnEditThatKeepsSizeAndTimesIsSeen) {
  LoadOptions o = copy_example();
  cached(o, CacheOutcome::kMiss);
  fs::path lxc = dir_ / "estate/etc/phoenix_lxc_configs.json";
  struct stat before {};
  ASSERT_EQ(::stat(lxc.c_str(), &before), 0);
  std::string text = slurp(lxc);
  std::size_t at = text.find("\"memory_mb\": ");
  ASSERT_NE(at, std::string::npos);
  at += 13;
  ASSERT_TRUE(text[at] >= '1' && text[at] <= '8');
  ++text[at];  // 2048 -> 3048: same size
  spit(lxc, text);
  struct timespec times[2] = {before.st_atim, before.st_mtim};
  ASSERT_EQ(::utimensat(AT_FDCWD, lxc.c_str(), times, 0), 0);
  LoadResult r = cached(o, CacheOutcome::kMiss, "phoenix_lxc_configs.json changed");
  EXPECT_EQ(seen(std::move(r)), seen(fresh(o)));
  cached(o, CacheOutcome::kHit);
}

TEST_F(LoadCache, FilesAndDirectoriesThatComeAndGoAreSeen) {
  LoadOptions o = copy_example();
  cached(o, CacheOutcome::kMiss);
  fs::path stacks = dir_ / "estate/stacks";

  // A new stack directory with a compose file.
  spit(stacks / "zz_new/docker-compose.yml", "services:\n  web:\n    image: nginx\n");
  cached(o, CacheOutcome::kMiss, "the directories in");
  cached(o, CacheOutcome::kHit);

  // An optional file that appears where the load found none (the manifest of that stack).
  spit(stacks / "zz_new/phoenix.json", "{}\n");
  cached(o, CacheOutcome::kMiss, "phoenix.json appeared");
  cached(o, CacheOutcome::kHit);

  // The compose file moves to its other name.
  fs::rename(stacks / "zz_new/docker-compose.yml", stacks / "zz_new/docker-compose.yaml");
  cached(o, CacheOutcome::kMiss, "docker-compose.yml is gone");
  EXPECT_EQ(seen(cached(o, CacheOutcome::kHit)), seen(fresh(o)));

  // The referenced application script stops being a file (is_file is asked, not read).
  fs::path script = dir_ / "estate/bin/phoenix_hypervisor_lxc_101.sh";
  ASSERT_TRUE(fs::remove(script));
  cached(o, CacheOutcome::kMiss, "is no longer a file");
  cached(o, CacheOutcome::kHit);
}

TEST_F(LoadCache, ADamagedOrForeignEntryIsAMissAndIsReplaced) {
  LoadOptions o = copy_example();
  Seen parsed = seen(fresh(o));
  std::string entry = entry_path(o);
  ASSERT_TRUE(fs::is_regular_file(entry));
  EXPECT_EQ(fs::status(entry).permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write);
  EXPECT_EQ(fs::status(cache_).permissions() & fs::perms::all, fs::perms::owner_all);

  // One byte flipped in the middle: the checksum no longer holds.
  std::string bytes = slurp(entry);
  std::string flipped = bytes;
  flipped[flipped.size() / 2] ^= 0x20;
  spit(entry, flipped);
  EXPECT_EQ(seen(cached(o, CacheOutcome::kMiss, "damaged")), parsed);
  EXPECT_EQ(slurp(entry), bytes);  // rewritten

  // Cut short, and empty.
  spit(entry, bytes.substr(0, bytes.size() / 3));
  cached(o, CacheOutcome::kMiss, "damaged");
  spit(entry, "");
  cached(o, CacheOutcome::kMiss);
  cached(o, CacheOutcome::kHit);

  // Writable by others: not trusted.
  fs::permissions(entry, fs::perms::others_write, fs::perm_options::add);
  cached(o, CacheOutcome::kMiss, "only it may write");
  cached(o, CacheOutcome::kHit);

  // A symbolic link in its place: not followed.
  fs::rename(entry, entry + ".real");
  fs::create_symlink(entry + ".real", entry);
  cached(o, CacheOutcome::kMiss, "cannot open");
  EXPECT_FALSE(fs::is_symlink(entry));
  cached(o, CacheOutcome::kHit);
}

TEST_F(LoadCache, ACacheThatCannotBeWrittenOnlyCostsTheCache) {
  if (::geteuid() == 0) {
    // root writes through the permission bits: a file where the directory should be instead.
    spit(cache_, "not a directory");
  } else {
    fs::create_directories(cache_);
    fs::permissions(cache_, fs::perms::owner_read | fs::perms::owner_exec);
  }
  LoadOptions o = copy_example();
  Seen parsed = seen(fresh(o));
  EXPECT_EQ(seen(cached(o, CacheOutcome::kMissKept, "cannot")), parsed);
  EXPECT_EQ(seen(cached(o, CacheOutcome::kMissKept)), parsed);
}

TEST_F(LoadCache, WritingAnEntryRemovesEntriesUnusedForAMonth) {
  LoadOptions o = copy_example();
  fs::create_directories(cache_);
  auto aged = [&](const std::string& name, std::chrono::hours age) {
    fs::path p = fs::path(cache_) / name;
    spit(p, "x");
    fs::last_write_time(p, fs::file_time_type::clock::now() - age);
    return p;
  };
  fs::path old_entry = aged("0000000000000001.entry", std::chrono::hours(24 * 31));
  fs::path recent_entry = aged("0000000000000002.entry", std::chrono::hours(24 * 29));
  fs::path old_tmp = aged("0000000000000003.entry.tmp.123", std::chrono::hours(2));
  fs::path recent_tmp = aged("0000000000000004.entry.tmp.456", std::chrono::hours(0));
  fs::path other = aged("notes.txt", std::chrono::hours(24 * 365));
  cached(o, CacheOutcome::kMiss);
  EXPECT_FALSE(fs::exists(old_entry));
  EXPECT_FALSE(fs::exists(old_tmp));
  EXPECT_TRUE(fs::exists(recent_entry));
  EXPECT_TRUE(fs::exists(recent_tmp));
  EXPECT_TRUE(fs::exists(other));
  // A hit on an entry written days ago brings its time forward: used entries are not pruned.
  std::string entry = entry_path(o);
  fs::last_write_time(entry, fs::file_time_type::clock::now() - std::chrono::hours(48));
  cached(o, CacheOutcome::kHit);
  EXPECT_LT(fs::file_time_type::clock::now() - fs::last_write_time(entry), std::chrono::hours(1));
}

TEST_F(LoadCache, NothingIsWrittenIntoADirectoryOthersMayWrite) {
  LoadOptions o = copy_example();
  fs::create_directories(cache_);
  fs::permissions(cache_, fs::perms::owner_all | fs::perms::group_all | fs::perms::others_all);
  cached(o, CacheOutcome::kMissKept, "only it may write");
  EXPECT_TRUE(fs::is_empty(cache_));
  fs::permissions(cache_, fs::perms::owner_all);
  cached(o, CacheOutcome::kMiss);
  cached(o, CacheOutcome::kHit);
}

TEST_F(LoadCache, NoDirectoryIsNoCache) {
  LoadOptions o = copy_example();
  CacheReport report;
  LoadResult r = load_estate_cached(o, "", &report);
  EXPECT_EQ(report.outcome, CacheOutcome::kOff);
  EXPECT_EQ(seen(std::move(r)), seen(fresh(o)));
  EXPECT_FALSE(fs::exists(cache_));
}

TEST_F(LoadCache, RelativePathsFromAnotherDirectoryAreAnotherEstate) {
  copy_example();
  fs::create_directories(dir_ / "b");
  fs::copy(dir_ / "estate", dir_ / "b/estate", fs::copy_options::recursive);
  // The second copy differs: one guest's memory.
  fs::path lxc = dir_ / "b/estate/etc/phoenix_lxc_configs.json";
  std::string text = slurp(lxc);
  text.replace(text.find("\"memory_mb\": "), 13, "\"memory_mb\":  ");
  spit(lxc, text);
  fs::path was = fs::current_path();
  LoadOptions rel{"estate/etc", {}, {}};
  fs::current_path(dir_);
  std::string a_entry = entry_path(rel);
  cached(rel, CacheOutcome::kHit);
  fs::current_path(dir_ / "b");
  std::string b_entry = entry_path(rel);
  Seen b = seen(cached(rel, CacheOutcome::kHit));
  EXPECT_EQ(b, seen(fresh(rel)));
  fs::current_path(dir_);
  cached(rel, CacheOutcome::kHit);
  fs::current_path(was);
  EXPECT_NE(a_entry, b_entry);
}

TEST(EstateImage, ATruncatedImageIsNotDecoded) {
  MemoryTree tree;
  tree.add("/e/etc/phoenix_hypervisor_config.json", R"({"domain_name": "x.local"})");
  tree.add("/e/etc/phoenix_lxc_configs.json",
           R"({"lxc_configs": {"101": {"name": "a", "memory_mb": 512}}})");
  tree.add("/e/etc/phoenix_vm_configs.json", R"({"vms": []})");
  LoadResult r = load_estate({"/e/etc", {}, {}}, tree);
  std::string image = encode_estate_image(r);
  auto text = [&](const std::string& path) { return tree.read(path).value(); };
  ASSERT_TRUE(decode_estate_image(image, text));
  for (std::size_t cut : {std::size_t{0}, std::size_t{1}, image.size() / 2, image.size() - 1}) {
    EXPECT_FALSE(decode_estate_image(std::string_view(image).substr(0, cut), text)) << cut;
  }
  EXPECT_FALSE(decode_estate_image(image + "x", text));
  std::optional<LoadResult> back = decode_estate_image(image, text);
  ASSERT_TRUE(back);
  EXPECT_EQ(encode_estate_image(*back), image);
  ASSERT_EQ(back->estate->guests.size(), 1u);
  EXPECT_EQ(back->estate->guests[0].memory_mb.value, 512);
  EXPECT_EQ(back->estate->sources.text(back->estate->guests[0].loc.file),
            R"({"lxc_configs": {"101": {"name": "a", "memory_mb": 512}}})");
  EXPECT_EQ(back->estate->guest(101), &back->estate->guests[0]);  // indexes rebuilt
}

}  // namespace
}  // namespace phoenix::config
