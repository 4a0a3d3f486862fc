// libcurl, loaded when a command first needs it. Linking it would make the dynamic loader map
// libcurl and the two dozen libraries it needs (GnuTLS, Kerberos, LDAP, ...) at every start,
// which cost more than a 1,000-guest `validate` itself; `validate`, `render` and `plan` never
// use it. This file defines the few libcurl functions Phoenix calls, each forwarding to the real
// one in libcurl.so.4, opened with dlopen on first use. libcurl's own OpenSSL is the one Phoenix
// links (same soname), so the Proxmox client's certificate callback still works on its SSL_CTX.
//
// When the library cannot be loaded, the functions fail the way libcurl fails on its own
// (CURLE_FAILED_INIT, a null handle), and init_curl_once says why.

#define CURL_DISABLE_TYPECHECK  // the type-checking macros would hide these definitions
#include <curl/curl.h>
#include <dlfcn.h>

#include <cstdarg>
#include <string>

#include "providers/curl_util.h"

namespace {

constexpr const char* kLibrary = "libcurl.so.4";

struct Api {
  CURLcode (*global_init)(long);
  CURL* (*easy_init)();
  CURLcode (*easy_setopt)(CURL*, CURLoption, ...);
  CURLcode (*easy_perform)(CURL*);
  void (*easy_cleanup)(CURL*);
  CURLcode (*easy_getinfo)(CURL*, CURLINFO, ...);
  void (*easy_reset)(CURL*);
  const char* (*easy_strerror)(CURLcode);
  char* (*easy_escape)(CURL*, const char*, int);
  void (*free)(void*);
  curl_slist* (*slist_append)(curl_slist*, const char*);
  void (*slist_free_all)(curl_slist*);
};

struct Loaded {
  Api api{};
  bool ok = false;
  std::string error;
};

template <class F>
bool bind(void* lib, const char* name, F& fn, std::string& error) {
  void* sym = dlsym(lib, name);
  if (sym == nullptr) {
    error = std::string(kLibrary) + " has no " + name;
    return false;
  }
  fn = reinterpret_cast<F>(sym);
  return true;
}

Loaded load() {
  Loaded l;
  // Never closed: handles and callbacks may outlive any scope here.
  void* lib = dlopen(kLibrary, RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) {
    const char* why = dlerror();
    l.error = why != nullptr ? why : std::string("cannot open ") + kLibrary;
    return l;
  }
  Api& a = l.api;
  std::string& e = l.error;
  l.ok = bind(lib, "curl_global_init", a.global_init, e) &&
         bind(lib, "curl_easy_init", a.easy_init, e) &&
         bind(lib, "curl_easy_setopt", a.easy_setopt, e) &&
         bind(lib, "curl_easy_perform", a.easy_perform, e) &&
         bind(lib, "curl_easy_cleanup", a.easy_cleanup, e) &&
         bind(lib, "curl_easy_getinfo", a.easy_getinfo, e) &&
         bind(lib, "curl_easy_reset", a.easy_reset, e) &&
         bind(lib, "curl_easy_strerror", a.easy_strerror, e) &&
         bind(lib, "curl_easy_escape", a.easy_escape, e) && bind(lib, "curl_free", a.free, e) &&
         bind(lib, "curl_slist_append", a.slist_append, e) &&
         bind(lib, "curl_slist_free_all", a.slist_free_all, e);
  return l;
}

const Loaded& loaded() {
  static const Loaded l = load();  // thread-safe, once
  return l;
}

const Api* api() {
  const Loaded& l = loaded();
  return l.ok ? &l.api : nullptr;
}

}  // namespace

namespace phoenix::providers {

std::string curl_load_error() {
  const Loaded& l = loaded();
  return l.ok ? std::string() : l.error;
}

}  // namespace phoenix::providers

extern "C" {

CURLcode curl_global_init(long flags) {
  const Api* a = api();
  return a ? a->global_init(flags) : CURLE_FAILED_INIT;
}

CURL* curl_easy_init() {
  const Api* a = api();
  return a ? a->easy_init() : nullptr;
}

// The one argument after `option` has the type libcurl reads for it, which the option's number
// range says (curl.h: CURLOPTTYPE_*): long, object pointer, function pointer, curl_off_t, blob.
CURLcode curl_easy_setopt(CURL* curl, CURLoption option, ...) {
  const Api* a = api();
  if (a == nullptr) return CURLE_FAILED_INIT;
  va_list args;
  va_start(args, option);
  CURLcode rc;
  if (option < CURLOPTTYPE_OBJECTPOINT) {
    rc = a->easy_setopt(curl, option, va_arg(args, long));
  } else if (option < CURLOPTTYPE_FUNCTIONPOINT) {
    rc = a->easy_setopt(curl, option, va_arg(args, void*));
  } else if (option < CURLOPTTYPE_OFF_T) {
    rc = a->easy_setopt(curl, option, va_arg(args, void (*)()));
  } else if (option < CURLOPTTYPE_BLOB) {
    rc = a->easy_setopt(curl, option, va_arg(args, curl_off_t));
  } else {
    rc = a->easy_setopt(curl, option, va_arg(args, void*));
  }
  va_end(args);
  return rc;
}

CURLcode curl_easy_perform(CURL* curl) {
  const Api* a = api();
  return a ? a->easy_perform(curl) : CURLE_FAILED_INIT;
}

void curl_easy_cleanup(CURL* curl) {
  if (const Api* a = api()) a->easy_cleanup(curl);
}

// Every CURLINFO_* takes a pointer to where the answer goes.
CURLcode curl_easy_getinfo(CURL* curl, CURLINFO info, ...) {
  const Api* a = api();
  if (a == nullptr) return CURLE_FAILED_INIT;
  va_list args;
  va_start(args, info);
  CURLcode rc = a->easy_getinfo(curl, info, va_arg(args, void*));
  va_end(args);
  return rc;
}

void curl_easy_reset(CURL* curl) {
  if (const Api* a = api()) a->easy_reset(curl);
}

const char* curl_easy_strerror(CURLcode code) {
  const Api* a = api();
  return a ? a->easy_strerror(code) : "libcurl is not loaded";
}

char* curl_easy_escape(CURL* curl, const char* text, int length) {
  const Api* a = api();
  return a ? a->easy_escape(curl, text, length) : nullptr;
}

void curl_free(void* p) {
  if (const Api* a = api()) a->free(p);
}

curl_slist* curl_slist_append(curl_slist* list, const char* text) {
  const Api* a = api();
  return a ? a->slist_append(list, text) : nullptr;
}

void curl_slist_free_all(curl_slist* list) {
  if (const Api* a = api()) a->slist_free_all(list);
}

}  // extern "C"
