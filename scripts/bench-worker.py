#!/usr/bin/env python3
"""The worker benchmark (run by scripts/bench-worker.sh, which starts moto and builds the binaries).

One shape, one run, side by side, each measured as a whole process (CPU = user + sys and peak RSS
from wait4's rusage, so the simulated Nango and moto, in processes of their own, are not counted):

- bootstrap: the worker's Lambda bootstrap (release, built as it ships) against a Runtime API
  emulated here, given one SQS batch with a sync job per stream;
- nango-sync work: the local job loop on the same jobs (embedded queue, DynamoDB on moto);
- nango-sync serve: the whole local pipeline on its embedded defaults (SQLite, embedded queue),
  sent one signed sync webhook per stream, measured until every stream holds all its records;
- fetch-only: every page of the same streams read and parsed, nothing written;
- write-only: the same pages read first (not counted), then written as the sync loop writes them;
- round (asked for by name, `--only round`): the bootstrap backfills cleanly (not counted), then
  the simulator changes --round-churn of every stream's records and turns on the faults given
  (--fault-rate, --rate-limit-rate), and a fresh bootstrap syncs that round of changes.

The shape (issue "A lean worker"): 3 connections x 2 models x 20,000 records of about 1.2 KB,
every 500th about 50 KB, pages of 1,000, 50 ms per page. Options scale it down for a quick run.
"""
import argparse
import http.server
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RELEASE = os.path.join(ROOT, "target", "release")
API_KEY = "00000000-0000-4000-8000-000000000000"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_listening(port, seconds=120):
    end = time.time() + seconds
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    sys.exit(f"nothing listens on {port} after {seconds} s")


def usage_of(pid):
    """Waits for the child; returns (cpu seconds, of which system, peak RSS in MB)."""
    _, status, ru = os.wait4(pid, 0)
    return ru.ru_utime + ru.ru_stime, ru.ru_stime, ru.ru_maxrss / 1024


def aws_env(extra):
    env = dict(os.environ)
    env.update(
        {
            "AWS_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_ENDPOINT_URL": os.environ["MOTO_ENDPOINT"],
            "AWS_EC2_METADATA_DISABLED": "true",
            "RUST_LOG": "warn",
        }
    )
    env.update(extra)
    return env


def nango_sync(args, env, **kw):
    return subprocess.run([os.path.join(RELEASE, "nango-sync"), *args], env=env, check=True, **kw)


def stack(prefix, env):
    """Creates the stack's tables and queues on moto (as template.yaml does); returns their names."""
    nango_sync(["status", "--local-aws", prefix, "--json"], env, stdout=subprocess.DEVNULL)
    return {
        "RECORDS_TABLE": f"{prefix}-records",
        "STATE_TABLE": f"{prefix}-state",
        "QUEUE_URL": f"{os.environ['MOTO_ENDPOINT']}/123456789012/{prefix}-ingest.fifo",
    }


def sync_jobs(streams):
    return [
        {"v": 1, "received_at": "2026-12-03T12:00:00.000Z",
         "job": {"sync": {"stream": s, "sync_name": s["model"].lower() + "s"}}}
        for s in streams
    ]


class RuntimeApi(http.server.BaseHTTPRequestHandler):
    """Lambda's Runtime API, for one invocation: the next call gets the event, later ones wait."""

    event = b""
    served = False
    answered = threading.Event()

    def log_message(self, *args):
        pass

    def do_GET(self):
        if not self.path.endswith("/invocation/next"):
            self.send_error(404)
            return
        if RuntimeApi.served:
            time.sleep(3600)
            return
        RuntimeApi.served = True
        deadline = int(time.time() * 1000) + 900_000
        self.send_response(200)
        self.send_header("Lambda-Runtime-Aws-Request-Id", "bench-1")
        self.send_header("Lambda-Runtime-Deadline-Ms", str(deadline))
        self.send_header("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:123456789012:function:worker")
        self.send_header("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000")
        self.send_header("Content-Length", str(len(RuntimeApi.event)))
        self.end_headers()
        self.wfile.write(RuntimeApi.event)

    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0))
        body = self.rfile.read(length)
        self.send_response(202)
        self.end_headers()
        RuntimeApi.response = body
        RuntimeApi.answered.set()


