"""The fleet's report: a table per run, and what the figures say against the targets."""

from __future__ import annotations

import os
from typing import Any

from bench.fleet.common import TARGET_INGEST, TARGET_P99_MS
from bench.fleet.hubproc import is_sqlite


def verdicts(run: dict[str, Any]) -> list[str]:
    out = []
    for ph in run["phases"]:
        if ph["phase"] == "burst" and run["communes"] >= 1000:
            p99 = ph["round_trip_ms"].get("p99")
            if p99 is None or ph["sessions_unfinished"]:
                out.append(f"burst: {ph['sessions_unfinished']:,} of {run['communes']:,} sessions "
                           f"unfinished after {ph['wall_s']:.0f} s, {ph['timeouts']:,} round trips "
                           f"timed out (request timeout {run['timeout_s']:.0f} s); target p99 < "
                           f"{TARGET_P99_MS:.0f} ms: MISSED")
            else:
                out.append(f"burst p99 round trip {p99:,.0f} ms (target < {TARGET_P99_MS:.0f} ms, "
                           f"{run['communes']:,} at once): "
                           f"{'met' if p99 < TARGET_P99_MS else 'MISSED'}")
        if ph["phase"] in ("burst", "ingest", "day"):
            rate = ph["events_per_s"]
            if ph["phase"] == "ingest":
                out.append(f"hub ingest {rate:,.0f} events/s (target ≥ {TARGET_INGEST:,.0f} on "
                           f"{'SQLite' if is_sqlite(run['db']) else 'PostgreSQL'}): "
                           f"{'met' if rate >= TARGET_INGEST else 'MISSED'}")
        hub_u, me_u = ph["hub_cpu_util"], ph["client_cpu_util"]
        cores = os.cpu_count() or 1
        usage = (f"hub {hub_u:.2f} cores in {run['hub_processes']} process(es), load generator "
                 f"{me_u:.2f}, of {cores} CPUs")
        serving = run["hub_processes"] - (1 if run["workers"] > 1 else 0)  # not the supervisor
        if me_u > hub_u and me_u >= 0.7:
            out.append(f"{ph['phase']}: the load generator is the bottleneck ({usage})")
        elif hub_u >= 0.6 * min(max(1, serving), cores) or hub_u + me_u >= 0.9 * cores:
            out.append(f"{ph['phase']}: the hub is the bottleneck ({usage}; one process is one "
                       "event loop and one SQLite writer: below 1.0 the rest is lock and fsync "
                       "waits)")
        else:
            out.append(f"{ph['phase']}: neither side is busy ({usage}): the offered load is "
                       "below capacity")
    return out


def report(result: dict[str, Any]) -> None:
    print(f"fleet — {result['machine']}; load average {' '.join(result['loadavg_start'])} at "
          f"start, {' '.join(result['loadavg_end'])} at end; {result['total_s']:.0f} s in all")
    for run in result["runs"]:
        print()
        print(f"{run['scenario']}: {run['communes']:,} communes, db {run['db']}, "
              f"{run['hub_processes']} hub process(es); setup: init {run['setup']['init_s']} s, "
              f"enrollment {run['setup']['enroll_s']} s")
        head = (f"  {'phase':<10} {'sessions':>8} {'trips':>6} {'events':>8} {'wall s':>7} "
                f"{'events/s':>9}  {'round trip ms min / p50 / p99 / max':>38}  "
                f"{'session ms p50 / p99':>20}  {'hub CPU s':>9} {'(cores)':>7} "
                f"{'µs/event':>8} {'client CPU s':>12}")
        print(head)
        for ph in run["phases"]:
            rt, ss = ph["round_trip_ms"], ph["session_ms"]
            per = ph["hub_cpu_us_per_event"]
            print(f"  {ph['phase']:<10} {ph['sessions']:>8,} {ph['round_trips']:>6,} "
                  f"{ph['events_acked']:>8,} {ph['wall_s']:>7.1f} {ph['events_per_s']:>9,.0f}  "
                  f"{rt.get('min', 0):>7,.0f} / {rt.get('p50', 0):>7,.0f} / "
                  f"{rt.get('p99', 0):>7,.0f} / {rt.get('max', 0):>7,.0f}  "
                  f"{ss.get('p50', 0):>9,.0f} / {ss.get('p99', 0):>8,.0f}  "
                  f"{ph['hub_cpu_s']:>9.1f} {ph['hub_cpu_util']:>7.2f} "
                  f"{per if per is not None else '-':>8} {ph['client_cpu_s']:>12.1f}")
            if ph.get("catchup_session_ms"):
                cs = ph["catchup_session_ms"]
                print(f"  {'  catch-up':<10} {cs['n']:>8,} {'':>6} {ph['catchup_events']:>8,} "
                      f"{'':>7} {'':>9}  {'':>38}  {cs['p50']:>9,.0f} / {cs['p99']:>8,.0f}")
            if ph.get("hub_edits"):
                print(f"  {'':<10} province edits through the operator API: {ph['hub_edits']}")
            if ph["sessions_failed"] or ph["retries"] or ph["sessions_unfinished"]:
                print(f"  {'':<10} {ph['sessions_failed']} sessions refused, "
                      f"{ph['sessions_unfinished']} unfinished at the phase limit, "
                      f"{ph['retries']} retries ({ph['timeouts']} timeouts)")
            if ph["hub_logged_events"] is not None and ph["hub_logged_events"] != ph["events_acked"]:
                print(f"  {'':<10} the hub logged {ph['hub_logged_events']:,} events in the phase "
                      f"({ph['hub_logged_events'] / ph['wall_s']:,.0f}/s), answered or not")
        size = run["db_bytes"]
        parts = ", ".join(f"{k} {v / 2**20:,.1f}" for k, v in size.items() if k != "total")
        print(f"  hub: peak RSS {run['hub_peak_rss_mb']:.1f} MiB (sampled, all its processes; "
              f"VmHWM of the main one {run['hub_vm_hwm_mb']:.1f} MiB); log "
              f"{run['hub_log_events']:,} events; database {size['total'] / 2**20:,.1f} MiB "
              f"({parts})")
        print(f"  load generator RSS {run['client_peak_rss_mb']:.0f} MiB; errors "
              f"{run['errors'] or 'none'}; rejections {run['rejections'] or 'none'}")
        for line in verdicts(run):
            print(f"  → {line}")
        for ph in run["phases"]:
            prof = ph.get("profile")
            if prof:
                print(f"  hub profile ({ph['phase']}, py-spy at 100 Hz, {prof['file']}), share of "
                      f"the phase's {prof['wall_s']:.0f} s wall time per thread:")
                for title, key in (("event loop", "main_thread"), ("SQLite thread", "sqlite_thread"),
                                   ("hottest functions", "hot_functions")):
                    print(f"    {title}:")
                    for what, share in prof[key]:
                        print(f"      {share:5.1f} %  {what}")
