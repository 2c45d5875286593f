"""The benchmark's figures for people: the text table, and with ``--plot FILE`` one PNG chart.

matplotlib is an optional extra (``pip install 'brokerflow[plot]'``): the engine never needs it,
and the bench checks for it before it spends minutes measuring.
"""

from __future__ import annotations

from typing import Any

PLOT_EXTRA = "pip install 'brokerflow[plot]'"


def table(result: dict[str, Any]) -> str:
    c, m = result["ceiling"], result["max_rate"]
    lines = [f"machine: {result['machine']}; database: {result.get('database', 'sqlite')}",
             f"ceiling (PUB→SUB + decode)   {c['events_per_s']:>9,} events/s",
             *[f"relay, {r['mode']:<12}         {r['events_per_s']:>9,} events/s  ({r['ratio_to_ceiling']:.0%} of "
               f"ceiling; lost {r['lost']}; publisher → relay → SUB + decode)" for r in result.get("relay", [])],
             f"engine max rate              {m['events_per_s']:>9,} events/s  "
             f"({result['ratio_to_ceiling']:.0%} of ceiling; lost {m['lost']}; {m['runs']} runs, "
             f"{m['runs_per_event']}/event; peak RSS {result['peak_rss_mb']} MB)"]
    hooks = m.get("webhooks")
    if hooks:
        lines.append(f"  webhooks at max rate       {hooks['sent']:>9,} sent, {hooks['success']:,} delivered"
                     f"  request p50 {hooks['p50_ms']} ms  p99 {hooks['p99_ms']} ms"
                     + (f"  ({hooks['attempts']:,} attempts)" if "attempts" in hooks else ""))
    cost = result.get("retention_cost")
    if cost:
        lines.append(f"event history (backtests)    {cost['history_on_events_per_s']:>9,} events/s with it, "
                     f"{cost['history_off_events_per_s']:,} without (medians): costs {cost['cost']:.1%}")
    floors = {floor["rate"]: floor for floor in result.get("transport_latency", [])}
    for fixed in result["fixed_rates"]:
        lines.append(f"engine at {fixed['rate']:>5}/s latency       p50 {fixed['p50_ms']} ms  p99 {fixed['p99_ms']} ms"
                     f"  max {fixed['max_ms']} ms  ({fixed['runs']} runs)")
        floor = floors.get(fixed["rate"])
        if floor:
            lines.append(f"  transport alone at {floor['rate']:>5}/s  p50 {floor['p50_ms']} ms"
                         f"  p99 {floor['p99_ms']} ms  max {floor['max_ms']} ms  (PUB→SUB + decode, same publisher)")
    for wm in result["workflow"]:
        lines.append(f"Workflow Machine {wm['clients']} client(s)   {wm['per_s']:>9,} EVENT/s  p50 {wm['p50_ms']} ms"
                     f"  p99 {wm['p99_ms']} ms")
    replay = result.get("replay")
    if replay:
        for side in ("without", "with"):
            r = replay[side]
            lines.append(f"engine via relay, {side + ' --replay':<15}{r['events_per_s']:>9,} events/s  "
                         f"(lost {r['lost']}; {r['runs']} runs; replayed {r['replayed']}; "
                         f"{r['cpu_us_per_event']} µs CPU/event; "
                         f"peak RSS {r['peak_rss_mb']} MB)")
        lines.append(f"checkpointing costs          {replay['cost']:>9.1%} of the max rate via the relay "
                     f"({replay['cpu_cost']:+.1%} engine CPU per event)")
    sharded = result.get("sharded")
    if sharded:
        sm = sharded["max_rate"]
        lines.append(f"engine --shards {sharded['shards']} max rate    {sm['events_per_s']:>9,} events/s  "
                     f"({sharded['ratio_to_one']:.2f}x one process; lost {sm['lost']}; {sm['runs']} runs)")
        for fixed in sharded.get("fixed_rates", []):
            lines.append(f"  --shards {sharded['shards']} at {fixed['rate']:>5}/s      p50 {fixed['p50_ms']} ms"
                         f"  p99 {fixed['p99_ms']} ms  max {fixed['max_ms']} ms  ({fixed['runs']} runs)")
        for wm in sharded.get("workflow", []):
            lines.append(f"  --shards {sharded['shards']} Workflow Machine {wm['clients']} client(s)  "
                         f"{wm['per_s']:>7,} EVENT/s  p50 {wm['p50_ms']} ms  p99 {wm['p99_ms']} ms")
    soak = result.get("soak")
    if soak:
        lines.append(f"soak {soak['rate']}/s for {soak['seconds']:.0f}s      RSS {soak['rss_mb_first']} → "
                     f"{soak['rss_mb_last']} MB (max {soak['rss_mb_max']}); backlog at end {soak['mailbox_at_end']}")
    return "\n".join(lines)


def require_matplotlib() -> None:
    """Raise a clear ``RuntimeError`` now, not after the run, when matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise RuntimeError(f"--plot needs matplotlib: {PLOT_EXTRA}") from None


def plot(result: dict[str, Any], path: str) -> None:
    """Throughput, latency by rate (engine against the bare transport) and the Workflow Machine."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on a server
    from matplotlib import pyplot

    figure, (rates, latency, machine) = pyplot.subplots(1, 3, figsize=(15, 4.5))
    figure.suptitle(f"brokerflow bench — {result.get('machine', '')}")
    ceiling = result["ceiling"]["events_per_s"]
    engine = result["max_rate"]["events_per_s"]
    bars = rates.bar(["transport ceiling", "engine"], [ceiling, engine], color=["#9aa9b8", "#0b5cad"])
    rates.bar_label(bars, labels=[f"{v:,}" for v in (ceiling, engine)])
    rates.set_title("events per second")

    fixed = result.get("fixed_rates", [])
    floors = {floor["rate"]: floor for floor in result.get("transport_latency", [])}
    labels = [f"{f['rate']:,}/s" for f in fixed]
    positions = list(range(len(fixed)))
    width = 0.2
    for offset, (name, values, color) in enumerate((
            ("engine p50", [f["p50_ms"] for f in fixed], "#6fa8dc"),
            ("engine p99", [f["p99_ms"] for f in fixed], "#0b5cad"),
            ("transport p50", [floors.get(f["rate"], {}).get("p50_ms", 0) for f in fixed], "#c9d3dd"),
            ("transport p99", [floors.get(f["rate"], {}).get("p99_ms", 0) for f in fixed], "#9aa9b8"))):
        latency.bar([p + (offset - 1.5) * width for p in positions], values, width, label=name, color=color)
    latency.set_xticks(positions, labels)
    latency.set_ylabel("ms from the event's ts to its run")
    latency.set_title("latency at fixed rates")
    latency.legend(fontsize=8)

    workflow = result.get("workflow", [])
    bars = machine.bar([f"{w['clients']} client(s)" for w in workflow], [w["per_s"] for w in workflow],
                       color="#1a7f37")
    machine.bar_label(bars, labels=[f"{w['per_s']:,}/s\np99 {w['p99_ms']} ms" for w in workflow], fontsize=8)
    machine.set_title("Workflow Machine EVENT commands per second")
    for axes in (rates, machine):
        axes.margins(y=0.15)  # room for the labels above the bars
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    pyplot.close(figure)
