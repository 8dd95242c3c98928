"""Turns bench/out/results.json into the Markdown tables of BENCHMARKS.md (bench/out/results.md)."""
import json
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
with open(os.path.join(ROOT, "bench", "out", "results.json")) as f:
    r = json.load(f)

lines = []
add = lines.append
crit = r["criterion_ns"]
add("### In process, per request (criterion mean; floor = `serde_json::Value` parse of the same input + serialising the same response)\n")
add("| path | create | floor | ratio | get | floor | ratio |")
add("|---|---|---|---|---|---|---|")
for path in ("direct", "aws-rest-v1", "aws-http-v2", "aws-http-v2-workload", "aws-alb", "azure-payload"):
    c, g = crit.get(f"create/{path}", {}), crit.get(f"get/{path}", {})
    def cell(row):
        if "path" not in row or "floor" not in row:
            return "n/a", "n/a", "n/a"
        return f"{row['path'] / 1000:.1f} µs", f"{row['floor'] / 1000:.1f} µs", f"{row['path'] / row['floor']:.1f}×"
    add(f"| {path} | " + " | ".join(cell(c)) + " | " + " | ".join(cell(g)) + " |")
add("")
py = r["python_ns"]
add("`aws-http-v2-workload` is the same ledger written as a team's own workload would be (a `tower::Service` over `http` types, served through `paracell_aws::run`'s door, `http::Workload`): its difference from `aws-http-v2` is what the neutral fast path buys.\n")
add("### Against the Python baseline (Powertools + pydantic, same events, in process)\n")
add("| request | Paracell | Python | Paracell is |")
add("|---|---|---|---|")
for op in ("create", "get"):
    for src, path in (("rest-v1", "aws-rest-v1"), ("http-v2", "aws-http-v2")):
        rust = crit.get(f"{op}/{path}", {}).get("path")
        python = py.get(f"{op}-{src}")
        if rust and python:
            add(f"| {op} via {src} | {rust / 1000:.1f} µs | {python / 1000:.1f} µs | {python / rust:.1f}× faster |")
add("")
add("### Every path against the Python baseline (its REST v1 handler where Python has no handler of that source)\n")
add("| path | create | Python | Paracell is | get | Python | Paracell is |")
add("|---|---|---|---|---|---|---|")
for path in ("direct", "aws-rest-v1", "aws-http-v2", "aws-alb", "azure-payload"):
    row = [path]
    for op in ("create", "get"):
        rust = crit.get(f"{op}/{path}", {}).get("path")
        python = py.get(f"{op}-http-v2" if path == "aws-http-v2" else f"{op}-rest-v1")
        row += [f"{rust / 1000:.1f} µs", f"{python / 1000:.1f} µs", f"{python / rust:.1f}×"] if rust and python else ["n/a"] * 3
    add("| " + " | ".join(row) + " |")
add("")
add("### Each adapter's own share (path minus direct) against its floor\n")
add("| path | create share | floor | ratio | get share | floor | ratio |")
add("|---|---|---|---|---|---|---|")
for path in ("aws-rest-v1", "aws-http-v2", "aws-alb", "azure-payload"):
    row = [path]
    for op in ("create", "get"):
        here, direct = crit.get(f"{op}/{path}", {}), crit.get(f"{op}/direct", {})
        if "path" in here and "floor" in here and "path" in direct:
            share = here["path"] - direct["path"]
            row += [f"{share / 1000:.1f} µs", f"{here['floor'] / 1000:.1f} µs", f"{share / here['floor']:.1f}×"]
        else:
            row += ["n/a"] * 3
    add("| " + " | ".join(row) + " |")
add("")
requests_file = os.path.join(ROOT, "bench", "out", "store-requests.json")
if os.path.exists(requests_file):
    with open(requests_file) as f:
        sr = json.load(f)
    add("### Database requests per answer, and create latency through local-cell on the stand-ins\n")
    add("| store | create | replay | GET | refused debit | create p50 | create p99 |")
    add("|---|---|---|---|---|---|---|")
    for store in ("dynamodb", "cosmos"):
        v = sr[store]
        def n(op):
            return f"{sum(v[op].values())} (" + ", ".join(f"{k} {c}" for k, c in v[op].items()) + ")"
        add(f"| {store} | {n('create')} | {n('replay')} | {n('get')} | {n('refused_debit')} | {v['create_p50_ms']:.2f} ms | {v['create_p99_ms']:.2f} ms |")
    add("")
