#include "config/load_cache.h"

#include <fcntl.h>
#include <link.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "base/hash.h"
#include "config/estate_image.h"

// XXH3_state_t on the stack (its layout is public with this).
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

namespace phoenix::config {
namespace {

constexpr std::string_view kMagic = "PHXCACHE";
constexpr std::uint32_t kFormat = 1;

// ---- the build id ---------------------------------------------------------------------------

// The GNU build id of the running program (a hash of the linked binary), as hex: entries are
// only ever read by the build that wrote them. Empty when the binary has none.
std::string build_id() {
  static const std::string id = [] {
    std::string out;
    dl_iterate_phdr(
        [](dl_phdr_info* info, std::size_t, void* data) -> int {
          auto* found = static_cast<std::string*>(data);
          for (int i = 0; i < info->dlpi_phnum; ++i) {
            const ElfW(Phdr)& ph = info->dlpi_phdr[i];
            if (ph.p_type != PT_NOTE) continue;
            const char* p = reinterpret_cast<const char*>(info->dlpi_addr + ph.p_vaddr);
            const char* end = p + ph.p_memsz;
            while (p + sizeof(ElfW(Nhdr)) <= end) {
              const auto* note = reinterpret_cast<const ElfW(Nhdr)*>(p);
              const char* name = p + sizeof(ElfW(Nhdr));
              const char* desc = name + ((note->n_namesz + 3) & ~3u);
              const char* next = desc + ((note->n_descsz + 3) & ~3u);
              if (next > end) break;
              if (note->n_type == NT_GNU_BUILD_ID && note->n_namesz == 4 &&
                  std::memcmp(name, "GNU", 4) == 0) {
                *found = base::to_hex(std::string_view(desc, note->n_descsz));
                return 1;
              }
              p = next;
            }
          }
          return 1;  // the first object is the program itself: look no further
        },
        &out);
    return out;
  }();
  return id;
}

// ---- questions and answers ------------------------------------------------------------------

struct Hash128 {
  std::uint64_t lo = 0, hi = 0;
  friend bool operator==(const Hash128&, const Hash128&) = default;
};

Hash128 content_hash(std::string_view text) {
  XXH128_hash_t h = XXH3_128bits(text.data(), text.size());
  return {h.low64, h.high64};
}

// One question the loader asked the file system, and the answer.
struct Question {
  enum Kind : std::uint8_t { kRead = 1, kIsFile = 2, kListDirs = 3 };
  Kind kind = kRead;
  std::string path;
  bool yes = false;                // read: the file was read; is_file: the answer
  std::uint64_t size = 0;          // read, when read
  Hash128 hash;                    // read, when read
  std::string error;               // read, when not read: the error's message (not found)
  std::vector<std::string> names;  // list_dirs
};

// Answers the loader's questions from `inner` and writes them down. Files are read from several
// threads at once.
class RecordingTree final : public SourceTree {
 public:
  explicit RecordingTree(SourceTree& inner) : inner_(inner) {}

  base::Result<std::string> read(const std::string& path) override {
    auto text = inner_.read(path);
    Question q = ask(Question::kRead, path);
    if (text) {
      q.yes = true;
      q.size = text->size();
      q.hash = content_hash(*text);
    } else if (text.error().kind() == base::ErrorKind::kNotFound) {
      q.error = text.error().message();
    }
    std::lock_guard lock(mu_);
    // Anything but "not found" (a permission, an I/O error) may not be what a later run sees:
    // such a load is not recorded.
    if (!text && text.error().kind() != base::ErrorKind::kNotFound) {
      unrecordable_ = "reading " + path + " failed: " + text.error().message();
    }
    questions_.push_back(std::move(q));
    return text;
  }

  bool is_file(const std::string& path) override {
    Question q = ask(Question::kIsFile, path);
    q.yes = inner_.is_file(path);
    std::lock_guard lock(mu_);
    return questions_.emplace_back(std::move(q)).yes;
  }

  std::vector<std::string> list_dirs(const std::string& dir) override {
    std::vector<std::string> names = inner_.list_dirs(dir);
    Question q = ask(Question::kListDirs, dir);
    q.names = names;
    std::lock_guard lock(mu_);
    questions_.push_back(std::move(q));
    return names;
  }

