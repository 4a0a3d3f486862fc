#!/usr/bin/python3
"""`phoenix sync all`: stages, the journal, `history`, and the estate's lock.

Usage: sync_all_test.py PHOENIX ESTATE_DIR

On a copy of the example estate whose providers cannot be reached (no Proxmox token here):
  1. creating the guests fails with the reason, and every action that needs it, directly or
     not, is skipped, saying what it waited for; exit 2. `--output json` is one JSON event per line
     (run_started, stage_started, action_started, action_done, run_done).
  2. `history` lists both runs, newest first, and `history --run N` the actions of one, from the
     SQLite journal in --state-dir (mode 0600).
  3. While another process holds the estate's lock, `sync all` exits 3 and names the holder
     (pid, host, since when); once that process dies (SIGKILL, the lock never released by it),
     the next run takes the lock over and says so.
"""
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import traceback


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print(f"  ok: {what}", flush=True)


def main():
    phoenix, source = sys.argv[1:3]
    tmp = tempfile.mkdtemp(prefix="phoenix-sync-all-")
    holder = None
    try:
        estate = os.path.join(tmp, "estate")
        shutil.copytree(source, estate)
        etc = os.path.join(estate, "etc")
        state = os.path.join(tmp, "state")

        def phx(*args):
            return subprocess.run([phoenix, "-C", etc, "--state-dir", state, *args],
                                  capture_output=True, text=True, timeout=120)

        r = phx("sync", "all")
        check(r.returncode == 2, f"sync all exits 2 when a stage fails ({r.returncode})")
        lines = r.stdout.splitlines()
        check(lines[0].startswith("  guests/create: failed: ") and
              "token_secret_file" in lines[0],
              "creating the guests fails with its reason: " + lines[0])
        need = ", which did not succeed)"
        check("  infrastructure/dns: skipped (not run: it needs guests/create" + need in lines and
              "  swarm/join/1002: skipped (not run: it needs swarm/init" + need in lines and
              "  core/portainer: skipped (not run: it needs swarm/init, swarm/join/1002" + need
              in lines and lines[-1] == "not converged",
              "every action that needs a failed one is skipped and says which")
        check(os.stat(os.path.join(state, "journal.db")).st_mode & 0o077 == 0,
              "the journal is readable by its owner only")

        r = phx("--output", "json", "sync", "all")
        events = [json.loads(line) for line in r.stdout.splitlines()]
        kinds = [e["event"] for e in events]
        check(r.returncode == 2 and kinds[0] == "run_started" and kinds[-1] == "run_done" and
              kinds.count("stage_started") == 6 and "action_done" in kinds,
              "--output json: one event per line, " + ", ".join(sorted(set(kinds))))
        done = [e for e in events if e["event"] == "action_done"]
        check(done[0]["result"] == "failed" and all(e["result"] == "skipped" for e in done[1:]),
              "the events carry each action's result")

        r = phx("--output", "json", "history")
        runs = json.loads(r.stdout)["runs"]
        check([x["run"] for x in runs] == [2, 1] and all(x["result"] == "failed" for x in runs),
              "history lists both runs, newest first")
        r = phx("--output", "json", "history", "--run", "1")
        acts = json.loads(r.stdout)["runs"][1]["actions"]
        check(acts[0]["action"] == "guests/create" and acts[0]["result"] == "failed" and
              "token_secret_file" in acts[0]["error"] and len(acts) == len(done) and
              "token_secret_file" in acts[0]["report"]["error"],
              f"history --run 1 lists its {len(acts)} actions from the journal, with their reports")

        # The lock: held by another process (as a running sync all holds it).
        key = hashlib.sha256(os.path.realpath(etc).encode()).hexdigest()[:12]
        lock = os.path.join(state, f"lock-{key}")
        holder = subprocess.Popen(
            [sys.executable, "-c",
             "import fcntl, json, os, socket, sys, time\n"
             "f = open(sys.argv[1], 'r+')\n"
             "fcntl.flock(f, fcntl.LOCK_EX)\n"
             "f.truncate(0)\n"
             "f.write(json.dumps({'pid': os.getpid(), 'host': socket.gethostname(),"
             " 'since': int(time.time()), 'command': 'sync all'}))\n"
             "f.flush()\n"
             "print('held', flush=True)\n"
             "time.sleep(600)\n", lock],
            stdout=subprocess.PIPE, text=True)
        check(holder.stdout.readline().strip() == "held", "another process holds the lock")
        r = phx("sync", "all")
        check(r.returncode == 3 and f"is held by pid {holder.pid} on " in r.stderr and
              "(phoenix sync all); wait for it to finish" in r.stderr,
              "a second converge exits 3 and names the holder: " + r.stderr.strip())
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        holder = None
        r = phx("sync", "all")
        check(r.returncode == 2 and "did not finish; this run finishes its work" in r.stderr,
              "the lock of a process that died is taken over: " + r.stderr.strip())
        print("sync all: passed")
        return 0
    except Exception:
        traceback.print_exc()
        return 1
    finally:
        if holder:
            holder.kill()
            holder.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
