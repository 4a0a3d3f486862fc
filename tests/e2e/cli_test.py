#!/usr/bin/python3
"""End-to-end checks of the phoenix command line on the example estate: exit codes, JSON
output, atomic render directories and plans against snapshots.

usage: cli_test.py PHOENIX ESTATE_DIR
"""
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

PHOENIX, ESTATE = sys.argv[1], pathlib.Path(sys.argv[2])
FAILURES = []


def run(*args, cwd=None, extra_env=None):
    env = dict(os.environ, NO_COLOR="1")
    env.pop("PHOENIX_CONFIG_DIR", None)
    env.update(extra_env or {})
    return subprocess.run([PHOENIX, *args], capture_output=True, text=True, timeout=60,
                          cwd=cwd, env=env)


def check(cond, what):
    if not cond:
        FAILURES.append(what)
        print("FAIL:", what, file=sys.stderr)


def main():
    etc = str(ESTATE / "etc")
    with tempfile.TemporaryDirectory(prefix="phoenix-cli-") as tmp:
        tmp = pathlib.Path(tmp)

        r = run("-C", etc, "validate")
        check(r.returncode == 0, f"validate exits 0 (got {r.returncode}: {r.stderr})")
        r = run("-C", etc, "--output", "json", "validate")
        doc = json.loads(r.stdout)
        check(doc["ok"] is True and doc["errors"] == 0, "validate --output json reports ok")

        # render: output appears complete, and a second render replaces it atomically.
        out = tmp / "render"
        r = run("-C", etc, "render", "--out", str(out))
        check(r.returncode == 0, f"render exits 0: {r.stderr}")
        first = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
        check(pathlib.Path("traefik/dynamic_conf.yml") in first, "render writes dynamic_conf.yml")
        inodes = {p: p.stat().st_ino for p in out.rglob("*")}
        r = run("-C", etc, "render", "--out", str(out))
        second = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
        check(first == second, "a second render is byte-identical")
        check(not [p for p in tmp.iterdir() if p.name.startswith(".render.tmp")],
              "no staging directory is left behind")
        # ... and, its output being the same, writes nothing: every file keeps its inode.
        check(r.returncode == 0 and "nothing was written" in r.stdout,
              f"a second render says it wrote nothing: {r.stdout[-300:]} {r.stderr}")
        check({p: p.stat().st_ino for p in out.rglob("*")} == inodes,
              "a second render leaves every file and directory in place")
        r = run("-C", etc, "--output", "json", "render", "--out", str(out))
        check(r.returncode == 0 and json.loads(r.stdout)["changed"] is False,
              f"render --output json reports \"changed\": false: {r.stdout[:200]}")
        (out / "stray").write_text("x")
        r = run("-C", etc, "--output", "json", "render", "--out", str(out))
        check(r.returncode == 0 and json.loads(r.stdout)["changed"] is True,
              f"a render over a tree with a stray file changes it: {r.stdout[:200]}")
        check(not (out / "stray").exists(), "the stray file is gone with the old tree")

        # render refuses to replace a directory it did not write.
        foreign = tmp / "foreign"
        foreign.mkdir()
        (foreign / "precious.txt").write_text("keep me")
        r = run("-C", etc, "render", "--out", str(foreign))
        check(r.returncode == 1 and "refusing to replace" in r.stderr,
              f"render refuses a foreign directory: {r.returncode} {r.stderr}")
        check((foreign / "precious.txt").read_text() == "keep me", "foreign files untouched")

        # An invalid estate renders nothing.
        broken = tmp / "broken"
        shutil.copytree(ESTATE, broken)
        lxc = broken / "etc/phoenix_lxc_configs.json"
        lxc.write_text(lxc.read_text().replace('"memory_mb": 4096', '"memory_mb": "lots"', 1))
        bad_out = tmp / "bad-out"
        r = run("-C", str(broken / "etc"), "render", "--out", str(bad_out))
        check(r.returncode == 1, "render of an invalid estate exits 1")
        check("must be an integer" in r.stderr, "render prints the diagnostic")
        check(not bad_out.exists(), "render of an invalid estate writes nothing")

        # plan: everything is created on an empty platform; nothing changes on a converged one.
        r = run("-C", etc, "--output", "json", "plan")
        plan = json.loads(r.stdout)
        check(plan["summary"]["create"] == len(plan["actions"]) and plan["actions"],
              "plan against nothing creates everything")
        order = [a["id"] for a in plan["actions"]]
        for a in plan["actions"]:
            for d in a["depends_on"]:
                check(order.index(d) < order.index(a["id"]), f"{d} comes before {a['id']}")

        snap = tmp / "snapshot.json"
        r = run("-C", etc, "snapshot")
        snap.write_text(r.stdout)
        r = run("-C", etc, "plan", "--observed", str(snap))
        check(r.returncode == 0 and "No changes." in r.stdout, f"converged plan: {r.stdout}")

        # Drift shows as a field-level update.
        s = json.loads(snap.read_text())
        s["resources"]["lxc/101"]["fields"]["memory_mb"] = 2048
        s["resources"]["lxc/999"] = {"managed": True, "fields": {"hostname": "old"}}
        s["resources"]["vm/555"] = {"managed": False, "fields": {"hostname": "not-ours"}}
        snap.write_text(json.dumps(s))
        r = run("-C", etc, "plan", "--observed", str(snap))
        check("~ lxc/101" in r.stdout and "memory_mb: 2048 → 4096" in r.stdout,
              f"update shows the field diff: {r.stdout}")
        check("- lxc/999" in r.stdout, "a managed resource no longer in the estate is deleted")
        check("vm/555" not in r.stdout, "an unmanaged resource is left alone")

        # Shrinking a disk is refused.
        s["resources"]["lxc/101"]["fields"]["storage_size_gb"] = 64
        snap.write_text(json.dumps(s))
        r = run("-C", etc, "plan", "--observed", str(snap))
        check(r.returncode == 1 and "cannot shrink" in r.stdout, "shrinking a disk is a plan error")

        # plan <ids> keeps the guest and what it depends on.
        r = run("-C", etc, "--output", "json", "plan", "801")
        ids = {a["id"] for a in json.loads(r.stdout)["actions"]}
        check({"lxc/801", "lxc/103", "lxc/102"} <= ids and "vm/1002" not in ids,
              f"plan 801 selects 801 and its dependencies: {sorted(ids)}")
        r = run("-C", etc, "plan", "4242")
        check(r.returncode == 1 and "4242 is not defined" in r.stderr, "unknown id is an error")

        # graph in both formats.
        r = run("-C", etc, "graph")
        check(r.returncode == 0 and r.stdout.startswith("digraph phoenix {")
              and '"lxc/801" -> "lxc/103"' in r.stdout, "graph prints DOT with edges")
        r = run("-C", etc, "graph", "--format", "mermaid")
        check(r.stdout.startswith("graph LR") and "lxc_801 --> lxc_103" in r.stdout,
              "graph prints Mermaid with edges")

        r = run("-C", etc, "--output", "json", "graph", "--guests")
        graph = json.loads(r.stdout)
        check({"from": "lxc/801", "to": "lxc/103"} in graph["edges"]
              and all(n["kind"] in ("lxc", "vm", "stack") for n in graph["nodes"]),
              "graph --output json lists nodes and edges")

        # The estate cache: a first load fills it, the next one takes the estate from it and
        # prints the same; --no-cache and an empty PHOENIX_CACHE_DIR turn it off.
        cache = {"PHOENIX_CACHE_DIR": str(tmp / "cache")}
        plain = run("--no-cache", "-C", etc, "--output", "json", "plan")
        first = run("-v", "-C", etc, "--output", "json", "plan", extra_env=cache)
        second = run("-v", "-C", etc, "--output", "json", "plan", extra_env=cache)
        check(first.stderr.startswith("estate cache: miss (" + str(tmp / "cache") + "/")
              and second.stderr.startswith("estate cache: hit"),
              f"the cache misses, then hits: {first.stderr[:200]} / {second.stderr[:200]}")
        check(plain.stdout == first.stdout == second.stdout and plain.returncode == 0,
              "plan prints the same with and without the cache")
        r = run("-v", "--no-cache", "-C", etc, "validate", extra_env=cache)
        check(r.stderr.startswith("estate cache: off"), f"--no-cache: {r.stderr[:200]}")
        r = run("-v", "-C", etc, "validate", extra_env={"PHOENIX_CACHE_DIR": ""})
        check(r.stderr.startswith("estate cache: off"), f"PHOENIX_CACHE_DIR=: {r.stderr[:200]}")
        entries = list((tmp / "cache").iterdir())
        check(len(entries) == 1 and entries[0].stat().st_mode & 0o777 == 0o600,
              f"one entry, mode 0600: {entries}")

        # A missing configuration directory is a clear error, not a crash.
        r = run("-C", str(tmp / "nowhere"), "validate")
        check(r.returncode == 1 and "cannot read" in r.stderr and "hint:" in r.stderr,
              f"missing config dir: {r.stderr}")

    print(f"{'FAILED' if FAILURES else 'passed'}: {len(FAILURES)} failure(s)")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
