"""The pictures of bench/fleet and bench/field, drawn from the JSON their drivers write.

    python plots.py fleet|field DATA.json OUT.png

Run with a Python that has matplotlib (bench/benchlib.py makes a venv for it). Small PNGs: a few tens of KiB.
"""

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLOURS = {"2xx": "#4c9a2a", "401": "#7b4fa0", "429": "#e0a030", "5xx/none": "#c0392b", "other": "#7f8c8d",
           "proxy page": "#d35400", "no answer": "#2c3e50"}


def fleet(d, out):
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 4.8), sharex=True, height_ratios=[3, 2])
    xs = d["seconds"]
    # Stacked steps, one second wide (bars of one second vanish when a long run is drawn small).
    bottom_acc = [0] * len(xs)
    for name, values in d["by_class"].items():
        if not any(values):
            continue
        upper = [a + b for a, b in zip(bottom_acc, values)]
        top.fill_between(xs, bottom_acc, upper, step="post", color=COLOURS.get(name, "#999"), label=name,
                         linewidth=0)
        bottom_acc = upper
    top.axhline(d["steady"], color="black", linewidth=0.8, linestyle="--", label=f"steady {d['steady']:.0f}/s")
    top.axhline(2 * d["steady"], color="#c0392b", linewidth=0.8, linestyle=":", label="2 × steady")
    for ax in (top, bottom):
        ax.axvspan(*d["outage"], color="#bbbbbb", alpha=0.35, linewidth=0)
        if d.get("drained") is not None:
            ax.axvline(d["drained"], color="#2c7bb6", linewidth=0.8)
    top.text(sum(d["outage"]) / 2, top.get_ylim()[1] * 0.9, "Realer down", ha="center", va="top", fontsize=8)
    top.set_ylabel("requests/s at Realer")
    top.legend(fontsize=7, ncol=3, loc="upper left", frameon=False)
    top.set_title(d["title"], fontsize=10)
    bottom.plot(d["pending_t"], d["pending_devices"], color="#2c7bb6", linewidth=1.0)
    bottom.set_ylabel("devices with\nunsent readings", fontsize=8)
    right = bottom.twinx()
    right.plot(d["pending_t"], d["pending_items"], color="#e67e22", linewidth=0.8, linestyle="--")
    right.set_ylabel("readings waiting", fontsize=8, color="#e67e22")
    bottom.set_xlabel("seconds" + ("   (blue line: every outbox drained)" if d.get("drained") is not None else ""))
    fig.tight_layout()
    fig.savefig(out, dpi=80)


def field(d, out):
    fig, (top, mid) = plt.subplots(2, 1, figsize=(10, 5.2), sharex=True, height_ratios=[2, 3])
    # Faults as labelled bands, on both panels; kills as ticks.
    palette = ["#fde0dd", "#e5f5e0", "#deebf7", "#fff7bc", "#efedf5", "#fee6ce", "#e0ecf4", "#f7fcb9"]
    for i, band in enumerate(d["bands"]):
        for ax in (top, mid):
            ax.axvspan(band["start"], band["end"], color=palette[i % len(palette)], linewidth=0, zorder=0)
    top.plot(d["depth_t"], d["depth"], color="#2c7bb6", linewidth=1.0, drawstyle="steps-post")
    top.set_ylabel("outbox depth\n(readings)", fontsize=8)
    for k in d["kills"]:
        top.axvline(k, color="black", linewidth=0.5, ymin=0.9, ymax=1.0)
    top.set_title(d["title"], fontsize=10)
    xs = d["bucket_t"]
    acc = [0] * len(xs)
    for name, values in d["by_outcome"].items():
        if not any(values):
            continue
        mid.bar(xs, values, width=d["bucket_s"], bottom=acc, color=COLOURS.get(name, "#999"), label=name,
                linewidth=0, align="edge")
        acc = [a + b for a, b in zip(acc, values)]
    mid.set_ylabel(f"the device's requests\nper {d['bucket_s']:g} s, by outcome", fontsize=8)
    mid.legend(fontsize=7, ncol=6, loc="upper right", frameon=False)
    top_y = max(acc + [1]) * 1.05
    mid.set_ylim(0, top_y * 1.45)
    for i, band in enumerate(d["bands"]):
        mid.text((band["start"] + band["end"]) / 2, top_y * (1.05 + 0.12 * (i % 3)), band["label"], ha="center",
                 va="bottom", fontsize=6.5)
    mid.set_xlabel("seconds (ticks on top: the device killed with SIGKILL)")
    fig.tight_layout()
    fig.savefig(out, dpi=80)


if __name__ == "__main__":
    kind, data, out = sys.argv[1:4]
    with open(data) as f:
        d = json.load(f)
    {"fleet": fleet, "field": field}[kind](d, out)
