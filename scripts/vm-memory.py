#!/usr/bin/env python3
"""Per-VM configure time and memory of meshward in Envoy, before and after
traffic and after a configuration change (docs/benchmarks.md, "In Envoy, per
VM").

usage: scripts/vm-memory.py KEPT_VARIANT_DIR MODULE.wasm [MODULE.wasm ...]
           [--starts K] [--requests N]

KEPT_VARIANT_DIR is a meshward variant directory kept by
`meshward-bench --variants meshward --keep` (its bootstrap `envoy.json` and
`filter-initial.json`). Each start copies it to a scratch directory, points
the filter at one MODULE (modules alternate, K starts each), runs Envoy (one
worker, CPU 0, log level info) and reads what the filter logs:

  1. "configuration accepted ... compiled in T ms, VM memory M MiB": one line
     per VM (Envoy configures the plugin in three VMs for one worker);
  2. N requests over one keep-alive connection, each with a path of its own
     (`/svc{k}/v{d}/orders/x{i}` across every service of the rule set), then
     "VM memory grew to M MiB while serving requests" (the worker's VM);
  3. the configuration rewritten with its last rule removed (an atomic
     rename, as ECDS from a file needs), the three accept lines again, and
     the same N requests again.

Prints one line per start and the medians per module. The upstream is not
started, so allowed requests end in 503 and denied ones in 403: both are
decided by the filter, which is what is measured.
"""

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import http.client

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ACCEPTED = re.compile(r"\]\[(\d+)\]\[info\].*configuration accepted.* compiled in ([0-9.]+) ms, VM memory ([0-9.]+) MiB")
GREW = re.compile(r"\]\[(\d+)\]\[info\].*VM memory grew to ([0-9.]+) MiB")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wasm_config(ecds):
    """The Wasm filter's `config` (VM and plugin configuration) inside an ECDS response."""
    return ecds["resources"][0]["typed_config"]["config"]


def read(log):
    try:
        with open(log, errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def wait_for(proc, log, pattern, count, seconds):
    deadline = time.time() + seconds
    while time.time() < deadline:
        found = pattern.findall(read(log))
        if len(found) >= count:
            return found
        if proc.poll() is not None:
            sys.exit(f"vm-memory: Envoy exited ({proc.returncode}); its log:\n{read(log)[-3000:]}")
        time.sleep(0.05)
    sys.exit(f"vm-memory: {count} lines matching {pattern.pattern!r} not seen in {log} after {seconds} s")


def load(port, requests, rules):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    statuses = {}
    for i in range(requests):
        path = f"/svc{(i * 7919) % rules}/v{i % 7}/orders/x{i}"
        conn.request("DELETE", path, headers={"Host": "bench"})
        response = conn.getresponse()
        response.read()
        statuses[response.status] = statuses.get(response.status, 0) + 1
        if response.getheader("connection", "").lower() == "close":
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.close()
    return statuses


def grown(log):
    return max((float(m) for _, m in GREW.findall(read(log))), default=None)


def start(kept, module, requests, envoy):
    work = tempfile.mkdtemp(prefix="meshward-vm-memory-")
    try:
        with open(os.path.join(kept, "envoy.json")) as f:
            bootstrap = json.load(f)
        with open(os.path.join(kept, "filter-initial.json")) as f:
            ecds = json.load(f)
        wasm = wasm_config(ecds)
        wasm["vm_config"]["code"]["local"]["filename"] = os.path.abspath(module)
        plugin = json.loads(wasm["configuration"]["value"])
        rules = sum(len(p["rules"]) for p in plugin["policies"])
        admin, listener = free_port(), free_port()
        bootstrap["admin"]["address"]["socket_address"]["port_value"] = admin
        lst = bootstrap["static_resources"]["listeners"][0]
        lst["address"]["socket_address"]["port_value"] = listener
        hcm = lst["filter_chains"][0]["filters"][0]["typed_config"]
        source = hcm["http_filters"][0]["config_discovery"]["config_source"]["path_config_source"]
        source["path"] = os.path.join(work, "filter.json")
        source["watched_directory"]["path"] = work
        with open(os.path.join(work, "filter.json"), "w") as f:
            json.dump(ecds, f)
        with open(os.path.join(work, "envoy.json"), "w") as f:
            json.dump(bootstrap, f)
        log = os.path.join(work, "envoy.log")
        proc = subprocess.Popen(
            ["taskset", "-c", "0", envoy, "-c", os.path.join(work, "envoy.json"), "--concurrency", "1",
             "--log-level", "info", "--log-path", log, "--base-id", str(admin)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            first = wait_for(proc, log, ACCEPTED, 3, 120)
            statuses = load(listener, requests, rules)
            time.sleep(0.2)
            after_load = grown(log)
            # A change: the last rule removed, written atomically.
            plugin["policies"][-1]["rules"].pop()
            wasm["configuration"]["value"] = json.dumps(plugin)
            tmp = os.path.join(work, "filter.json.tmp")
            with open(tmp, "w") as f:
                json.dump(ecds, f)
            os.rename(tmp, os.path.join(work, "filter.json"))
            second = wait_for(proc, log, ACCEPTED, 6, 120)[3:]
            load(listener, requests, rules)
            time.sleep(0.2)
            after_change_load = grown(log)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        return {
            "compile_ms": [float(ms) for _, ms, _ in first],
            "after_configure": max(float(m) for _, _, m in first),
            "after_requests": after_load,
            "after_change": max(float(m) for _, _, m in second),
            "after_change_requests": after_change_load,
            "statuses": statuses,
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kept")
    parser.add_argument("modules", nargs="+")
    parser.add_argument("--starts", type=int, default=3)
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--envoy", default=os.path.join(ROOT, ".venv", "bin", "envoy"))
    args = parser.parse_args()
    results = {m: [] for m in args.modules}
    print("module | start | compile ms (3 VMs) | MiB after configure | after requests | after change | after change + requests | statuses")
    for k in range(args.starts):
        for module in args.modules:
            r = start(args.kept, module, args.requests, args.envoy)
            results[module].append(r)
            fmt = lambda v: "-" if v is None else f"{v:.1f}"
            print(f"{os.path.basename(module)} | {k + 1} | {', '.join(f'{t:.1f}' for t in r['compile_ms'])} | "
                  f"{fmt(r['after_configure'])} | {fmt(r['after_requests'])} | {fmt(r['after_change'])} | "
                  f"{fmt(r['after_change_requests'])} | {r['statuses']}", flush=True)
    print()
    print("module | compile ms, median [min–max] | MiB after configure | after requests | after change | after change + requests (medians; '-' = no growth logged)")
    for module, rs in results.items():
        compile_ms = [t for r in rs for t in r["compile_ms"]]
        def med(key):
            values = [r[key] for r in rs if r[key] is not None]
            return f"{statistics.median(values):.1f}" if values else "-"
        print(f"{os.path.basename(module)} | {statistics.median(compile_ms):.1f} [{min(compile_ms):.1f}–{max(compile_ms):.1f}] | "
              f"{med('after_configure')} | {med('after_requests')} | {med('after_change')} | {med('after_change_requests')}")


if __name__ == "__main__":
    main()
