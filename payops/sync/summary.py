"""What one sync did: :class:`SyncSummary` (a table for people, a dict for JSON)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from payops.ingest import IngestSummary
from payops.streams import STREAMS

__all__ = ["SyncSummary"]


@dataclass
class SyncSummary:
    """What one sync did. ``print(summary)`` shows the table; ``as_dict()`` for JSON."""

    mode: str = "incremental"
    streams: dict[str, dict[str, Any]] = field(default_factory=dict)
    events_new: int = 0
    events_duplicate: int = 0
    requests: int = 0
    rate_limited: int = 0
    retries: int = 0
    elapsed: float = 0.0
    fallbacks: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def stream(self, name: str) -> dict[str, Any]:
        return self.streams.setdefault(name, {"new": 0, "updated": 0, "unchanged": 0,
                                              "pages": 0, "how": ""})

    def add_ingest(self, s: IngestSummary) -> None:
        for table, counts in s.tables.items():
            row = self.stream(table)
            for k in ("new", "updated", "unchanged"):
                row[k] += counts.get(k, 0)
        self.events_new += s.events_new
        self.events_duplicate += s.events_duplicate

    @property
    def new(self) -> int:
        return sum(r["new"] for r in self.streams.values())

    @property
    def updated(self) -> int:
        return sum(r["updated"] for r in self.streams.values())

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in (
            "mode", "streams", "events_new", "events_duplicate", "requests", "rate_limited",
            "retries", "elapsed", "fallbacks", "notes")}

    def table(self) -> str:
        """The summary as a plain-text table."""
        lines = [f"{'stream':<22}{'new':>9}{'updated':>9}{'unchanged':>11}{'pages':>7}  how"]
        for name in STREAMS:
            if name not in self.streams:
                continue
            r = self.streams[name]
            lines.append(f"{name:<22}{r['new']:>9,}{r['updated']:>9,}{r['unchanged']:>11,}"
                         f"{r['pages']:>7,}  {r['how']}")
        lines.append(f"events: {self.events_new:,} new, {self.events_duplicate:,} already seen")
        lines.append(f"requests {self.requests:,}, 429s {self.rate_limited:,}, retries "
                     f"{self.retries:,}, elapsed {self.elapsed:.1f} s")
        for f in self.fallbacks:
            lines.append(f"fallback: {f}")
        for n in self.notes:
            lines.append(f"note: {n}")
        return "\n".join(lines)

    __str__ = table

    def _repr_html_(self) -> str:  # notebooks
        import html
        return f"<pre>{html.escape(self.table())}</pre>"