  std::vector<Question>& questions() { return questions_; }
  const std::string& unrecordable() const { return unrecordable_; }

 private:
  static Question ask(Question::Kind kind, const std::string& path) {
    Question q;
    q.kind = kind;
    q.path = path;
    return q;
  }

  SourceTree& inner_;
  std::mutex mu_;
  std::vector<Question> questions_;
  std::string unrecordable_;
};

// ---- the entry file -------------------------------------------------------------------------

// What an entry is for: the options as given, and the working directory when a path is
// relative (the same -C from elsewhere is another estate).
struct Key {
  std::string build;
  std::string cwd;
  LoadOptions options;
};

void put_u64(std::string& out, std::uint64_t v) {
  out.append(reinterpret_cast<const char*>(&v), 8);
}
void put_str(std::string& out, std::string_view s) {
  put_u64(out, s.size());
  out.append(s);
}
void put_opt(std::string& out, const std::optional<std::string>& s) {
  out.push_back(s ? 1 : 0);
  if (s) put_str(out, *s);
}

class In {
 public:
  explicit In(std::string_view data) : data_(data) {}
  bool ok() const { return ok_; }
  bool at_end() const { return pos_ == data_.size(); }
  std::uint64_t u64() {
    std::uint64_t v = 0;
    if (take(8)) std::memcpy(&v, data_.data() + pos_ - 8, 8);
    return v;
  }
  std::uint8_t u8() { return take(1) ? static_cast<std::uint8_t>(data_[pos_ - 1]) : 0; }
  std::string_view str() {
    std::uint64_t n = u64();
    if (!ok_ || n > data_.size() - pos_) {
      ok_ = false;
      return {};
    }
    pos_ += n;
    return data_.substr(pos_ - n, n);
  }
  std::optional<std::string> opt() {
    if (u8() == 0) return std::nullopt;
    return std::string(str());
  }