def run_bootstrap(streams, nango_url, page, tables=None):
    env = aws_env(tables or stack(f"bench-boot-{os.getpid()}", aws_env({})))
    RuntimeApi.served = False
    RuntimeApi.answered.clear()
    records = [
        {"messageId": f"m{i}", "receiptHandle": f"r{i}", "body": json.dumps(job),
         "attributes": {"MessageGroupId": f"g{i}"}, "messageAttributes": {},
         "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:ingest.fifo",
         "awsRegion": "us-east-1"}
        for i, job in enumerate(sync_jobs(streams))
    ]
    RuntimeApi.event = json.dumps({"Records": records}).encode()
    port = free_port()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), RuntimeApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env.update(
        {
            "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{port}",
            "AWS_LAMBDA_FUNCTION_NAME": "worker",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_STREAM_NAME": "bench",
            "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/worker",
            "AWS_LAMBDA_LOG_FORMAT": "JSON",
            "NANGO_API_KEY": API_KEY,
            "NANGO_BASE_URL": nango_url,
            "PAGE_LIMIT": str(page),
        }
    )
    started = time.time()
    # BENCH_WORKER_WRAP runs the bootstrap under a profiler (its figures then include the profiler's):
    # BENCH_WORKER_WRAP="perf record -e cpu-clock -g -o target/worker.perf --" with the bootstrap
    # from `cargo build --profile profiling` (BENCH_WORKER_BIN=target/profiling/worker).
    command = [*os.environ.get("BENCH_WORKER_WRAP", "").split(),
               os.environ.get("BENCH_WORKER_BIN", os.path.join(RELEASE, "worker"))]
    child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    if not RuntimeApi.answered.wait(3600):
        sys.exit("the bootstrap did not answer within an hour")
    wall = time.time() - started
    failures = json.loads(RuntimeApi.response or b"{}").get("batchItemFailures", [])
    if failures:
        sys.exit(f"the bootstrap failed jobs: {failures}")
    child.send_signal(signal.SIGTERM)
    cpu, sys_cpu, rss = usage_of(child.pid)
    server.shutdown()
    return cpu, sys_cpu, rss, wall


def run_round(streams, nango_url, page, churn, fault_rate, rate_limit_rate):
    """A round of changes under faults: the bootstrap backfills the streams cleanly (not counted),
    then the simulator changes `churn` of every stream's records and turns its faults on
    (`POST /_simulator/round`), and the bootstrap, a fresh process on the same tables, syncs the
    changes: that second process is the one measured."""
    # The tables once: `status` on a filled stack counts every stream's partition.
    tables = stack(f"bench-round-{os.getpid()}", aws_env({}))
    run_bootstrap(streams, nango_url, page, tables)
    query = f"churn={churn}&fault_rate={fault_rate}&rate_limit_rate={rate_limit_rate}"
    request = urllib.request.Request(f"{nango_url}/_simulator/round?{query}", method="POST",
                                     headers={"Authorization": f"Bearer {API_KEY}"})
    changed = json.load(urllib.request.urlopen(request))
    print(f"round of changes: {changed['added']} added, {changed['updated']} updated, "
          f"{changed['deleted']} deleted", flush=True)
    return (*run_bootstrap(streams, nango_url, page, tables), sum(changed.values()))


def run_work(streams, nango_url, page):
    prefix = f"bench-work-{os.getpid()}"
    db = os.path.join(ROOT, "target", f"{prefix}.db")
    env = aws_env({"NANGO_API_KEY": API_KEY, "NANGO_BASE_URL": nango_url, "PAGE_LIMIT": str(page)})
    backend = ["--local-aws", prefix, "--queue", "embedded", "--db", db]
    for s in streams:
        key = "|".join([s["provider_config_key"], s["connection_id"], s["model"], s["variant"]])
        nango_sync(["sync", "--stream", key, *backend], env, stdout=subprocess.DEVNULL)
    started = time.time()
    child = subprocess.Popen([os.path.join(RELEASE, "nango-sync"), "work", "--until-empty", *backend],
                             env=env, stderr=subprocess.DEVNULL)
    cpu, sys_cpu, rss = usage_of(child.pid)
    return cpu, sys_cpu, rss, time.time() - started


SIGNING_KEY = "bench-signing-key"


