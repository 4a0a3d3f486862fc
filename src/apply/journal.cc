#include "apply/journal.h"

#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>

namespace phoenix::apply {
namespace {

using base::ErrorKind;

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS runs (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  command TEXT NOT NULL,
  estate TEXT NOT NULL,
  started_at INTEGER NOT NULL,
  ended_at INTEGER NOT NULL DEFAULT 0,
  result TEXT NOT NULL,
  summary TEXT NOT NULL DEFAULT '',
  pid INTEGER NOT NULL,
  host TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS actions (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  run INTEGER NOT NULL REFERENCES runs(id),
  key TEXT NOT NULL,
  stage TEXT NOT NULL,
  started_at INTEGER NOT NULL,
  ended_at INTEGER NOT NULL DEFAULT 0,
  result TEXT NOT NULL,
  detail TEXT NOT NULL DEFAULT '',
  error TEXT NOT NULL DEFAULT '',
  report TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS actions_by_run ON actions(run);
)sql";

// One prepared statement, finalized on scope exit.
class Statement {
 public:
  Statement(sqlite3* db, const char* sql) { rc_ = sqlite3_prepare_v2(db, sql, -1, &s_, nullptr); }
  ~Statement() { sqlite3_finalize(s_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  bool ok() const { return rc_ == SQLITE_OK; }
  Statement& bind(int i, std::int64_t v) {
    sqlite3_bind_int64(s_, i, v);
    return *this;
  }
  Statement& bind(int i, const std::string& v) {
    sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  int step() { return sqlite3_step(s_); }
  std::int64_t integer(int col) { return sqlite3_column_int64(s_, col); }
  std::string text(int col) {
    const unsigned char* t = sqlite3_column_text(s_, col);
    return t ? reinterpret_cast<const char*>(t) : "";
  }

 private:
  sqlite3_stmt* s_ = nullptr;
  int rc_ = SQLITE_ERROR;
};

}  // namespace

struct Journal::Db {
  sqlite3* handle = nullptr;
  std::string path;
  ~Db() { sqlite3_close(handle); }

  base::Error error(const std::string& what) const {
    return base::Error(ErrorKind::kInternal,
                       "journal " + path + ": " + what + ": " + sqlite3_errmsg(handle));
  }
  base::Result<void> exec(const char* sql) {
    char* msg = nullptr;
    if (sqlite3_exec(handle, sql, nullptr, nullptr, &msg) != SQLITE_OK) {
      std::string m = msg ? msg : "";
      sqlite3_free(msg);
      return base::fail(ErrorKind::kInternal, "journal " + path + ": " + m);
    }
    return {};
  }
  // Runs a statement that changes rows.
  base::Result<void> change(Statement& s, const std::string& what) {
    if (!s.ok() || s.step() != SQLITE_DONE) return std::unexpected(error(what));
    return {};
  }
};

std::string host_name() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "unknown";
  return buf;
}

std::int64_t now_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Journal::Journal(std::unique_ptr<Db> db) : db_(std::move(db)) {}
Journal::~Journal() = default;

base::Result<std::unique_ptr<Journal>> Journal::open(const std::string& path) {
  auto db = std::make_unique<Db>();
  db->path = path;
  mode_t old = ::umask(077);
  int rc =
      sqlite3_open_v2(path.c_str(), &db->handle,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nullptr);
  ::umask(old);
  if (rc != SQLITE_OK) {
    return base::fail(ErrorKind::kPermission,
                      "cannot open the journal " + path + ": " +
                          (db->handle ? sqlite3_errmsg(db->handle) : "out of memory") +
                          " (is the state directory writable? --state-dir chooses another)");
  }
  sqlite3_busy_timeout(db->handle, 5000);
  // WAL: readers (phoenix history) never wait for the converge that writes.
  PHX_TRY(db->exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"));
  PHX_TRY(db->exec(kSchema));
  return std::unique_ptr<Journal>(new Journal(std::move(db)));
}

base::Result<int> Journal::mark_interrupted() {
  std::int64_t now = now_seconds();
  Statement a(db_->handle,
              "UPDATE actions SET result='interrupted', ended_at=?1 WHERE result='running'");
  a.bind(1, now);
  PHX_TRY(db_->change(a, "marking interrupted actions"));
  Statement r(db_->handle,
              "UPDATE runs SET result='interrupted', ended_at=?1 WHERE result='running'");
  r.bind(1, now);
  PHX_TRY(db_->change(r, "marking interrupted runs"));
  return sqlite3_changes(db_->handle);
}

base::Result<std::int64_t> Journal::begin_run(const std::string& command,
                                              const std::string& estate) {
  Statement s(db_->handle,
              "INSERT INTO runs (command, estate, started_at, result, pid, host) "
              "VALUES (?1, ?2, ?3, 'running', ?4, ?5)");
  s.bind(1, command)
      .bind(2, estate)
      .bind(3, now_seconds())
      .bind(4, ::getpid())
      .bind(5, host_name());
  PHX_TRY(db_->change(s, "recording a run"));
  return sqlite3_last_insert_rowid(db_->handle);
}

base::Result<void> Journal::end_run(std::int64_t run, const std::string& result,
                                    const std::string& summary) {
  Statement s(db_->handle, "UPDATE runs SET ended_at=?1, result=?2, summary=?3 WHERE id=?4");
  s.bind(1, now_seconds()).bind(2, result).bind(3, summary).bind(4, run);
  return db_->change(s, "ending a run");
}

base::Result<std::int64_t> Journal::begin_action(std::int64_t run, const std::string& key,
                                                 const std::string& stage) {
  Statement s(db_->handle,
              "INSERT INTO actions (run, key, stage, started_at, result) "
              "VALUES (?1, ?2, ?3, ?4, 'running')");
  s.bind(1, run).bind(2, key).bind(3, stage).bind(4, now_seconds());
  PHX_TRY(db_->change(s, "recording an action"));
  return sqlite3_last_insert_rowid(db_->handle);
}

base::Result<void> Journal::end_action(std::int64_t action, const std::string& result,
                                       const std::string& detail, const std::string& error,
                                       const std::string& report) {
  Statement s(db_->handle,
              "UPDATE actions SET ended_at=?1, result=?2, detail=?3, error=?4, report=?5 "
              "WHERE id=?6");
  s.bind(1, now_seconds())
      .bind(2, result)
      .bind(3, detail)
      .bind(4, error)
      .bind(5, report)
      .bind(6, action);
  return db_->change(s, "ending an action");
}

base::Result<std::vector<RunRecord>> Journal::runs(int limit) {
  Statement s(db_->handle,
              "SELECT id, command, estate, started_at, ended_at, result, summary, pid, host "
              "FROM runs ORDER BY id DESC LIMIT ?1");
  s.bind(1, static_cast<std::int64_t>(limit));
  if (!s.ok()) return std::unexpected(db_->error("reading runs"));
  std::vector<RunRecord> out;
  int rc;
  while ((rc = s.step()) == SQLITE_ROW) {
    out.push_back({s.integer(0), s.text(1), s.text(2), s.integer(3), s.integer(4), s.text(5),
                   s.text(6), s.integer(7), s.text(8)});
  }
  if (rc != SQLITE_DONE) return std::unexpected(db_->error("reading runs"));
  return out;
}

base::Result<std::vector<ActionRecord>> Journal::actions(std::int64_t run) {
  Statement s(db_->handle,
              "SELECT id, run, key, stage, started_at, ended_at, result, detail, error, report "
              "FROM actions WHERE run=?1 ORDER BY id");
  s.bind(1, run);
  if (!s.ok()) return std::unexpected(db_->error("reading actions"));
  std::vector<ActionRecord> out;
  int rc;
  while ((rc = s.step()) == SQLITE_ROW) {
    out.push_back({s.integer(0), s.integer(1), s.text(2), s.text(3), s.integer(4), s.integer(5),
                   s.text(6), s.text(7), s.text(8), s.text(9)});
  }
  if (rc != SQLITE_DONE) return std::unexpected(db_->error("reading actions"));
  return out;
}

}  // namespace phoenix::apply