 private:
  bool take(std::size_t n) {
    if (!ok_ || n > data_.size() - pos_) {
      ok_ = false;
      return false;
    }
    pos_ += n;
    return true;
  }
  std::string_view data_;
  std::size_t pos_ = 0;
  bool ok_ = true;
};

// An entry as the three parts it is written in: the image is not copied into it.
struct EntryParts {
  std::string head;        // up to and with the image's length
  std::string_view image;  // the image itself
  std::string tail;        // the checksum of head and image
};

EntryParts encode_entry(const Key& key, const std::vector<Question>& questions,
                        std::string_view image) {
  std::string out(kMagic);
  std::uint32_t format = kFormat;
  out.append(reinterpret_cast<const char*>(&format), 4);
  put_str(out, key.build);
  put_str(out, key.cwd);
  put_str(out, key.options.config_dir);
  put_opt(out, key.options.stacks_dir);
  put_opt(out, key.options.bin_dir);
  put_u64(out, questions.size());
  for (const Question& q : questions) {
    out.push_back(static_cast<char>(q.kind));
    put_str(out, q.path);
    out.push_back(q.yes ? 1 : 0);
    put_u64(out, q.size);
    put_u64(out, q.hash.lo);
    put_u64(out, q.hash.hi);
    put_str(out, q.error);
    put_u64(out, q.names.size());
    for (const std::string& n : q.names) put_str(out, n);
  }
  put_u64(out, image.size());
  XXH3_state_t state;
  XXH3_INITSTATE(&state);
  XXH3_128bits_reset(&state);
  XXH3_128bits_update(&state, out.data(), out.size());
  XXH3_128bits_update(&state, image.data(), image.size());
  XXH128_hash_t sum = XXH3_128bits_digest(&state);
  EntryParts parts{std::move(out), image, {}};
  put_u64(parts.tail, sum.low64);
  put_u64(parts.tail, sum.high64);
  return parts;
}

struct Entry {
  std::vector<Question> questions;
  std::string_view image;  // into the entry's bytes
};

// The entry in `bytes` when it is whole and for `key`; otherwise why not.
std::optional<Entry> decode_entry(std::string_view bytes, const Key& key, std::string& why) {
  if (bytes.size() < kMagic.size() + 4 + 16 || bytes.substr(0, kMagic.size()) != kMagic) {
    why = "not a cache entry";
    return std::nullopt;
  }
  std::string_view body = bytes.substr(0, bytes.size() - 16);
  Hash128 sum;
  std::memcpy(&sum.lo, bytes.data() + body.size(), 8);
  std::memcpy(&sum.hi, bytes.data() + body.size() + 8, 8);
  if (content_hash(body) != sum) {
    why = "the entry is damaged (checksum)";
    return std::nullopt;
  }
  std::uint32_t format = 0;
  std::memcpy(&format, bytes.data() + kMagic.size(), 4);
  if (format != kFormat) {
    why = "the entry has another format";
    return std::nullopt;
  }
  In in(body.substr(kMagic.size() + 4));
  if (in.str() != key.build) {
    why = "the entry was written by another build of phoenix";
    return std::nullopt;
  }
  std::string_view cwd = in.str();
  std::string_view config_dir = in.str();
  std::optional<std::string> stacks_dir = in.opt();
  std::optional<std::string> bin_dir = in.opt();
  if (!in.ok() || cwd != key.cwd || config_dir != key.options.config_dir ||
      stacks_dir != key.options.stacks_dir || bin_dir != key.options.bin_dir) {
    why = "the entry is for other options";
    return std::nullopt;
  }
  Entry entry;
  std::uint64_t count = in.u64();
  for (std::uint64_t i = 0; i < count && in.ok(); ++i) {
    Question& q = entry.questions.emplace_back();
    q.kind = static_cast<Question::Kind>(in.u8());
    q.path = in.str();
    q.yes = in.u8() != 0;
    q.size = in.u64();
    q.hash.lo = in.u64();
    q.hash.hi = in.u64();
    q.error = in.str();
    std::uint64_t names = in.u64();
    for (std::uint64_t n = 0; n < names && in.ok(); ++n) q.names.emplace_back(in.str());
  }
  entry.image = in.str();
  if (!in.ok() || !in.at_end()) {
    why = "the entry is damaged";
    return std::nullopt;
  }
  return entry;
}

// An entry's bytes, mapped (read from the page cache where they are, not copied).
class Mapped {
 public:
  Mapped(void* data, std::size_t size, std::time_t mtime)
      : data_(data), size_(size), mtime_(mtime) {}
  Mapped(const Mapped&) = delete;
  Mapped& operator=(const Mapped&) = delete;
  ~Mapped() { ::munmap(data_, size_); }
  std::string_view bytes() const { return {static_cast<const char*>(data_), size_}; }
  std::time_t mtime() const { return mtime_; }

 private:
  void* data_;
  std::size_t size_;
  std::time_t mtime_;
};

// The entry's bytes, when it is a regular file of ours that no one else may write.
std::unique_ptr<Mapped> read_entry(const std::string& path, std::string& why) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    why =
        errno == ENOENT ? "no entry yet" : "cannot open the entry: " + std::string(strerror(errno));
    return nullptr;
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != ::geteuid() ||
      (st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    ::close(fd);
    why = "the entry is not a regular file of this user that only it may write";
    return nullptr;
  }
  auto size = static_cast<std::size_t>(st.st_size);
  void* data =
      size == 0 ? MAP_FAILED : ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
  ::close(fd);
  if (data == MAP_FAILED) {
    why = "cannot read the entry";
    return nullptr;
  }
  return std::make_unique<Mapped>(data, size, st.st_mtim.tv_sec);
}

// Writes the entry beside its place and renames it there. Not flushed: a cache, whose damage
// the checksum shows.
bool write_entry(const std::string& dir, const std::string& path, const EntryParts& parts,
                 std::string& why) {
  std::error_code ec;
  std::filesystem::path parent = std::filesystem::path(dir).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent, ec);
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    why = "cannot create " + dir + ": " + strerror(errno);
    return false;
  }
  // Entries are only written into a directory of this user that no one else may write to.
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != ::geteuid() ||
      (st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    why = "not writing into " + dir + ": not a directory of this user that only it may write";
    return false;
  }
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  constexpr int kCreate = O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW;
  int fd = ::open(tmp.c_str(), kCreate, 0600);
  if (fd < 0 && errno == EEXIST) {  // left by a killed process that had this pid
    ::unlink(tmp.c_str());
    fd = ::open(tmp.c_str(), kCreate, 0600);
  }
  if (fd < 0) {
    why = "cannot write " + tmp + ": " + strerror(errno);
    return false;
  }
  auto write_all = [fd](std::string_view bytes) {
    std::size_t done = 0;
    while (done < bytes.size()) {
      ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      done += static_cast<std::size_t>(n);
    }
    return true;
  };
  bool ok = write_all(parts.head) && write_all(parts.image) && write_all(parts.tail);
  ok = ::close(fd) == 0 && ok;
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
    why = "cannot write " + path + ": " + strerror(errno);
    ::unlink(tmp.c_str());
    return false;
  }
  return true;
}