cold = r["cold_start_ms"]
add("### Cold start (median of runs; exec → first completed invocation)\n")
add("| what | ms |")
add("|---|---|")
for k, v in cold.items():
    add(f"| {k} | {v:.1f} |")
add(f"\nlambda-cell starts {cold['python baseline'] / cold['lambda-cell']:.1f}× faster than the Python baseline.\n")
add("### Memory across invocations (RSS in KiB, GETs through a Lambda Runtime API stub)\n")
add("| process | after 1 | after 10% | after 50% | after all | peak (VmHWM) | invocations | seconds |")
add("|---|---|---|---|---|---|---|---|")
for k, v in r["rss"].items():
    at = [v["rss_kib_at"][key] for key in sorted(v["rss_kib_at"], key=int)]
    add(f"| {k} | " + " | ".join(str(x) for x in at) + f" | {v['peak_kib']} | {v['invocations']} | {v['seconds']:.0f} |")
rust_peak, py_peak = r["rss"]["lambda-cell"]["peak_kib"], r["rss"]["python baseline"]["peak_kib"]
add(f"\nPeak RSS: lambda-cell {rust_peak} KiB, Python {py_peak} KiB ({rust_peak / py_peak:.2f} of it).\n")
add("### Binary sizes (stripped, release)\n")
add("| binary | bytes |")
add("|---|---|")
for k, v in r["sizes_bytes"].items():
    add(f"| {k} | {v:,} ({v / 1048576:.1f} MiB) |")
add("")
add("### Load on azure-cell (wrk, 2 threads, 32 connections, loopback; GET of one transaction)\n")
add("| mode | requests | req/s | p50 | p99 | errors | RSS before | RSS after | peak |")
add("|---|---|---|---|---|---|---|---|---|")
for k, v in r["load"].items():
    add(f"| {k} | {v['requests']} | {v['rps']:.0f} | {v['p50_ms']:.2f} ms | {v['p99_ms']:.2f} ms | {v['errors']} | {v['rss_before_kib']} KiB | {v['rss_after_kib']} KiB | {v['peak_kib']} KiB |")
if "edge_load" in r:
    d, e = r["edge_load"]["direct"], r["edge_load"]["edge"]
    add("")
    add("### The edge router on loopback (wrk, 2 threads, 32 connections; GET of one transaction)\n")
    add("| path | requests | req/s | p50 | p99 | errors | router RSS before | after | peak |")
    add("|---|---|---|---|---|---|---|---|---|")
    if "direct_one" in r["edge_load"]:
        d1, e1 = r["edge_load"]["direct_one"], r["edge_load"]["edge_one"]
        add(f"| local-cell alone, 1 connection | {d1['requests']} | {d1['rps']:.0f} | {d1['p50_ms']:.3f} ms | {d1['p99_ms']:.3f} ms | {d1['errors']} | | | |")
        add(f"| edge-router → local-cell, 1 connection | {e1['requests']} | {e1['rps']:.0f} | {e1['p50_ms']:.3f} ms | {e1['p99_ms']:.3f} ms | {e1['errors']} | | | |")
    add(f"| local-cell alone | {d['requests']} | {d['rps']:.0f} | {d['p50_ms']:.2f} ms | {d['p99_ms']:.2f} ms | {d['errors']} | | | |")
    add(f"| edge-router → local-cell | {e['requests']} | {e['rps']:.0f} | {e['p50_ms']:.2f} ms | {e['p99_ms']:.2f} ms | {e['errors']} | {e['rss_before_kib']} KiB | {e['rss_after_kib']} KiB | {e['peak_kib']} KiB |")
    add("")
    add(f"Saturated: throughput ratio {e['rps'] / d['rps']:.2f}; added latency p50 {e['p50_ms'] - d['p50_ms']:.2f} ms, p99 {e['p99_ms'] - d['p99_ms']:.2f} ms.")
    if "direct_one" in r["edge_load"]:
        add(f"One connection: throughput ratio {e1['rps'] / d1['rps']:.2f}; added latency p50 {e1['p50_ms'] - d1['p50_ms']:.3f} ms.")
text = "\n".join(lines) + "\n"
with open(os.path.join(ROOT, "bench", "out", "results.md"), "w") as f:
    f.write(text)
print(text)
