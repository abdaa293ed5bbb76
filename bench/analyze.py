#!/usr/bin/env python3
"""Helpers of bench/run.

  analyze.py table OUTDIR   read OUTDIR/meta and OUTDIR/<host>.<workload>.log, print the markdown table
  analyze.py tree PID       print PID and all its descendants (from /proc), one per line
  analyze.py mem PID        print "BENCH idle_* value" lines: VmRSS and PSS summed over PID's tree
  analyze.py cpu PID        print the CPU time (utime + stime, seconds) summed over PID's tree
  analyze.py sipp CSV NAME CALLS   print "BENCH NAME_* value" lines from a sipp -trace_stat file;
                            exit status 0 when fewer than 0.1% of CALLS did not succeed
  analyze.py probe PORT RATE SECONDS MS   send RATE OPTIONS/s for SECONDS to 127.0.0.1:PORT (UDP,
                            no retransmission) and print "BENCH late_* / async_late_*" lines: the
                            response times minus MS (the lateness), in ms
  analyze.py dmqwait SECONDS NODES [--ksrhost] SPEC...   wait until every DMQ node SPEC lists every
                            node of NODES (ip:port,ip:port,...) as active (--ksrhost: and, on ksr,
                            as a KSRHost peer); SPEC = ksr:http://IP:PORT (its dmq.list_nodes over
                            HTTP) or kamailio:/dir/ctl.sock (kamcmd); prints the seconds waited
  analyze.py dmqkill NODE PIDS SECONDS MS SPEC...   SIGKILL the PIDS (comma-separated), then poll
                            the SPECs every MS until none lists NODE (ip:port) as active; prints
                            "BENCH dmq_detect_s seconds" (or dmq_detect_timeout)
  analyze.py dmqflush DIR NODE IP:PORT   send KDMQ "flush" on channel bench to IP:PORT until every
                            Lua state with a DIR/dmq.NODE.*.lat file has answered
  analyze.py dmqcount DIR RUN   print "delivered duplicates" of run RUN (tags RUN-<n>), B and C summed
  analyze.py dmqlat DIR RUN NAME   print "BENCH NAME_* value" lines: deliveries and latency
                            p50/p99/max (ms) of run RUN

Hosts: "kamailio" and "ksr". The workloads log lines containing "BENCH <name> <value>".
"""
import math
import os
import re
import sys

BENCH = re.compile(r"BENCH (\S+) (\S+)")
HOSTS = ("kamailio", "ksr")
# log lines that look like errors but are not: Kamailio's TCP workers when the main process
# stops them (SIGTERM at the end of a SIP workload);
# Kamailio's dmq when two processes register the channel of their first bcast_message at once
# (once per node, in the warm-up: that one broadcast is not sent)
IGNORED = ("receive_fd(): EOF on", "register_dmq_peer(): peer already exists",
           "ki_dmq_bcast_message(): error in register_dmq_peer")
NO_RATIO = ("drift first→last tick, ppm", "drift least-squares, ppm", "processes")  # rows whose ratio would mean nothing


# ---------------------------------------------------------------- processes

def children_map():
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # the command may contain spaces and parentheses: ppid is the 2nd field after the last ')'
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(d))
    return kids


def tree(pid):
    kids = children_map()
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def read_kb(path, field):
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def mem(pid):
    pids = [p for p in tree(pid) if os.path.exists(f"/proc/{p}")]
    rss = sum(read_kb(f"/proc/{p}/status", "VmRSS") or 0 for p in pids)
    pss_values = [read_kb(f"/proc/{p}/smaps_rollup", "Pss") for p in pids]
    print(f"BENCH idle_procs {len(pids)}")
    print(f"BENCH idle_rss_mb {rss / 1024:.3f}")
    if all(v is not None for v in pss_values):
        print(f"BENCH idle_pss_mb {sum(pss_values) / 1024:.3f}")


def cpu(pid):
    """utime + stime of PID and its descendants, in seconds. /proc/PID/stat of a process
    counts all its threads."""
    total = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # fields[0] is field 3 (state)
        total += int(fields[11]) + int(fields[12])    # fields 14 and 15: utime, stime
    print(f"{total / os.sysconf('SC_CLK_TCK'):.2f}")


# ---------------------------------------------------------------- sipp

