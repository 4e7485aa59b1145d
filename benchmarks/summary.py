"""Write a benchmark's results: the JSON, a short markdown summary and a plot.

`python -m benchmarks.summary [results/shortener.json]` redraws the summary and plot from a JSON.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

JSON_NAME = "shortener.json"
PLOT_NAME = "shortener.png"
SUMMARY_NAME = "summary.md"
BEFORE_FOLDER = "before"  # a committed earlier run, compared with this one when present

# Every configuration is measured through its own front door (nginx), as users reach the service.
LABELS = {
    "bare": "bare WSGI 302 (the floor)",
    "bare_cached": "bare WSGI 302 after the cache hit's Redis call",
    "redirect": "redirect (cache hit)",
    "redirect_hot": "redirect, every request on one link",
    "redirect_uninstrumented": "redirect, instrumentation off",
    "create": "create",
    "create_uninstrumented": "create, instrumentation off",
    "mix": "mix (9 redirects : 1 create)",
    "redirect_straight": "redirect (cache hit), straight to Gunicorn, no door",
}

# Worker settings, by the suffix of a scenario's name ("redirect@sync4"); none is the deployed one.
SETTING_LABELS = {"": "sync, 2 per core (deployed)", "sync1": "sync, 1 per core",
                  "gthread4": "gthread, 1 worker per core x 4 threads"}


def label(name: str) -> str:
    """A scenario's words: what is measured, and at which worker setting when not the deployed one."""
    scenario, _, setting = name.partition("@")
    return LABELS[scenario] + (f", {SETTING_LABELS[setting]}" if setting else "")


SHORT_LABELS = {"bare": "bare", "redirect": "redirect", "redirect_uninstrumented": "redirect\nno instr.",
                "create": "create", "mix": "mix", "redirect_straight": "redirect\nno door"}


def short_label(name: str) -> str:
    """A scenario's words under a bar: what is measured, and the worker setting when not the deployed one."""
    scenario, _, setting = name.partition("@")
    return SHORT_LABELS[scenario] + (f"\n{setting}" if setting else "")


def _row(label: str, digest: dict, extra: str = "") -> str:
    return f"| {label} | {digest['rps']:.0f} | {digest['p50_ms']:.2f} | {digest['p99_ms']:.2f} | {digest['errors']} |{extra}"


