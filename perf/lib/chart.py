"""Bar chart of one perf/compare run: chart.py RESULT.json OUT.png"""

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLOURS = {"veth": "#9e9e9e", "strongswan": "#d95f02", "boringtun": "#7570b3",
           "esptun-uring": "#1b9e77", "esptun-syscall": "#66a61e"}


def main():
    src, out = sys.argv[1], sys.argv[2]
    with open(src) as f:
        r = json.load(f)
    tests = list(r["tests"].items())
    legs = r["legs"]
    fig, axes = plt.subplots(1, len(tests), figsize=(4.2 * len(tests), 4.6), squeeze=False)
    for ax, (tname, t) in zip(axes[0], tests):
        names, vals, labels = [], [], []
        for leg in legs:
            med = leg.get("tests", {}).get(tname, {}).get("median")
            v = med.get(t["figure"]) if (leg["status"] == "ok" and med) else None
            names.append(leg["leg"])
            vals.append(v or 0)
            labels.append("failed" if v is None else
                          (f"{v:.2f}" if t["figure"] == "gbps" else f"{v:.0f}"))
        bars = ax.bar(range(len(names)), vals,
                      color=[COLOURS.get(n, "#444444") for n in names])
        top = max(vals) if any(vals) else 1
        for b, lab in zip(bars, labels):
            ax.text(b.get_x() + b.get_width() / 2, b.get_height() + top * 0.01, lab,
                    ha="center", va="bottom", fontsize=8,
                    color="#b00000" if lab == "failed" else "black")
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, rotation=30, ha="right", fontsize=8)
        ax.set_title(t["label"], fontsize=10)
        ax.set_ylim(0, top * 1.12)
        ax.grid(axis="y", alpha=0.3)
    s = r["settings"]
    fig.suptitle(f"perf/compare {r['date']} ({s['seconds']} s x {s['repeat']}, medians; "
                 f"{r['machine'].get('cpus')} shared CPUs)", fontsize=11)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


if __name__ == "__main__":
    main()