// Entries of estates not loaded for a month (a hit brings its entry's time forward once a day),
// and temporary files a killed writer left: removed when an entry is written.
void prune(const std::string& dir, const std::string& keep) {
  using Clock = std::filesystem::file_time_type::clock;
  const auto now = Clock::now();
  std::error_code ec;
  for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string path = it->path().string();
    const std::string name = it->path().filename().string();
    bool entry = name.ends_with(".entry");
    bool tmp = name.find(".entry.tmp.") != std::string::npos;
    if ((!entry && !tmp) || path == keep) continue;
    std::error_code ec2;
    auto when = std::filesystem::last_write_time(it->path(), ec2);
    if (ec2) continue;
    auto age = now - when;
    if ((entry && age > std::chrono::hours(24 * 30)) || (tmp && age > std::chrono::hours(1))) {
      std::filesystem::remove(it->path(), ec2);
    }
  }
}

// ---- asking again ---------------------------------------------------------------------------

// The text of each file read, by path, and how many of the load's files were read from it (one,
// unless two of them name the same path).
struct Text {
  std::string text;
  int uses = 0;
};
using Texts = std::unordered_map<std::string, Text>;

// Asks every question of `entry` again. On success the texts of the files read, by path.
std::optional<Texts> ask_again(const Entry& entry, SourceTree& tree, std::string& why) {
  std::vector<std::size_t> reads;
  for (std::size_t i = 0; i < entry.questions.size(); ++i) {
    const Question& q = entry.questions[i];
    if (q.kind == Question::kRead) {
      reads.push_back(i);
    } else if (q.kind == Question::kIsFile) {
      if (tree.is_file(q.path) != q.yes) {
        why = q.path + (q.yes ? " is no longer a file" : " is now a file");
        return std::nullopt;
      }
    } else if (q.kind == Question::kListDirs) {
      if (tree.list_dirs(q.path) != q.names) {
        why = "the directories in " + q.path + " changed";
        return std::nullopt;
      }
    } else {
      why = "the entry is damaged";
      return std::nullopt;
    }
  }
  // Files are read and hashed on a few threads, like the loader reads them.
  std::vector<std::optional<std::string>> texts(reads.size());
  std::atomic<std::size_t> next{0};
  std::atomic<bool> changed{false};
  std::mutex why_mu;
  auto work = [&] {
    for (std::size_t i = next++; i < reads.size() && !changed; i = next++) {
      const Question& q = entry.questions[reads[i]];
      auto text = tree.read(q.path);
      bool same = text ? q.yes && text->size() == q.size && content_hash(*text) == q.hash
                       : !q.yes && text.error().kind() == base::ErrorKind::kNotFound &&
                             text.error().message() == q.error;
      if (!same) {
        changed = true;
        std::lock_guard lock(why_mu);
        why = q.path + (q.yes ? (text ? " changed" : " is gone") : " appeared");
        return;
      }
      if (text) texts[i] = std::move(*text);
    }
  };
  constexpr std::size_t kParallelFrom = 16;  // files
  unsigned workers = std::min<unsigned>(std::max(1u, std::thread::hardware_concurrency()), 4);
  if (reads.size() < kParallelFrom) workers = 1;
  {
    std::vector<std::jthread> threads;
    for (unsigned w = 1; w < workers; ++w) threads.emplace_back(work);
    work();
  }
  if (changed) return std::nullopt;
  Texts out;
  out.reserve(reads.size());
  for (std::size_t i = 0; i < reads.size(); ++i) {
    if (!texts[i]) continue;
    auto [it, fresh] = out.try_emplace(entry.questions[reads[i]].path);
    if (fresh) it->second.text = std::move(*texts[i]);
    ++it->second.uses;
  }
  return out;
}

