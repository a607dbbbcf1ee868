"""A picture of one deploy: the requests the load sent through it, per 100 ms, stacked by the version that
answered, failures in red, a vertical line where each role switched (its first answer from the new version),
the deploy command's span shaded. One PNG per tool, on the same time axis so the two can be compared.

    python -m bench.timeline     (redraws bench/out/deploy-timeline-*.png from bench/out/timeline-*.json)
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Final

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from bench.common import OUT, ROLES, ROOT

BIN_SECONDS: Final = 0.1
DOCS_IMAGES: Final = ROOT / "docs" / "images"
FAILED_COLOR: Final = "#d62728"
VERSION_COLORS: Final = ("#2171b5", "#9ecae1", "#31a354", "#fdae6b", "#e6550d", "#756bb1")
ROLE_STYLES: Final = {"web": "-", "backend": "--", "api": ":"}


@dataclass
class Timeline:
    """One timed deploy under load; times are seconds from the deploy command's start."""

    tool: str
    label: str
    scenario: str
    seconds: float
    switches: dict[str, float | None] = field(default_factory=dict)
    # (time, role, status, version) of every response, status 0 for a request that got none.
    responses: list[tuple[float, str, int, str]] = field(default_factory=list)

    def save(self) -> Path:
        OUT.mkdir(parents=True, exist_ok=True)
        path = OUT / f"timeline-{self.tool}.json"
        path.write_text(json.dumps(asdict(self)))
        return path

    @classmethod
    def load(cls, path: Path) -> Timeline:
        data = json.loads(path.read_text())
        data["responses"] = [tuple(response) for response in data["responses"]]
        return cls(**data)

    @property
    def failed(self) -> int:
        return sum(1 for _, _, status, _ in self.responses if status != 200)


def bins(timeline: Timeline, start: float, end: float) -> tuple[list[float], dict[str, list[int]], list[int]]:
    """Left edges of the 100 ms bins from start to end, answers per version per bin, failures per bin."""
    count = max(1, round((end - start) / BIN_SECONDS))
    edges = [start + index * BIN_SECONDS for index in range(count)]
    versions: dict[str, list[int]] = {}
    failures = [0] * count
    for at, _, status, version in timeline.responses:
        index = int((at - start) / BIN_SECONDS)
        if not 0 <= index < count:
            continue
        if status == 200:
            versions.setdefault(version, [0] * count)[index] += 1
        else:
            failures[index] += 1
    return edges, versions, failures


def version_order(timelines: list[Timeline]) -> list[str]:
    """Every version that answered, by name (v1, v2, v3: old ones first), so colours agree across the pictures."""
    return sorted({version for timeline in timelines for _, _, status, version in timeline.responses if status == 200})


def draw(timeline: Timeline, path: Path, span: tuple[float, float], colors: dict[str, str], top: float) -> None:
    edges, versions, failures = bins(timeline, *span)
    figure, axes = plt.subplots(figsize=(10, 4.2), dpi=110)
    axes.axvspan(0, timeline.seconds, color="#f0f0f0", zorder=0, label=f"deploy command ({timeline.seconds:.1f} s)")
    bottom = [0] * len(edges)
    for version in colors:
        counts = versions.get(version)
        if counts is None:
            continue
        axes.bar(edges, counts, width=BIN_SECONDS, bottom=bottom, align="edge", color=colors[version],
                 label=f"answered by {version}", zorder=2)  # fmt: skip
        bottom = [below + count for below, count in zip(bottom, counts, strict=True)]
    if any(failures):
        axes.bar(edges, failures, width=BIN_SECONDS, bottom=bottom, align="edge", color=FAILED_COLOR,
                 label="failed", zorder=3)  # fmt: skip
    for role in ROLES:
        switched = timeline.switches.get(role)
        if switched is not None:
            axes.axvline(switched, color="black", linestyle=ROLE_STYLES[role], linewidth=1.2, zorder=4,
                         label=f"{role} switched ({switched:.1f} s)")  # fmt: skip
    total = len(timeline.responses)
    axes.set_title(
        f"{timeline.label}: {timeline.scenario} under load, {timeline.failed} failed of {total:,} requests", fontsize=11
    )
    axes.set_xlabel("seconds from the start of the deploy command")
    axes.set_ylabel("requests per 100 ms")
    axes.set_xlim(*span)
    axes.set_ylim(0, top)
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def render(timelines: list[Timeline]) -> list[Path]:
    """One PNG per tool in bench/out/, on one time axis and one scale, copied to docs/images/."""
    if not timelines:
        return []
    start = min(min((at for at, *_ in t.responses), default=0.0) for t in timelines)
    end = max(max((at for at, *_ in t.responses), default=t.seconds) for t in timelines)
    span = (min(start, -0.5), end + BIN_SECONDS)
    order = version_order(timelines)
    colors = {version: VERSION_COLORS[index % len(VERSION_COLORS)] for index, version in enumerate(order)}
    peak = 1
    for timeline in timelines:
        _, versions, failures = bins(timeline, *span)
        per_bin = [sum(column) for column in zip(*versions.values(), failures, strict=True)]
        peak = max(peak, *per_bin)
    written: list[Path] = []
    DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
    for timeline in timelines:
        path = OUT / f"deploy-timeline-{timeline.tool}.png"
        draw(timeline, path, span, colors, peak * 1.1)
        shutil.copyfile(path, DOCS_IMAGES / path.name)
        written += [path, DOCS_IMAGES / path.name]
    return written


def saved() -> list[Timeline]:
    """The timelines the last bench run kept, quayside's first."""
    paths = sorted(OUT.glob("timeline-*.json"), key=lambda path: (path.stem != "timeline-quayside", path.stem))
    return [Timeline.load(path) for path in paths]


def main() -> None:
    for path in render(saved()):
        print(path)


if __name__ == "__main__":
    main()
