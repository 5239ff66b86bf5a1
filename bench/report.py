"""report.py: turns what bench/run collected in WORK_DIR into the markdown of bench/RESULTS.md.

    python3 bench/report.py WORK_DIR

Inputs: results.txt (RESULT lines, one per client per run), sizes.txt, outbox.md (the table of
`cargo run --release --example outbox_bench`), verify.txt (nginx's log of the connection check), machine.txt.
"""

import collections
import os
import re
import statistics
import sys

MIB = 1024 * 1024
BASELINE = "libcurl-c"
LABELS = {
    "librealer-c": "librealer, C, one by one",
    "libcurl-c": "libcurl, C, one by one (baseline)",
    "librealer-c-batch": "librealer, C, batches of 100",
    "librealer-python": "librealer Python binding, one by one",
    "requests-python": "Python requests.Session, one by one",
}
ORDER = list(LABELS)


def read(work, name):
    path = os.path.join(work, name)
    return open(path).read() if os.path.exists(path) else ""


def parse_results(text):
    runs = collections.defaultdict(dict)  # client -> run -> fields
    for line in text.splitlines():
        if not line.startswith("RESULT "):
            continue
        f = dict(kv.split("=", 1) for kv in line.split()[1:])
        n = int(f["n"])
        runs[f["client"]][int(f["run"])] = {
            "n": n,
            "cpu_us": float(f["cpu_s"]) * 1e6 / n,
            "user_us": float(f.get("user_s", "nan")) * 1e6 / n,
            "sys_us": float(f.get("sys_s", "nan")) * 1e6 / n,
            "wall_us": float(f["wall_s"]) * 1e6 / n,
            "rss_kb": int(f["maxrss_kb"]),
            "connections": int(f["connections"]),
        }
    return runs


def median(values):
    return statistics.median(values) if values else float("nan")


def paired_ratio(runs, client, key):
    """The median over runs of client/baseline, each run paired with the baseline's run of the same round."""
    base = runs.get(BASELINE, {})
    ratios = [r[key] / base[i][key] for i, r in runs.get(client, {}).items() if i in base and base[i][key] > 0]
    return median(ratios)


def parse_verify(text):
    """Per client: connections, requests, TLS versions and ciphers, statuses, mean feed-data body length (Content-Length)."""
    out = {}
    client = None
    line_re = re.compile(r'^(\d+) (\d+) (\S+) (\S+) (\d+) (\S+) "([^"]*)" (\S+)$')
    for line in text.splitlines():
        if line.startswith("== "):
            client = line[3:].strip()
            out[client] = {"conns": set(), "requests": 0, "tls": set(), "statuses": collections.Counter(), "feed_len": []}
            continue
        m = line_re.match(line)
        if not m or client is None:
            continue
        conn, _, proto, cipher, status, length, _ua, uri = m.groups()
        v = out[client]
        v["conns"].add(conn)
        v["requests"] += 1
        v["tls"].add(f"{proto} {cipher}")
        v["statuses"][status] += 1
        if (uri.endswith("/feed-data") or uri.endswith("/batches")) and length.isdigit():
            v["feed_len"].append(int(length))
    return out


def parse_sizes(text):
    sizes = {}
    deps = []
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "dep":
            deps.append((parts[1], int(parts[2]), parts[3]))
        elif parts[0] == "sections":
            sizes["sections"] = [(k, int(v)) for k, v in (x.rsplit(":", 1) for x in parts[1:])]
        else:
            sizes[parts[0]] = (int(parts[1]), int(parts[2]))
    return sizes, deps


def outbox_rate(outbox_md, prefix):
    for line in outbox_md.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells and cells[0].startswith(prefix) and len(cells) > 1:
            try:
                return float(cells[1])
            except ValueError:
                return None
    return None


def parse_diag(text):
    out = collections.defaultdict(dict)
    for line in text.splitlines():
        kind, *rest = line.split()
        f = dict(kv.split("=", 1) for kv in rest)
        if kind == "IR":
            out[f["client"]]["ir"] = int(f["per_reading"])
        elif kind == "PERF":
            out[f["client"]]["perf"] = {k: float(v) for k, v in f.items() if k != "client"}
        elif kind == "SYSCALLS":
            out[f["client"]]["syscalls"] = float(f["per_reading"])
            out[f["client"]]["top"] = f.get("top", "")
    return out