bool is_relative(const std::optional<std::string>& path) {
  return path && !path->empty() && path->front() != '/';
}

}  // namespace

std::string_view to_string(CacheOutcome outcome) {
  switch (outcome) {
    case CacheOutcome::kOff:
      return "off";
    case CacheOutcome::kHit:
      return "hit";
    case CacheOutcome::kMiss:
    case CacheOutcome::kMissKept:
      return "miss";
  }
  return "off";
}

LoadResult load_estate_cached(const LoadOptions& options, const std::string& cache_dir,
                              CacheReport* report) {
  CacheReport local;
  CacheReport& rep = report ? *report : local;
  DiskTree disk;
  Key key{build_id(), {}, options};
  if (cache_dir.empty() || key.build.empty()) {
    rep.outcome = CacheOutcome::kOff;
    rep.note = cache_dir.empty() ? "no cache directory" : "this phoenix binary has no build id";
    return load_estate(options, disk);
  }
  if (is_relative(options.config_dir) || is_relative(options.stacks_dir) ||
      is_relative(options.bin_dir)) {
    std::error_code ec;
    key.cwd = std::filesystem::current_path(ec).string();
  }
  // One entry per build and estate: two builds of phoenix used on one estate (an installed one
  // and a development build) would otherwise overwrite each other's entry on every run.
  std::string name = key.build + '\0' + key.cwd;
  for (const std::optional<std::string>& part :
       {std::optional<std::string>(options.config_dir), options.stacks_dir, options.bin_dir}) {
    name.push_back('\0');
    if (part) name += *part;
    name.push_back(part ? '\1' : '\2');
  }
  const std::uint64_t h = XXH3_64bits(name.data(), name.size());
  rep.entry = cache_dir + "/" +
              base::to_hex(std::string_view(reinterpret_cast<const char*>(&h), 8)) + ".entry";

  std::string why;
  if (std::unique_ptr<Mapped> mapped = read_entry(rep.entry, why)) {
    if (std::optional<Entry> entry = decode_entry(mapped->bytes(), key, why)) {
      if (auto texts = ask_again(*entry, disk, why)) {
        auto text = [&](const std::string& path) -> std::optional<std::string> {
          auto it = texts->find(path);
          if (it == texts->end() || it->second.uses == 0) return std::nullopt;
          if (--it->second.uses == 0) return std::move(it->second.text);
          return it->second.text;
        };
        if (std::optional<LoadResult> hit = decode_estate_image(entry->image, text)) {
          // A used entry is kept from pruning (below): its time is brought forward once a day.
          if (std::time(nullptr) - mapped->mtime() > 24 * 60 * 60) {
            (void)::utimensat(AT_FDCWD, rep.entry.c_str(), nullptr, AT_SYMLINK_NOFOLLOW);
          }
          rep.outcome = CacheOutcome::kHit;
          rep.note.clear();
          return std::move(*hit);
        }
        why = "the entry's image is damaged";
      }
    }
  }
  rep.note = why;

  RecordingTree recording(disk);
  LoadResult loaded = load_estate(options, recording);
  if (!recording.unrecordable().empty()) {
    rep.outcome = CacheOutcome::kMissKept;
    rep.note += "; not recorded: " + recording.unrecordable();
    return loaded;
  }
  const std::string image = encode_estate_image(loaded);
  std::string write_why;
  if (write_entry(cache_dir, rep.entry, encode_entry(key, recording.questions(), image),
                  write_why)) {
    rep.outcome = CacheOutcome::kMiss;
    prune(cache_dir, rep.entry);
  } else {
    rep.outcome = CacheOutcome::kMissKept;
    rep.note += "; " + write_why;
  }
  return loaded;
}

std::string default_cache_dir() {
  if (const char* dir = std::getenv("PHOENIX_CACHE_DIR")) return dir;
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg == '/') {
    return std::string(xdg) + "/phoenix/estates";
  }
  if (const char* home = std::getenv("HOME"); home && *home == '/') {
    return std::string(home) + "/.cache/phoenix/estates";
  }
  return {};
}

}  // namespace phoenix::config
