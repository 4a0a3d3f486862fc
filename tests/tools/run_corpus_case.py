#!/usr/bin/python3
"""Runs `phoenix validate` on one broken estate and compares its output with the case's files.

A case directory holds an estate (etc/, and stacks/ and bin/ when needed) and:
  expected.txt   the exact text phoenix prints on stderr (diagnostics and summary)
  expected.json  optional: the exact `--output json` document
  expected-exit  optional: the exit code, when not 1 (the compatibility cases exit 0)
Set PHOENIX_UPDATE_CORPUS=1 to rewrite expected.txt.

validate runs three times: without the estate cache, then twice through a cache of its own (the
first fills it, the second must take its answer from it: `-v` says "estate cache: hit"); all
three must print the expected text.
"""
import difflib
import json
import os
import pathlib
import subprocess
import sys
import tempfile


def main():
    phoenix, case = sys.argv[1], pathlib.Path(sys.argv[2])
    env = dict(os.environ, NO_COLOR="1")
    env.pop("PHOENIX_CONFIG_DIR", None)
    run = subprocess.run([phoenix, "--no-cache", "-C", "etc", "validate"], cwd=case, env=env,
                         capture_output=True, text=True, timeout=60)
    expected_file = case / "expected.txt"
    if os.environ.get("PHOENIX_UPDATE_CORPUS") == "1":
        expected_file.write_text(run.stderr)
    expected = expected_file.read_text()
    ok = True
    exit_file = case / "expected-exit"
    want_exit = int(exit_file.read_text()) if exit_file.exists() else 1
    runs = [("without the cache", run)]
    with tempfile.TemporaryDirectory(prefix="phoenix-corpus-cache.") as cache:
        cached_env = dict(env, PHOENIX_CACHE_DIR=cache)
        for what, verbose in (("filling the cache", []), ("from the cache", ["-v"])):
            r = subprocess.run([phoenix, *verbose, "-C", "etc", "validate"], cwd=case,
                               env=cached_env, capture_output=True, text=True, timeout=60)
            if verbose:
                first, _, rest = r.stderr.partition("\n")
                if not first.startswith("estate cache: hit"):
                    print(f"{case.name}: the second cached run did not hit: {first}",
                          file=sys.stderr)
                    ok = False
                r = subprocess.CompletedProcess(r.args, r.returncode, r.stdout, rest)
            runs.append((what, r))
    for what, r in runs:
        if r.returncode != want_exit:
            print(f"{case.name} ({what}): exit code {r.returncode}, expected {want_exit}",
                  file=sys.stderr)
            ok = False
        if r.stderr != expected:
            print(f"{case.name} ({what}): diagnostics differ from expected.txt:", file=sys.stderr)
            sys.stderr.writelines(difflib.unified_diff(
                expected.splitlines(True), r.stderr.splitlines(True), "expected", "actual"))
            ok = False
    json_file = case / "expected.json"
    if json_file.exists():
        js = subprocess.run([phoenix, "-C", "etc", "--output", "json", "validate"], cwd=case,
                            env=env, capture_output=True, text=True, timeout=60)
        if json.loads(js.stdout) != json.loads(json_file.read_text()):
            print(f"{case.name}: --output json differs from expected.json", file=sys.stderr)
            ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