def fmt_ratio(x):
    return "n/a" if x != x else f"{x:.2f}x"


def main():
    work = sys.argv[1]
    machine = dict(line.split("=", 1) for line in read(work, "machine.txt").splitlines() if "=" in line)
    runs = parse_results(read(work, "results.txt"))
    verify = parse_verify(read(work, "verify.txt"))
    sizes, deps = parse_sizes(read(work, "sizes.txt"))
    outbox_md = read(work, "outbox.md").strip()
    diag = parse_diag(read(work, "diag.txt"))

    med = {}
    for c in ORDER:
        r = list(runs.get(c, {}).values())
        if not r:
            continue
        med[c] = {k: median([x[k] for x in r]) for k in ("cpu_us", "user_us", "sys_us", "wall_us", "rss_kb")}
        med[c]["n"] = r[0]["n"]
        med[c]["runs"] = len(r)
        med[c]["connections"] = sorted({x["connections"] for x in r})
        med[c]["cpu_ratio"] = paired_ratio(runs, c, "cpu_us")
        med[c]["wall_ratio"] = paired_ratio(runs, c, "wall_us")
        med[c]["rss_ratio"] = paired_ratio(runs, c, "rss_kb")
        med[c]["user_ratio"] = paired_ratio(runs, c, "user_us")
        med[c]["sys_ratio"] = paired_ratio(runs, c, "sys_us")

    p = print
    p("# librealer benchmark results")
    p()
    p("Produced by `bench/run` (see `bench/README.md`); do not edit by hand.")
    p()
    p(f"- Machine: {machine.get('machine', '?')}; {machine.get('kernel', '?')}")
    p(f"- Date: {machine.get('date', '?')}; librealer at {machine.get('commit', '?')}")
    p(f"- {machine.get('rustc', '?')}; {machine.get('gcc', '?')}; nginx {machine.get('nginx', '?')}")
    p(f"- {machine.get('libcurl', '?')}; {machine.get('python', '?')}")
    p(f"- {machine.get('params', '?')}; server: nginx, 1 worker, TLS 1.3, HTTP/1.1 keep-alive, fixed answers, loopback")
    p()
    p("## Clients")
    p()
    p("Client CPU (user + sys) and wall time of the measured phase (the readings, after the token), per reading;")
    p("peak RSS of the whole process. Medians over runs; the ratios are medians of per-round ratios to libcurl")
    p("(each round runs every client once, one after the other, in alternating order). Connections: TLS connections nginx accepted")
    p("per run (1 = token and every reading over one kept-alive connection).")
    p()
    p("| client | readings | CPU µs/reading | wall µs/reading | peak RSS MiB | CPU vs libcurl | wall vs libcurl | RSS vs libcurl | connections |")
    p("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for c in ORDER:
        if c not in med:
            continue
        m = med[c]
        conns = ",".join(str(x) for x in m["connections"])
        p(
            f"| {LABELS[c]} | {m['n']} | {m['cpu_us']:.1f} | {m['wall_us']:.1f} | {m['rss_kb'] / 1024:.1f} | "
            f"{fmt_ratio(m['cpu_ratio'])} | {fmt_ratio(m['wall_ratio'])} | {fmt_ratio(m['rss_ratio'])} | {conns} |"
        )
    p()
    p("The CPU column split into user and kernel (system) time. On loopback the kernel's share is mostly the TCP")
    p("exchange with nginx: sending a request also runs nginx's side of TCP and wakes nginx, in the client's time.")
    p()
    p("| client | user µs/reading | sys µs/reading | user vs libcurl | sys vs libcurl |")
    p("|---|---:|---:|---:|---:|")
    for c in ORDER:
        if c not in med:
            continue
        m = med[c]
        p(
            f"| {LABELS[c]} | {m['user_us']:.1f} | {m['sys_us']:.1f} | "
            f"{fmt_ratio(m['user_ratio'])} | {fmt_ratio(m['sys_ratio'])} |"
        )
    odd = sorted({c for c, r in runs.items() for x in r.values() if x["connections"] != 1})
    if odd:
        p()
        p(f"**Warning**: {', '.join(odd)} did not keep exactly one connection in every run: the comparison is unfair.")
    if "librealer-python" in med and "requests-python" in med:
        a, b = med["librealer-python"], med["requests-python"]
        p()
        p(
            f"Python: the binding uses {a['cpu_us'] / b['cpu_us']:.2f}x the CPU of requests per reading, "
            f"{a['wall_us'] / b['wall_us']:.2f}x its wall time and {a['rss_kb'] / b['rss_kb']:.2f}x its peak RSS "
            "(ratios of medians; the interpreter's own RSS is in both)."
        )

    if diag:
        p()
        p("## Where the time goes (counts, not times: the machine's noise does not touch them)")
        p()
        p("Per reading, as the difference between a long and a short run (start-up, handshake and token cancel")
        p("out): user-space instructions of all threads counted by callgrind (the kernel's work is not in them),")
        p("and system calls counted by `strace -f -c`.")
        p()
        p("| client | instructions/reading | vs libcurl | system calls/reading | system calls/reading, by name |")
        p("|---|---:|---:|---:|---|")
        base_ir = diag.get(BASELINE, {}).get("ir")
        for c in ORDER:
            if c not in diag:
                continue
            d = diag[c]
            ir = d.get("ir")
            ratio = fmt_ratio(ir / base_ir) if ir and base_ir else "n/a"
            top = ", ".join(x.replace(":", " ") for x in d.get("top", "").split(",") if x)
            p(f"| {LABELS[c]} | {ir if ir is not None else 'n/a':,} | {ratio} | {d.get('syscalls', float('nan')):.3g} | {top} |")

        perf = [c for c in ORDER if "perf" in diag.get(c, {})]
        if perf:
            p()
            p("## Where the CPU time goes, kernel included (samples, not counts)")
            p()
            p("The share of `perf record -e cpu-clock -g` samples of one whole run per client (start-up, handshake and")
            p("token included; they are a small part of a run of this length). A system call's share includes everything")
            p("the kernel did inside it: on loopback, sending runs nginx's side of TCP too (delivering the segment and")
            p("waking nginx). Switching out and back in is the CPU cost of waiting for the answer (`schedule`), not the")
            p("time spent waiting.")
            p()
            p("| client | kernel | in send | in receive | in poll | loopback delivery to nginx | waking nginx | switching out and back in |")
            p("|---|---:|---:|---:|---:|---:|---:|---:|")
            for c in perf:
                f = diag[c]["perf"]
                cells = " | ".join(f"{f.get(k, float('nan')):.1f}%" for k in ("kernel", "send", "recv", "poll", "deliver", "wake", "sleep"))
                p(f"| {LABELS[c]} | {cells} |")

    p()
    p("## Sizes")
    p()
    p("| artifact | bytes | MiB |")
    p("|---|---:|---:|")
    if "librealer.so" in sizes:
        full, stripped = sizes["librealer.so"]
        p(f"| librealer.so as cargo writes it | {full} | {full / MIB:.2f} |")
        p(f"| librealer.so stripped | {stripped} | {stripped / MIB:.2f} |")
        big = sorted(sizes.get("sections", []), key=lambda kv: -kv[1])[:6]
        for name, n in big:
            p(f"| &nbsp;&nbsp;of which {name} | {n} | {n / MIB:.2f} |")
    if "firmware_loop-static" in sizes:
        _, stripped = sizes["firmware_loop-static"]
        p(f"| firmware_loop with librealer.a linked in, stripped (libc dynamic) | {stripped} | {stripped / MIB:.2f} |")
    trio = [d for d in deps if re.match(r"lib(curl|ssl|crypto)\.so", d[0])]
    if trio:
        total = sum(d[1] for d in trio)
        names = " + ".join(f"{os.path.basename(d[2])}" for d in trio)
        p(f"| libcurl + libssl + libcrypto ({names}) | {total} | {total / MIB:.2f} |")
    others = [d for d in deps if not re.match(r"lib(c|m|pthread|dl|rt)\.so|ld-linux", d[0])]
    if others:
        total = sum(d[1] for d in others)
        p(f"| everything Debian's libcurl loads besides libc ({len(others)} libraries) | {total} | {total / MIB:.2f} |")

    installed = read(work, "sizes-installed.md").strip()
    if installed:
        p()
        p("### As installed (`bench/sizes-installed`: cargo-c's release build, the default and `system-sqlite`)")
        p()
        p(installed)

    floor = read(work, "floor.md").strip()
    if floor:
        p()
        p("### The floor under librealer's code (`bench/size-floor`)")
        p()
        p("Throwaway libraries doing the least that each part of librealer's stack does, built with the same")
        p("Cargo.lock, release profile and SQLite options (stripped):")
        p()
        p("\n".join(line for line in floor.splitlines() if line.startswith("|")))

    p()
    p("## Outbox")
    p()
    p("`cargo run --release --example outbox_bench` (bench/outbox_bench.rs; flush goes to realer-sim, not nginx):")
    p()
    p(outbox_md if outbox_md else "(not run)")

    p()
    p("## Targets")
    p()
    p("| target | measured | |")
    p("|---|---:|---|")

    def target(name, measured, ok):
        verdict = "n/a" if ok is None else ("PASS" if ok else "MISS")
        p(f"| {name} | {measured} | {verdict} |")

    if "librealer-c" in med and BASELINE in med:
        r = med["librealer-c"]["cpu_ratio"]
        target("one by one: client CPU per reading ≤ 0.7x libcurl", f"{r:.2f}x ({med['librealer-c']['cpu_us']:.1f} vs {med[BASELINE]['cpu_us']:.1f} µs)", r <= 0.7)
        r = med["librealer-c"]["wall_ratio"]
        target("one by one: wall time per reading ≤ 1.05x libcurl", f"{r:.2f}x ({med['librealer-c']['wall_us']:.1f} vs {med[BASELINE]['wall_us']:.1f} µs)", r <= 1.05)
    if "librealer-c-batch" in med:
        v = med["librealer-c-batch"]["cpu_us"]
        target("batches of 100: client CPU per reading ≤ 5 µs", f"{v:.2f} µs", v <= 5)
    if "librealer-c" in med and BASELINE in med:
        a, b = med["librealer-c"]["rss_kb"], med[BASELINE]["rss_kb"]
        target(f"peak RSS posting {med['librealer-c']['n']} readings ≤ 0.5x libcurl's", f"{a / b:.2f}x ({a / 1024:.1f} vs {b / 1024:.1f} MiB)", a / b <= 0.5)
    if "librealer.so" in sizes:
        s = sizes["librealer.so"][1]
        target("librealer.so stripped ≤ 1.5 MiB", f"{s / MIB:.2f} MiB", s <= 1.5 * MIB)
    rate = outbox_rate(outbox_md, "durable push, groups of 100")
    target("outbox: ≥ 20,000 durable pushes/s in groups of 100", "not run" if rate is None else f"{rate:,.0f}/s", None if rate is None else rate >= 20000)

    p()
    p("## Connection check")
    p()
    p("Each client once against a second nginx server that logs every request with its connection number")
    p("(200 readings one by one, or 1,000 in batches):")
    p()
    p("| client | requests | TLS connections | TLS | statuses | mean feed-data body bytes |")
    p("|---|---:|---:|---|---|---:|")
    for c in ORDER:
        if c not in verify:
            continue
        v = verify[c]
        statuses = ", ".join(f"{k}: {n}" for k, n in sorted(v["statuses"].items()))
        mean_len = sum(v["feed_len"]) / len(v["feed_len"]) if v["feed_len"] else 0
        p(f"| {LABELS[c]} | {v['requests']} | {len(v['conns'])} | {', '.join(sorted(v['tls']))} | {statuses} | {mean_len:.0f} |")

    p()
    p("<details><summary>Every run</summary>")
    p()
    p("| client | run | CPU µs/reading | user | sys | wall µs/reading | peak RSS KiB | connections |")
    p("|---|---:|---:|---:|---:|---:|---:|---:|")
    for c in ORDER:
        for i, r in sorted(runs.get(c, {}).items()):
            p(
                f"| {c} | {i} | {r['cpu_us']:.1f} | {r['user_us']:.1f} | {r['sys_us']:.1f} | {r['wall_us']:.1f} | "
                f"{r['rss_kb']} | {r['connections']} |"
            )
    p()
    p("</details>")


if __name__ == "__main__":
    main()