def sipp(csv_path, name, calls):
    """The last line of a sipp -trace_stat file holds the cumulative counters of the run."""
    with open(csv_path, errors="replace") as f:
        lines = [line.rstrip("\n").split(";") for line in f if line.strip()]
    col = dict(zip(lines[0], lines[-1]))
    ok, failed = int(col["SuccessfulCall(C)"]), int(col["FailedCall(C)"])
    created = int(col["OutgoingCall(C)"])
    # StartTime and CurrentTime are "date<TAB>time<TAB>epoch"
    seconds = float(col["CurrentTime"].split("\t")[-1]) - float(col["StartTime"].split("\t")[-1])
    print(f"BENCH {name}_ok {ok}")
    print(f"BENCH {name}_failed {failed}")
    print(f"BENCH {name}_created {created}")
    print(f"BENCH {name}_calls {calls}")
    print(f"BENCH {name}_seconds {seconds:.3f}")
    return 0 if (calls - ok) * 1000 < calls else 1


def probe(port, rate, seconds, ms):
    """A small SIP client for the lateness runs (sipp's response times are whole milliseconds,
    in steps of its clock tick): OPTIONS at a fixed rate over one UDP socket, each with its own
    Call-ID and branch, never retransmitted; a reply is matched by its Call-ID and timed with
    time.perf_counter() when it is read. Calls unanswered 1 s after the last send fail."""
    import select
    import socket
    import time
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.bind(("127.0.0.1", 0))
    lport = sock.getsockname()[1]
    dest = ("127.0.0.1", port)
    n = int(rate * seconds)
    sent, times = {}, []
    tag = f"{os.getpid()}x{int(time.time())}"

    def request(i):
        return (f"OPTIONS sip:bench@127.0.0.1:{port} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{lport};branch=z9hG4bK-{tag}-{i}\r\n"
                f"From: probe <sip:probe@127.0.0.1:{lport}>;tag={i}\r\n"
                f"To: <sip:bench@127.0.0.1:{port}>\r\n"
                f"Call-ID: {tag}-{i}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
                f"User-Agent: bench-probe\r\nContent-Length: 0\r\n\r\n").encode()

    def read_replies(timeout):
        r, _, _ = select.select([sock], [], [], max(0.0, timeout))
        while r:
            try:
                data = sock.recv(65535, socket.MSG_DONTWAIT)
            except BlockingIOError:
                break
            now = time.perf_counter()
            m = re.search(rb"\r\nCall-ID: *" + tag.encode() + rb"-(\d+)\r\n", data, re.I)
            if m and data.startswith(b"SIP/2.0 200 ") and int(m.group(1)) in sent:
                times.append(now - sent.pop(int(m.group(1))))

    start = time.perf_counter()
    for i in range(n):
        due = start + i / rate
        while True:
            now = time.perf_counter()
            if now >= due:
                break
            read_replies(due - now)
        sent[i] = time.perf_counter()
        sock.sendto(request(i), dest)
        read_replies(0)
    end = time.perf_counter() + 1.0
    while sent and time.perf_counter() < end:
        read_replies(end - time.perf_counter())
    late = sorted(t * 1e3 - ms for t in times)
    print(f"BENCH late_calls {n}")
    print(f"BENCH late_ok {len(late)}")
    print(f"BENCH late_seconds {time.perf_counter() - start - 1.0:.3f}")
    print(f"BENCH async_late_n {len(late)}")
    if late:
        print(f"BENCH async_late_min {late[0]:.3f}")
        print(f"BENCH async_late_p50 {percentile(late, 50):.3f}")
        print(f"BENCH async_late_p99 {percentile(late, 99):.3f}")
        print(f"BENCH async_late_max {late[-1]:.3f}")
    return 0


# ---------------------------------------------------------------- dmq

def dmq_nodes(spec, ksrhost=False):
    """{ "ip:port": status } as node SPEC lists them, or None when it does not answer.
    SPEC: ksr:http://IP:PORT (dmq.list_nodes, JSON-RPC over HTTP) or kamailio:SOCKET (kamcmd).
    With ksrhost (ksr only), a peer not (yet) known as a KSRHost node counts as "not_ksrhost"."""
    import http.client
    import json
    import subprocess
    kind, _, where = spec.partition(":")
    try:
        if kind == "ksr":
            hostport = where.split("//", 1)[-1]
            conn = http.client.HTTPConnection(hostport, timeout=1)
            body = json.dumps({"jsonrpc": "2.0", "method": "dmq.list_nodes", "params": [], "id": 1})
            conn.request("POST", "/RPC", body, {"Content-Type": "application/json"})
            reply = json.loads(conn.getresponse().read())
            conn.close()
            return {f"{n['host']}:{n['port']}": ("not_ksrhost" if ksrhost and not n.get("local") and not n.get("ksrhost")
                                                 else n["status"]) for n in reply.get("result", [])}
        out = subprocess.run([os.environ.get("KAMCMD", "kamcmd"), "-s", f"unix:{where}", "dmq.list_nodes"],
                             capture_output=True, text=True, timeout=2).stdout
        nodes, host, port = {}, None, None
        for line in out.splitlines():
            k, _, v = line.strip().partition(":")
            v = v.strip()
            if k == "host":
                host = v
            elif k == "port":
                port = v
            elif k == "status" and host:
                nodes[f"{host}:{port}"] = v
        return nodes
    except (OSError, ValueError, KeyError, subprocess.SubprocessError):
        return None


