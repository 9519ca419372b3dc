#!/usr/bin/env python3
"""How long an order's timeline takes to open in the console, in the history there is.

Usage: bench/console-timeline.py [--console URL] [--analytics URL] [--db PATH] [--samples N]

Picks N orders at random from the analytics-service's SQLite file (scripts/run.sh's
.data/analytics-service/analytics.db: its order_customers table, one row per ORDER_CREATED), then
for each one, in turn, times GET <analytics>/api/orders/{id}/records (the per-order index) and
GET <console>/api/orders/{id}/timeline (index, Kafka fetch by offset, read model), and prints
how many orders the history holds, the records per timeline, and the percentiles of both times.
Run it against `scripts/run.sh` after a long enough `build/bench/orderpipe-bench` run
(docs/BENCHMARKS.md "The console's timeline").
"""

import argparse
import json
import math
import sqlite3
import statistics
import sys
import time
import urllib.request


def get(url: str) -> tuple[float, dict]:
    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=30) as r:
        body = json.loads(r.read())
    return time.perf_counter() - start, body


def percentile(values: list[float], p: float) -> float:
    """Nearest rank."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--console", default="http://127.0.0.1:8084")
    ap.add_argument("--analytics", default="http://127.0.0.1:8083")
    ap.add_argument("--db", default=".data/analytics-service/analytics.db")
    ap.add_argument("--samples", type=int, default=200)
    a = ap.parse_args()

    db = sqlite3.connect(f"file:{a.db}?mode=ro", uri=True)
    orders = db.execute("SELECT count(*) FROM order_customers").fetchone()[0]
    indexed = db.execute("SELECT count(*) FROM order_records").fetchone()[0]
    ids = [r[0] for r in db.execute(
        "SELECT order_id FROM order_customers ORDER BY random() LIMIT ?", (a.samples,))]
    db.close()
    if not ids:
        print(f"no orders in {a.db}: place some first", file=sys.stderr)
        return 1

    index_s, timeline_s, records, fetched = [], [], [], 0
    for order_id in ids:
        t, body = get(f"{a.analytics}/api/orders/{order_id}/records")
        index_s.append(t)
        t, body = get(f"{a.console}/api/orders/{order_id}/timeline")
        timeline_s.append(t)
        records.append(len(body["records"]))
        fetched += sum(1 for r in body["records"] if r.get("fetched"))

    def line(name: str, values: list[float]) -> str:
        ms = [v * 1000 for v in values]
        return (f"{name:<10} p50 {percentile(ms, 50):7.1f} ms   p90 {percentile(ms, 90):7.1f} ms   "
                f"p99 {percentile(ms, 99):7.1f} ms   max {max(ms):7.1f} ms")

    print(f"history: {orders:,} orders, {indexed:,} indexed records; {len(ids)} timelines opened")
    print(f"records per timeline: mean {statistics.mean(records):.1f}, min {min(records)}, "
          f"max {max(records)}; fetched from Kafka {fetched} of {sum(records)}")
    print(line("index", index_s))
    print(line("timeline", timeline_s))
    return 0


if __name__ == "__main__":
    sys.exit(main())