def post_webhook(url, stream, env):
    """POSTs the sync webhook a successful INITIAL run sends (contract section 2), signed by
    `nango-sync sign --post` as Nango signs it (the key from NANGO_WEBHOOK_SIGNING_KEY)."""
    body = json.dumps({
        "type": "sync", "from": "nango", "success": True, "connectionId": stream["connection_id"],
        "providerConfigKey": stream["provider_config_key"], "syncName": stream["model"].lower() + "s",
        "model": stream["model"], "syncVariant": stream["variant"], "syncType": "INITIAL",
        "modifiedAfter": "2026-12-03T12:00:00.000Z", "queryTimeStamp": "2026-12-03T12:00:00.000Z",
        "responseResults": {"added": 0, "updated": 0, "deleted": 0},
    })
    nango_sync(["sign", "--post", url], env, input=body, text=True, stdout=subprocess.DEVNULL)


def run_serve(streams, nango_url, page, records):
    db = os.path.join(ROOT, "target", f"bench-serve-{os.getpid()}.db")
    for leftover in (db, db + "-wal", db + "-shm"):
        if os.path.exists(leftover):
            os.remove(leftover)
    env = aws_env({"NANGO_API_KEY": API_KEY, "NANGO_BASE_URL": nango_url, "PAGE_LIMIT": str(page),
                   "NANGO_WEBHOOK_SIGNING_KEY": SIGNING_KEY})
    port = free_port()
    # BENCH_WORKER_WRAP as for the bootstrap; BENCH_NANGO_SYNC_BIN=target/profiling/nango-sync.
    binary = os.environ.get("BENCH_NANGO_SYNC_BIN", os.path.join(RELEASE, "nango-sync"))
    child = subprocess.Popen([*os.environ.get("BENCH_WORKER_WRAP", "").split(), binary, "serve",
                              "--listen", f"127.0.0.1:{port}", "--db", db, "--reconcile-every", "0"],
                             env=env, stderr=subprocess.PIPE, text=True)
    line = child.stderr.readline()
    match = re.search(r"(http://\S+)", line)
    if not match:
        sys.exit(f"serve did not say where it listens: {line!r}")
    threading.Thread(target=lambda: child.stderr.read(), daemon=True).start()
    started = time.time()
    for s in streams:
        post_webhook(match.group(1), s, env)
    # Without the API key, status reads the SQLite file alone and does not ask the simulator.
    quiet = {k: v for k, v in env.items() if k != "NANGO_API_KEY"}
    while True:
        out = nango_sync(["status", "--db", db, "--json"], quiet, capture_output=True, text=True).stdout
        counts = [json.loads(l)["records"] for l in out.splitlines() if l.strip()]
        if len(counts) == len(streams) and all(n == records for n in counts):
            break
        if time.time() - started > 3600:
            sys.exit(f"serve did not sync every stream within an hour: {counts}")
        time.sleep(0.5)
    wall = time.time() - started
    child.send_signal(signal.SIGINT)
    cpu, sys_cpu, rss = usage_of(child.pid)
    return cpu, sys_cpu, rss, wall


def run_part(mode, nango_url, page, streams, records):
    """benches/worker_parts.rs measures its own part (generating write-only's pages is not counted)."""
    keys = ",".join("|".join([s["provider_config_key"], s["connection_id"], s["model"], s["variant"]])
                    for s in streams)
    args = [mode, nango_url, str(page), keys] if mode == "fetch" else [mode, str(records), str(page)]
    started = time.time()
    out = subprocess.run([os.environ["BENCH_WORKER_PARTS"], *args], env=aws_env({}), check=True,
                         capture_output=True, text=True).stdout
    part = json.loads(out.strip().splitlines()[-1])
    return part["cpu"], None, part["rss_mb"], time.time() - started