def markdown(results: dict, before: dict | None = None) -> str:
    """The summary: machine, method, tables, targets, and the comparison with an earlier run if given."""
    m, s, r = results["machine"], results["settings"], results["ratios"]
    sat, half, down = results["saturation"], results["half_load"], results["redis_down"]
    bare = sat["bare"]["rps"]
    lines = [
        "# Shortener benchmark, through the front door",
        "",
        f"{results['date']} on {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Linux {m['kernel']}, "
        f"Python {m['python']}, {m['wrk']}; load average {m['load_average_before'][0]:.1f} before and "
        f"{m['load_average_after'][0]:.1f} after (a shared machine: other jobs ran beside this one).",
        "",
        f"Gunicorn from `service/gunicorn.conf.py`, {m['gunicorn_workers']} sync workers as deployed (other worker "
        "settings below), on the host; Postgres and "
        f"Redis from the harness, on loopback; wrk ({s['wrk_threads']} thread, {s['connections']} connections) in "
        "another process. Every Gunicorn is reached as users reach it, through a front door of its own: nginx "
        "(the stack's image) running the committed `frontdoor/nginx.conf`, readdressed to that Gunicorn and to "
        "ports of its own. The floor is the same door in front of a bare WSGI app that answers 302, on the same "
        f"worker setting. Each configuration: {s['rounds']} runs of {s['seconds']:g} s, taken in rounds "
        f"(every configuration once per round); the table shows medians, ratios are medians of same-round ratios. "
        f"{s['links']} links, followed at random; {results['cache_hit_share_during_saturation']:.1%} of "
        "redirects were cache hits. Rate limit off (`SHORTENER_CREATE_LIMIT=off`).",
        "",
        "## Saturation through the front door (closed loop, no pause)",
        "",
        "| configuration, through its door | requests/s | p50 ms | p99 ms | errors | x floor |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, digest in sat.items():
        lines.append(_row(label(name), digest, f" {digest['rps'] / bare:.2f} |"))
    best = results["best_worker_setting"]
    lines += [
        "",
        "Worker settings, through the door (median requests/s; the best of each row in bold):",
        "",
        "| configuration | " + " | ".join(SETTING_LABELS.values()) + " |",
        "| --- |" + " ---: |" * len(SETTING_LABELS),
    ]
    for scenario, chosen in best.items():
        cells = []
        for setting in SETTING_LABELS:
            name = f"{scenario}@{setting}" if setting else scenario
            ratio = "" if scenario == "bare" else f" ({r[f'{scenario}_vs_bare' + (f'@{setting}' if setting else '')]:.2f}x)"
            cells.append((f"**{sat[name]['rps']:.0f}**" if name == chosen else f"{sat[name]['rps']:.0f}") + ratio)
        lines.append(f"| {LABELS[scenario]} | " + " | ".join(cells) + " |")
    answers = results["answers_counted"]
    lines += [
        "",
        "In brackets, the same-round ratio to the floor on that worker setting.",
        "",
        f"Same-round ratios through the front door, at the deployed setting: redirect/floor "
        f"**{r['redirect_vs_bare']:.2f}**, create/floor **{r['create_vs_bare']:.2f}**, mix/floor "
        f"{r['mix_vs_bare']:.2f}, redirect without instrumentation/floor {r['redirect_uninstrumented_vs_bare']:.2f}; "
        f"the floor of a cache hit (bare 302 after the same Redis call) is {r['bare_cached_vs_bare']:.2f}x the "
        f"floor, and a redirect is **{r['redirect_vs_bare_cached']:.2f}x** that; one hot link / links spread: "
        f"**{r['hot_vs_spread']:.2f}**. Instrumentation overhead (1 - on/off): redirects "
        f"**{results['instrumentation_overhead']['redirect']:.1%}**, creates "
        f"{results['instrumentation_overhead']['create']:.1%}. The shortener counted "
        f"{answers['counted_by_the_app']:.0f} answers during its saturation runs, wrk received "
        f"{answers['received_by_wrk']}: {answers['counted_beyond']:.0f} more counted (at most "
        f"{answers['in_flight_at_most']} were in flight when a run stopped).",
        "",
        "## Half of saturation, through the front door",
        "",
        "Debian's wrk has no constant-rate mode (wrk2's `-R`), so `wrk/pace.lua` paces it: each request waits "
        "for the next slot of a Poisson schedule at half of that configuration's median saturation throughput, "
        "so the rate holds whatever the latency. One connection per Gunicorn worker (per thread for gthread), "
        "through the door as straight: straight to a sync worker, an idle connection wrk opened before its slot "
        "would block the requests queued behind it. Latency is wrk's, from the moment the request is written. "
        "Right after the redirect through the door, the same redirects go straight to its Gunicorn at the same "
        "rate: the difference is what the door adds.",
        "",
        "| configuration | target req/s | achieved req/s | p50 ms | p99 ms | errors |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, digest in half.items():
        lines.append(f"| {label(name)} | {digest['target_rps']:.0f} | {digest['rps']:.0f} | {digest['p50_ms']:.2f} "
                     f"| {digest['p99_ms']:.2f} | {digest['errors']} |")
    adds = results["frontdoor_adds"]
    lines += [
        "",
        f"What the front door adds to a redirect at {half['redirect']['target_rps']:.0f} req/s (medians of "
        f"same-round differences): **{adds['p50_ms']:+.2f} ms** at p50, **{adds['p99_ms']:+.2f} ms** at p99.",
        "",
        "## Redis stopped, through the front door",
        "",
        "Per round: redirects with Redis up, then Redis's container stopped 1.5 s into a run, then redirects "
        "with Redis down; Redis is started again and the cache refilled before the next round.",
        "",
        "| phase | requests/s | p50 ms | p99 ms | errors |",
        "| --- | ---: | ---: | ---: | ---: |",
        _row("Redis up", down["up"]),
        _row("Redis stopping (under load)", down["stopping"]),
        _row("Redis down", down["down"]),
        "",
        f"Throughput with Redis down / up: **{down['throughput_ratio']:.2f}**; errors "
        f"{down['errors_while_stopping']} while stopping, {down['errors_while_down']} while down.",
        "",
        "## Targets (through the front door)",
        "",
        "| target | value | met |",
        "| --- | ---: | --- |",
    ]
    for name, target in results["targets"].items():
        value = target["value"]
        shown = f"{value:.2f}" if isinstance(value, float) else str(value)
        lines.append(f"| {name} | {shown} | {'yes' if target['met'] else '**no**'} |")
    if before is not None:
        lines += comparison(before, results)
    lines += ["", f"![throughput and latency]({PLOT_NAME})", ""]
    return "\n".join(lines)


def comparison(before: dict, after: dict) -> list[str]:
    """Before/after an optimisation: each run's ratios, taken within its own run."""
    def measures(results: dict) -> list[tuple[str, str]]:
        half = results["half_load"]["redirect"]
        return [
            ("redirect / floor", f"{results['ratios']['redirect_vs_bare']:.3f}"),
            ("create / floor", f"{results['ratios']['create_vs_bare']:.3f}"),
            ("mix / floor", f"{results['ratios']['mix_vs_bare']:.3f}"),
            ("redirect requests/s (floor)", f"{results['saturation']['redirect']['rps']:.0f} "
                                            f"({results['saturation']['bare']['rps']:.0f})"),
            ("create requests/s", f"{results['saturation']['create']['rps']:.0f}"),
            ("redirect p50 / p99 at half load, ms", f"{half['p50_ms']:.2f} / {half['p99_ms']:.2f}"),
            ("instrumentation overhead, redirects", f"{results['instrumentation_overhead']['redirect']:.1%}"),
            ("Redis down / up", f"{results['redis_down']['throughput_ratio']:.2f}"),
        ]

    lines = ["", f"## Before and after ({BEFORE_FOLDER}/ holds the earlier run, through the door too)", "",
             f"| measure | before ({before['date'][:16]}) | after ({after['date'][:16]}) |", "| --- | ---: | ---: |"]
    for (name, old), (_, new) in zip(measures(before), measures(after), strict=True):
        lines.append(f"| {name} | {old} | {new} |")
    return lines


def plot(results: dict, path: Path) -> None:
    """Two panels: throughput at saturation (with Redis down), latency at half load."""
    sat, half, down = results["saturation"], results["half_load"], results["redis_down"]
    names = list(sat) + ["redis_down"]
    rps = [sat[n]["rps"] for n in sat] + [down["down"]["rps"]]
    labels = [label(n) for n in sat] + ["redirect, Redis down"]
    figure, (left, right) = plt.subplots(1, 2, figsize=(14, 7), gridspec_kw={"width_ratios": [3, 2]})
    bars = left.barh(labels[::-1], rps[::-1], color=["#999999" if n.startswith("bare") else "#3b75af" for n in names[::-1]])
    for bar, value in zip(bars, rps[::-1]):
        left.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, f" {value:.0f} ({value / sat['bare']['rps']:.2f}x)",
                  va="center", fontsize=8)
    left.set_xlabel("requests/s at saturation (median)")
    left.set_xlim(0, max(rps) * 1.3)
    left.set_title("Throughput through the front door, x the floor (door + bare WSGI 302)")
    names_half = list(half)
    x = range(len(names_half))
    right.bar([i - 0.2 for i in x], [half[n]["p50_ms"] for n in names_half], width=0.4, label="p50")
    right.bar([i + 0.2 for i in x], [half[n]["p99_ms"] for n in names_half], width=0.4, label="p99")
    right.axhline(10, color="#c0392b", linestyle="--", linewidth=1, label="10 ms target")
    right.set_xticks(list(x), [short_label(n) for n in names_half], fontsize=8)
    right.set_ylabel("ms")
    right.set_title("Latency at half of saturation, through the door")
    right.legend(fontsize=8)
    figure.suptitle(f"Shortener vs bare Gunicorn, each behind nginx, {results['machine']['cores']} cores, "
                    f"{results['date'][:10]}")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def write(results: dict, folder: Path) -> None:
    """Write the JSON, the summary and the plot into folder."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / JSON_NAME).write_text(json.dumps(results, indent=2) + "\n")
    earlier = folder / BEFORE_FOLDER / JSON_NAME
    before = json.loads(earlier.read_text()) if earlier.exists() else None
    (folder / SUMMARY_NAME).write_text(markdown(results, before))
    plot(results, folder / PLOT_NAME)


if __name__ == "__main__":
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent / "results" / JSON_NAME
    write(json.loads(source.read_text()), source.parent)