def dmq_wait(seconds, nodes, specs):
    """Until every spec lists every node as active; a first argument --ksrhost also waits until
    the ksr nodes know each other as KSRHost nodes (the peers they fast-ping)."""
    import time
    want = nodes.split(",")
    ksrhost = specs[:1] == ["--ksrhost"]
    specs = specs[1:] if ksrhost else specs
    start = time.monotonic()
    while True:
        seen = [dmq_nodes(s, ksrhost) for s in specs]
        if all(v and all(v.get(n) == "active" for n in want) for v in seen):
            print(f"{time.monotonic() - start:.2f}")
            return 0
        if time.monotonic() - start > seconds:
            sys.stderr.write(f"dmqwait: not converged after {seconds} s: {seen}\n")
            return 1
        time.sleep(0.1)


def dmq_kill(node, pids, seconds, ms, specs):
    """SIGKILL pids, then poll the specs until none lists node as active."""
    import signal
    import time
    start = time.monotonic()
    for p in pids.split(","):
        try:
            os.kill(int(p), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass
    while time.monotonic() - start < seconds:
        seen = [dmq_nodes(s) for s in specs]
        if all(v is not None and v.get(node) != "active" for v in seen):
            print(f"BENCH dmq_detect_s {time.monotonic() - start:.3f}")
            return 0
        time.sleep(ms / 1000.0)
    print(f"BENCH dmq_detect_timeout {seconds}")
    return 1


def dmq_flush(outdir, node, target):
    """KDMQ 'flush' on channel bench until every Lua state of node that wrote a file answered
    "200 FLUSHED <state> <count>" (the states get the requests in turn: round robin in ksr,
    the socket's wake-up order in Kamailio)."""
    import glob
    import select
    import socket
    import time
    ip, port = target.rsplit(":", 1)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    lport = sock.getsockname()[1]
    prefix = os.path.join(outdir, f"dmq.{node}.")
    flushed = set()
    tag = f"flush{os.getpid()}x{int(time.time() * 1000)}"
    deadline = time.monotonic() + 10
    i = 0
    while time.monotonic() < deadline:
        states = {f[len(prefix):-4] for f in glob.glob(prefix + "*.lat")}
        if i >= 4 and states <= flushed:
            return 0
        i += 1
        req = (f"KDMQ sip:bench@{ip}:{port} SIP/2.0\r\n"
               f"Via: SIP/2.0/UDP 127.0.0.1:{lport};branch=z9hG4bK-{tag}-{i}\r\n"
               f"From: <sip:bench-flush@127.0.0.1:{lport}>;tag={tag}\r\n"
               f"To: <sip:bench@{ip}:{port}>\r\nCall-ID: {tag}-{i}\r\nCSeq: 1 KDMQ\r\n"
               f"Max-Forwards: 1\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nflush").encode()
        sock.sendto(req, (ip, int(port)))
        end = time.monotonic() + 0.5
        while time.monotonic() < end:
            r, _, _ = select.select([sock], [], [], max(0.0, end - time.monotonic()))
            if not r:
                break
            data = sock.recv(65535).decode(errors="replace")
            m = re.match(r"SIP/2\.0 200 FLUSHED (\S+) ", data)
            if m:
                flushed.add(m.group(1))
            if f"Call-ID: {tag}-{i}\r\n" in data:
                break
    sys.stderr.write(f"dmqflush: {node}: states {sorted(states - flushed)} did not answer\n")
    return 1


def dmq_read(outdir, run):
    """{node: {call number: [latency µs, ...]}} of run RUN from the receivers' files."""
    import glob
    want = run + "-"
    out = {}
    for path in glob.glob(os.path.join(outdir, "dmq.*.lat")):
        node = os.path.basename(path).split(".")[1]
        calls = out.setdefault(node, {})
        with open(path, errors="replace") as f:
            for line in f:
                if line.startswith(want):
                    parts = line.split()
                    if len(parts) == 2:
                        calls.setdefault(parts[0][len(want):], []).append(int(float(parts[1])))
    return out


def dmq_count(outdir, run):
    got = dmq_read(outdir, run)
    delivered = sum(len(c) for c in got.values())
    dups = sum(len(v) - 1 for c in got.values() for v in c.values())
    print(f"{delivered} {dups}")


def dmq_lat(outdir, run, name):
    got = dmq_read(outdir, run)
    lat = sorted(v[0] / 1000.0 for c in got.values() for v in c.values())
    for node in sorted(got):
        print(f"BENCH {name}_delivered_{node} {len(got[node])}")
    if lat:
        print(f"BENCH {name}_lat_p50 {percentile(lat, 50):.3f}")
        print(f"BENCH {name}_lat_p99 {percentile(lat, 99):.3f}")
        print(f"BENCH {name}_lat_max {lat[-1]:.3f}")


# ---------------------------------------------------------------- statistics

def percentile(sorted_values, p):
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return float("nan")
    k = max(0, min(len(sorted_values) - 1, math.ceil(p / 100.0 * len(sorted_values)) - 1))
    return sorted_values[k]


def tick_stats(ticks, interval):
    """Lateness against the ideal schedule start + k*interval, the start being the best-fit
    minimum (the latest start for which no tick is early), and drift of the mean period."""
    n = len(ticks)
    if n < 2:
        return None
    offsets = [t - k * interval for k, t in enumerate(ticks)]
    start = min(offsets)
    late = sorted(o - start for o in offsets)
    drift = ((ticks[-1] - ticks[0]) / ((n - 1) * interval) - 1.0) * 1e6
    # Least-squares slope of tick time against tick index: the mean period, not swayed by a
    # late first or last tick (the first callback also pays for warming up the script).
    mean_k = (n - 1) / 2.0
    mean_t = sum(ticks) / n
    slope = sum((k - mean_k) * (t - mean_t) for k, t in enumerate(ticks)) / sum((k - mean_k) ** 2 for k in range(n))
    drift_fit = (slope / interval - 1.0) * 1e6
    period_err = sorted(abs(b - a - interval) for a, b in zip(ticks, ticks[1:]))
    return {
        "jitter": percentile(period_err, 99) * 1e3,
        "p50": percentile(late, 50) * 1e3,
        "p99": percentile(late, 99) * 1e3,
        "max": late[-1] * 1e3,
        "drift": drift,
        "drift_fit": drift_fit,
        "n": n,
    }


# ---------------------------------------------------------------- table

def read_meta(outdir):
    meta = {}
    with open(os.path.join(outdir, "meta")) as f:
        for line in f:
            if "=" in line:
                k, v = line.rstrip("\n").split("=", 1)
                meta[k] = v
    return meta


def parse_log(path):
    """Returns (values, ticks, error lines) of one host run, or None if the log is missing."""
    if not os.path.exists(path):
        return None
    values, ticks, errors = {}, [], []
    with open(path, errors="replace") as f:
        for line in f:
            m = BENCH.search(line)
            if m:
                name, value = m.group(1), m.group(2)
                if name == "tick":
                    ticks.append(float(value))
                elif name == "error":
                    errors.append(line.strip())
                else:
                    try:
                        values[name] = float(value)
                    except ValueError:
                        errors.append(line.strip())
            elif re.search(r"\b(ERROR|CRITICAL|ALERT|error:)", line) and not any(i in line for i in IGNORED):
                errors.append(line.strip())
    return values, ticks, errors


def fmt(v, digits):
    if v is None:
        return "FAILED"
    if isinstance(v, float) and math.isnan(v):
        return "n/a"
    if abs(v) >= 10000 and digits <= 1:
        return f"{v:,.0f}"
    return f"{v:,.{digits}f}"


def table(outdir):
    meta = read_meta(outdir)
    hosts_run = meta.get("hosts", "").split()
    t10, t100 = int(meta["ticks_10ms"]), int(meta["ticks_100ms"])
    rows = []  # (label, digits, {host: value})
    notes = []

    workloads_run = meta.get("workloads", "pv mqueue rtimer10ms rtimer100ms idle").split()

    def get(host, workload):
        if host not in hosts_run or workload not in workloads_run:
            return None
        if (host, workload) in (("kamailio", "async-sleep"), ("kamailio", "dmq-route")):
            return None  # not run: no KSR.async.ms_sleep, no dmq channel_route in Kamailio
        r = parse_log(os.path.join(outdir, f"{host}.{workload}.log"))
        if r is None:
            if not workload.startswith("dmq-"):  # the dmq-* need kamcmd, else not run
                notes.append(f"{host}: no log for workload {workload}")
            return None
        values, ticks, errors = r
        if workload.startswith("dmq-"):  # the nodes' own logs
            for node in "ABC":
                nr = parse_log(os.path.join(outdir, f"{host}.{workload}.{node}.log"))
                if nr is not None:
                    errors.extend(f"node {node}: {e}" for e in nr[2])
        for e in errors[:5]:
            notes.append(f"{host} {workload}: {e}")
        return values, ticks

    data = {h: {w: get(h, w) for w in ("pv", "mqueue", "rtimer10ms", "rtimer100ms", "idle",
                                       "sip-udp", "sip-udp-max", "sip-tcp", "async-task", "async-ms",
                                       "async-sleep", "dmq-bcast", "dmq-route", "dmq-fail")} for h in HOSTS}

    def value(host, workload, name):
        d = data[host][workload]
        return None if d is None else d[0].get(name)

    def row(label, digits, workload, name):
        if workload in workloads_run:
            rows.append((label, digits, {h: value(h, workload, name) for h in HOSTS}))

    pv_n = value("ksr", "pv", "pv_n") or value("kamailio", "pv", "pv_n")
    n_txt = f"{pv_n:,.0f} calls" if pv_n else "calls"
    row(f"KSR.pv.get(\"$var(x)\"), ns/call ↓ ({n_txt}, empty loop subtracted)", 1, "pv", "pv_get_ns")
    row(f"KSR.pv.seti(\"$var(x)\", i), ns/call ↓", 1, "pv", "pv_seti_ns")
    row("mq_add addmode 0, size=1000, ops/s ↑", 0, "mqueue", "mq_add0_ops")
    row("mq_fetch + mqk_get + mqv_get, size=1000, ops/s ↑", 0, "mqueue", "mq_fetch_ops")
    row("mq_add addmode 0 into the emptied size=1000 queue (the refill of the row above), ops/s ↑", 0, "mqueue", "mq_fill_ops")
    row("mq_add addmode 2, 20,000 cycling keys, ops/s ↑", 0, "mqueue", "mq_add2_ops")
    row("mq_add addmode 2, same 20,000 keys in pseudo-random order, ops/s ↑", 0, "mqueue", "mq_add2r_ops")

    for workload, ms, n in (("rtimer10ms", 10, t10), ("rtimer100ms", 100, t100)):
        if workload not in workloads_run:
            continue
        stats = {}
        for h in HOSTS:
            d = data[h][workload]
            if d is None:
                stats[h] = None
                continue
            ticks = d[1][:n]
            if len(ticks) < n:
                notes.append(f"{h} {workload}: only {len(ticks)} of {n} ticks logged")
            stats[h] = tick_stats(ticks, ms / 1000.0)
        label = f"rtimer {ms} ms ({n} ticks)"
        for key, what, digits in (("p50", "lateness p50, ms ↓", 3), ("p99", "lateness p99, ms ↓", 3),
                                  ("max", "lateness max, ms ↓", 3), ("drift", "drift first→last tick, ppm", 1),
                                  ("drift_fit", "drift least-squares, ppm", 1),
                                  ("jitter", "period error p99 (abs(Δt − interval)), ms ↓", 3)):
            rows.append((f"{label}: {what}", digits,
                         {h: (stats[h][key] if stats[h] else None) for h in HOSTS}))

    idle_s = meta.get("idle_seconds", "3")
    row(f"idle (samples/rtimer.lua timers, {idle_s} s): VmRSS summed over processes, MB ↓", 1, "idle", "idle_rss_mb")
    row("idle: PSS summed over processes, MB ↓", 1, "idle", "idle_pss_mb")
    row("idle: processes", 0, "idle", "idle_procs")

    sip_rate, sip_s = int(meta.get("sip_rate", "0")), meta.get("sip_seconds", "?")
    for workload, what in (("sip-udp", "UDP"), ("sip-tcp", "TCP, one connection")):
        if workload not in workloads_run:
            continue
        vals = {}
        for h in HOSTS:
            v = data[h][workload][0] if data[h][workload] else {}
            ok, calls = v.get("sip_cpu_ok"), v.get("sip_cpu_calls")
            if ok and "sip_cpu0_s" in v and "sip_cpu1_s" in v:
                vals[h] = (v["sip_cpu1_s"] - v["sip_cpu0_s"]) / ok * 1e6
                if (calls - ok) * 1000 >= calls:
                    notes.append(f"{h} {workload}: only {ok:,.0f} of {calls:,.0f} calls got their 200 "
                                 f"(the row divides by the successful ones)")
            else:
                vals[h] = None
        rows.append((f"SIP OPTIONS → sl_send_reply(200), {what}, {sip_rate:,}/s × {sip_s} s (sipp): "
                     f"server CPU per request, µs ↓", 1, vals))

    def max_rows(workload, steps_key, seconds_key, what):
        """The rows of a step ramp (bench/run's sip_max): the last step passed, the rate sipp achieved."""
        if workload not in workloads_run:
            return
        steps = meta.get(steps_key, "").split()
        best, achieved = {}, {}
        for h in HOSTS:
            d = data[h][workload]
            v = d[0] if d else {}
            r = v.get("sip_max_rate")
            best[h] = r
            achieved[h] = None
            if r:
                sent, secs = v.get(f"step{r:.0f}_created"), v.get(f"step{r:.0f}_seconds")
                if sent and secs:
                    achieved[h] = sent / secs
                    if achieved[h] < 0.9 * r:
                        notes.append(f"{h} {workload}: at the {r:,.0f}/s step sipp sent only "
                                     f"{achieved[h]:,.0f} calls/s: sipp-bound")
            if d is None or r is None:
                continue
            stop = v.get("sip_max_stop")
            if stop:
                f_calls, f_ok = v.get(f"step{stop:.0f}_calls", 0), v.get(f"step{stop:.0f}_ok", 0)
                notes.append(f"{h} {workload}: the {stop:,.0f}/s step failed twice "
                             f"(last try: {f_calls - f_ok:,.0f} of {f_calls:,.0f} calls without their 200)")
            elif steps and r == float(steps[-1]):
                notes.append(f"{h} {workload}: every step passed, the limit is above {r:,.0f}/s")
        step_s = meta.get(seconds_key, "?")
        rows.append((f"{what}: highest sipp rate with < 0.1 % failed calls "
                     f"(steps {'/'.join(f'{int(x) / 1000:g}k' for x in steps)} × {step_s} s), calls/s ↑",
                     0, best))
        rows.append((f"{what}: … rate sipp achieved in that step, calls/s ↑", 0, achieved))

    max_rows("sip-udp-max", "sip_steps", "sip_step_seconds", "SIP OPTIONS, UDP")
    max_rows("async-task", "async_steps", "async_step_seconds",
             "SIP OPTIONS → async.task_route → t_reply(200), UDP")

    a_rate, a_s = int(meta.get("async_rate", "0")), meta.get("async_seconds", "?")
    for workload, what in (("async-ms", "async.ms_route(cb, 50) → t_reply(200)"),
                           ("async-sleep", "KSR.async.ms_sleep(50) → sl_send_reply(200) (ksr only)")):
        if workload not in workloads_run:
            continue
        for key, stat in (("p50", "p50"), ("p99", "p99"), ("max", "max")):
            vals = {}
            for h in HOSTS:
                if workload == "async-sleep" and h == "kamailio":
                    vals[h] = "not available"
                    continue
                vals[h] = value(h, workload, f"async_late_{key}")
            rows.append((f"SIP OPTIONS → {what}, UDP, {a_rate:,}/s × {a_s} s: "
                         f"lateness (response time − 50 ms) {stat}, ms ↓", 3, vals))
        for h in HOSTS:
            d = data[h][workload]
            if d is None:
                continue
            v = d[0]
            calls, ok, n = v.get("late_calls"), v.get("late_ok"), v.get("async_late_n")
            if calls and (ok is None or (calls - ok) * 1000 >= calls):
                notes.append(f"{h} {workload}: only {ok or 0:,.0f} of {calls:,.0f} calls of the lateness run "
                             f"got their 200 (the lateness rows count the successful ones)")
            if n is not None and n == 0:
                notes.append(f"{h} {workload}: sipp logged no response times")
        if workload == "async-ms":
            max_rows("async-ms", "async_steps", "async_step_seconds",
                     "SIP OPTIONS → async.ms_route(cb, 50) → t_reply(200), UDP")

    dmq_steps = meta.get("dmq_steps", "").split()
    d_step_s = meta.get("dmq_step_seconds", "?")
    d_rate, d_s = int(meta.get("dmq_lat_rate", "0")), meta.get("dmq_lat_seconds", "?")
    for workload, first, what in (
            ("dmq-bcast", "DMQ bcast_message A → B, C (3 nodes, UDP; B/C take KDMQ in ksr_request_route)", "DMQ bcast"),
            ("dmq-route", "DMQ bcast A → B, C, ksr only: B/C deliver via dmq channel_route on a DMQ worker",
             "DMQ bcast via channel_route")):
        if workload not in workloads_run:
            continue
        best, delivered = {}, {}
        for h in HOSTS:
            d = data[h][workload]
            if workload == "dmq-route" and h == "kamailio":
                best[h] = delivered[h] = "not available"
                continue
            if d is None:
                best[h] = delivered[h] = None
                continue
            v = d[0]
            r = v.get("dmq_max_rate")
            best[h], delivered[h] = r, None
            if r:
                n, secs = v.get(f"step{r:.0f}_delivered"), v.get(f"step{r:.0f}_seconds")
                sent = v.get(f"step{r:.0f}_created")
                if n is not None and secs:
                    delivered[h] = n / secs
                if sent and secs and sent / secs < 0.9 * r:
                    notes.append(f"{h} {workload}: at the {r:,.0f}/s step sipp sent only {sent / secs:,.0f} "
                                 f"MESSAGE/s: sipp-bound")
            stop = v.get("dmq_max_stop")
            if stop:
                k = f"step{stop:.0f}"
                notes.append(f"{h} {workload}: the {stop:,.0f}/s step failed twice (last try: "
                             f"{v.get(k + '_calls', 0) - v.get(k + '_ok', 0):,.0f} of {v.get(k + '_calls', 0):,.0f} "
                             f"MESSAGEs without their 200, {v.get(k + '_delivered', 0):,.0f} of "
                             f"{2 * v.get(k + '_created', 0):,.0f} broadcasts delivered, "
                             f"{v.get(k + '_duplicates', 0):,.0f} delivered twice)")
            elif r is not None and dmq_steps and r == float(dmq_steps[-1]):
                notes.append(f"{h} {workload}: every step passed, the limit is above {r:,.0f} bcast/s")
            calls, ok = v.get("lat_calls"), v.get("lat_ok")
            got, created = v.get("lat_delivered"), v.get("lat_created")
            if calls and (ok is None or (calls - ok) * 1000 >= calls
                          or got is None or not created or got * 1000 < 2 * created * 999):
                notes.append(f"{h} {workload}: the latency run lost calls: {ok or 0:,.0f} of {calls:,.0f} "
                             f"MESSAGEs got their 200, {got or 0:,.0f} of {2 * (created or 0):,.0f} broadcasts "
                             f"delivered (the latency rows count the delivered ones)")
            if v.get("lat_duplicates"):
                notes.append(f"{h} {workload}: {v['lat_duplicates']:,.0f} broadcasts of the latency run were "
                             f"delivered twice (tm retransmitted the KDMQ: no 200 within 500 ms)")
        steps_txt = "/".join(f"{int(x) / 1000:g}k" for x in dmq_steps)
        rows.append((f"{first}: highest sipp rate with < 0.1 % loss (steps {steps_txt} × {d_step_s} s), "
                     f"bcast/s ↑", 0, best))
        rows.append((f"{what}: … messages/s delivered to B's + C's Lua in that step ↑", 0, delivered))
        for key in ("p50", "p99", "max"):
            vals = {}
            for h in HOSTS:
                vals[h] = "not available" if (workload == "dmq-route" and h == "kamailio") \
                    else value(h, workload, f"lat_lat_{key}")
            how = " (A's $TV(Sn) before bcast_message → B's/C's Lua)" if key == "p50" else ""
            rows.append((f"{what}, {d_rate:,}/s × {d_s} s: delivery latency {key}{how}, ms ↓", 3, vals))
        for nodes, who in (("A", "A (MESSAGE in, 2 KDMQ out, their 200s in, 200 out)"),
                           ("BC", "B + C (KDMQ in, 200 out, each)")):
            vals = {}
            for h in HOSTS:
                d = data[h][workload]
                if workload == "dmq-route" and h == "kamailio":
                    vals[h] = "not available"
                    continue
                v = d[0] if d else {}
                try:
                    used = sum(v[f"lat_cpu1_{n}"] - v[f"lat_cpu0_{n}"] for n in nodes)
                    vals[h] = used / v["lat_ok"] * 1e6 if v.get("lat_ok") else None
                except KeyError:
                    vals[h] = None
            rows.append((f"{what}, {d_rate:,}/s: CPU per broadcast, {who}, µs ↓", 1, vals))

    if "dmq-fail" in workloads_run:
        vals, runs = {}, {}
        for h in HOSTS:
            d = data[h]["dmq-fail"]
            if d is None:
                vals[h] = None
                continue
            v = d[0]
            times = sorted(v[k] for k in v if re.fullmatch(r"dmq_detect\d+_s", k))
            timeouts = [k for k in v if re.fullmatch(r"dmq_detect\d+_timeout", k)]
            runs[h] = len(times) + len(timeouts)
            vals[h] = percentile(times, 50) if times and not timeouts else None
            if timeouts:
                notes.append(f"{h} dmq-fail: {len(timeouts)} of {runs[h]} kills not detected within "
                             f"{v[timeouts[0]]:.0f} s")
            if len(times) > 1:
                notes.append(f"{h} dmq-fail: detection times " + ", ".join(f"{t:.3f}" for t in times) + " s")
            waits = [v[k] for k in sorted(v) if re.fullmatch(r"dmq_ksrhost_wait\d+_s", k)]
            if waits and max(waits) > 1:
                notes.append(f"{h} dmq-fail: before the kills, waited " + ", ".join(f"{w:.1f}" for w in waits)
                             + " s until every node knew every peer as KSRHost (fast-pinged)")
        fast = meta.get("dmq_fast_ping_ms", "?")
        fto = meta.get("dmq_fast_timeout_ms", "0")
        fto_txt = f", fast_timeout_ms {fto}" if fto not in ("0", "") else ""
        rows.append((f"DMQ: time to detect a killed peer (SIGKILL of C → neither A nor B lists it active, "
                     f"polled every 20 ms; Kamailio: ping_interval 5, fr_timer 3000, "
                     f"median of {runs.get('kamailio', meta.get('dmq_kill_runs_kamailio', '?'))}; "
                     f"KSRHost: fast_ping_ms {fast}{fto_txt}, median of {runs.get('ksr', meta.get('dmq_kill_runs', '?'))}), s ↓",
                     3, vals))

    # sanity checks of the workloads' own results
    for h in HOSTS:
        if data[h]["mqueue"] is None:
            continue
        v = data[h]["mqueue"][0]
        for name, want in (("mq_add0_size", 1000), ("mq_fetch_miss", 0), ("mq_add2_size", 20000),
                           ("mq_add2r_size", 20000)):
            if name in v and v[name] != want:
                notes.append(f"{h}: {name} = {v[name]:.0f}, expected {want}")

    print("| workload | Kamailio 5.6 | KSRHost | ratio |")
    print("|---|--:|--:|--:|")
    for label, digits, vals in rows:
        k, s = vals["kamailio"], vals["ksr"]
        if "kamailio" not in hosts_run:
            kt, k = "not run", None
        elif isinstance(k, str):
            kt, k = k, None
        else:
            kt = fmt(k, digits)
        ratio = "–"
        if isinstance(s, str):
            s = None
        if k is not None and s is not None and k > 0 and s > 0 and not label.endswith(NO_RATIO):
            ratio = f"{s / k:.2f}"
        print(f"| {label} | {kt} | {fmt(s, digits)} | {ratio} |")
    print()
    print("ratio = KSRHost / Kamailio (↓: lower is better, ↑: higher is better; no ratio for drift).")
    print(f"nproc: {meta.get('nproc', '?')}  |  CPU: {meta.get('cpu', '?')}")
    sipp_txt = f"  |  sipp: {meta['sipp_version']}" if meta.get("sipp_version") else ""
    print(f"Kamailio: {meta.get('kamailio_version', 'not installed')}  |  ksr: {meta.get('ksr_version', '?')}{sipp_txt}")
    if any(w.startswith("async-") for w in workloads_run) and "kamailio" in hosts_run:
        shm = meta.get("kamailio_async_shm_mb", "0")
        print(f"Kamailio shared memory in the async rows: {shm + ' MB (-m)' if shm != '0' else 'default (64 MB)'}; "
              f"64 MB elsewhere")
    print(f"Load average before / after: {meta.get('load_before', '?')} / {meta.get('load_after', '?')}")
    print(f"Command: {meta.get('command', '?')}  |  logs: {outdir}")
    if notes:
        print()
        print("Notes:")
        for n in notes:
            print(f"- {n}")


def main(argv):
    if len(argv) == 3 and argv[1] == "table":
        table(argv[2])
    elif len(argv) == 3 and argv[1] == "tree":
        for p in tree(int(argv[2])):
            print(p)
    elif len(argv) == 3 and argv[1] == "mem":
        mem(int(argv[2]))
    elif len(argv) == 3 and argv[1] == "cpu":
        cpu(int(argv[2]))
    elif len(argv) == 5 and argv[1] == "sipp":
        return sipp(argv[2], argv[3], int(argv[4]))
    elif len(argv) == 6 and argv[1] == "probe":
        return probe(int(argv[2]), float(argv[3]), float(argv[4]), float(argv[5]))
    elif len(argv) >= 5 and argv[1] == "dmqwait":
        return dmq_wait(float(argv[2]), argv[3], argv[4:])
    elif len(argv) >= 7 and argv[1] == "dmqkill":
        return dmq_kill(argv[2], argv[3], float(argv[4]), float(argv[5]), argv[6:])
    elif len(argv) == 5 and argv[1] == "dmqflush":
        return dmq_flush(argv[2], argv[3], argv[4])
    elif len(argv) == 4 and argv[1] == "dmqcount":
        dmq_count(argv[2], argv[3])
    elif len(argv) == 5 and argv[1] == "dmqlat":
        dmq_lat(argv[2], argv[3], argv[4])
    else:
        sys.stderr.write(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