def start_relay():
    """Starts the keep-alive relay in front of moto; the measured processes talk to it instead."""
    port = free_port()
    relay = subprocess.Popen([sys.executable, os.path.join(ROOT, "scripts", "keepalive-relay.py"), str(port),
                              os.environ["MOTO_ENDPOINT"]], stdout=subprocess.PIPE, text=True)
    relay.stdout.readline()
    os.environ["MOTO_ENDPOINT"] = f"http://127.0.0.1:{port}"
    return relay


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--connections", type=int, default=3)
    p.add_argument("--models", default="Contact,Deal")
    p.add_argument("--records", type=int, default=20_000)
    p.add_argument("--page", type=int, default=1000)
    p.add_argument("--latency-ms", type=int, default=50)
    p.add_argument("--only", default="bootstrap,work,serve,fetch,write")
    p.add_argument("--fault-rate", type=float, default=0.0,
                   help="share of Nango requests the simulator answers with a 5xx, a truncated body or a reset")
    p.add_argument("--rate-limit-rate", type=float, default=0.0,
                   help="share of Nango requests the simulator answers 429")
    p.add_argument("--round-churn", type=float, default=0.05,
                   help="share of each stream's records the round mode changes")
    p.add_argument("--keepalive", action="store_true",
                   help="reach moto through scripts/keepalive-relay.py, which keeps connections open "
                        "as DynamoDB does (moto closes every one)")
    a = p.parse_args()
    # In the round mode the faults start with the round (the backfill before it is clean).
    sim_faults = (0.0, 0.0) if "round" in a.only.split(",") else (a.fault_rate, a.rate_limit_rate)
    relay = start_relay() if a.keepalive else None
    port = free_port()
    sim = subprocess.Popen(
        [os.path.join(RELEASE, "nango-sync"), "simulate", "--listen", f"127.0.0.1:{port}",
         "--integration", "bench", "--connections", str(a.connections), "--models", a.models,
         "--records", str(a.records), "--record-bytes", "1200", "--large-every", "500",
         "--large-bytes", "50000", "--latency-ms", str(a.latency_ms),
         "--fault-rate", str(sim_faults[0]), "--rate-limit-rate", str(sim_faults[1])],
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_listening(port, 600)
        url = f"http://127.0.0.1:{port}"
        streams = [{"provider_config_key": "bench", "connection_id": f"conn-{c}", "model": m, "variant": "base"}
                   for c in range(a.connections) for m in a.models.split(",")]
        total = len(streams) * a.records
        runs = {
            "bootstrap": lambda: run_bootstrap(streams, url, a.page),
            "round": lambda: run_round(streams, url, a.page, a.round_churn, a.fault_rate, a.rate_limit_rate),
            "work": lambda: run_work(streams, url, a.page),
            "serve": lambda: run_serve(streams, url, a.page, a.records),
            "fetch": lambda: run_part("fetch", url, a.page, streams, total),
            "write": lambda: run_part("write", url, a.page, streams, total),
        }
        labels = {"bootstrap": "worker bootstrap (Lambda handler)", "work": "nango-sync work",
                  "round": "bootstrap, a round of changes",
                  "serve": "nango-sync serve (SQLite)",
                  "fetch": "fetch-only (read + parse)", "write": "write-only (convert + write)"}
        via = "moto through the keep-alive relay" if a.keepalive else "moto directly (a connection per call)"
        print(f"DynamoDB: {via}")
        if a.fault_rate or a.rate_limit_rate:
            print(f"Nango faults: {a.fault_rate:.0%} 5xx/truncated/reset, {a.rate_limit_rate:.0%} 429")
        print(f"{total} records: {a.connections} connections x {len(a.models.split(','))} models x {a.records}, "
              f"about 1.2 KB (every 500th about 50 KB), pages of {a.page}, {a.latency_ms} ms per page\n")
        print(f"{'process':<36} {'CPU s':>8} {'of it sys':>10} {'CPU s/100k':>11} {'us/record':>10} "
              f"{'peak RSS MB':>12} {'wall s':>8}")
        for name in a.only.split(","):
            # The round's per-record figures are per changed record.
            cpu, sys_cpu, rss, wall, records = (*runs[name](), total)[:5]
            sys_text = "-" if sys_cpu is None else f"{sys_cpu:.2f}"
            print(f"{labels[name]:<36} {cpu:>8.2f} {sys_text:>10} {cpu * 100_000 / records:>11.2f} "
                  f"{cpu * 1e6 / records:>10.1f} {rss:>12.1f} {wall:>8.1f}", flush=True)
    finally:
        sim.terminate()
        sim.wait()
        if relay:
            relay.terminate()
            relay.wait()


if __name__ == "__main__":
    main()
