"""What a sweep prints: one line per finished point numbered over the whole sweep (follow-ups
included), an ETA that says what it covers, and the answer at the end.

The count never restarts when follow-up points are added: the total grows instead, and while an
experiment can still add follow-ups the ETA says it covers only the points planned so far.
"""

from __future__ import annotations

import os

from lbbench.config import Config
from lbbench.training.progress import eta_text


class SweepProgress:
    """Counts finished points over the whole sweep and estimates the time the rest will take."""

    def __init__(self, total: int, log, more_may_come: bool = False):
        self.total, self.log, self.more_may_come = total, log, more_may_come
        self.done = 0
        self.seconds: list[float] = []

    def skipped(self, n: int) -> None:
        """`n` points were already finished before this process started."""
        self.done += n
        if n:
            self.log(f"lbbench.sweep: {n} of {self.total} runs already finished; skipping them")

    def added(self, n: int) -> None:
        """Follow-up points joined the sweep."""
        self.total += n

    def eta(self) -> str:
        left = self.total - self.done
        if left <= 0:
            return "follow-ups may come next" if self.more_may_come else "all planned points done"
        if not self.seconds:
            return f"{left} left"
        guess = eta_text(sum(self.seconds) / len(self.seconds) * left)
        return f"ETA {guess} for the {left} planned point(s) left" + (" + follow-ups" if self.more_may_come else "")

    def finished(self, cfg: Config, status: str, result: dict | None, error, secs: float) -> None:
        """Log one finished point: `[7/12] name: completed val_acc 0.91 test_acc 0.90 (12 s; ETA ...)`."""
        self.done += 1
        self.seconds.append(secs)
        final = (result or {}).get("final") or {}
        if status == "completed" and final.get("test_accuracy") is not None:
            val = f"val_acc {final['val_accuracy']:.4f} " if final.get("val_accuracy") is not None else ""
            what = f"{val}test_acc {final['test_accuracy']:.4f}"
        else:
            what = error or ""
        self.log(f"[{self.done}/{self.total}] {cfg.run_name}: {status} {what} ({secs:.0f} s; {self.eta()})")


def conclusions_of(analysis: dict | None) -> list[str]:
    """The sentences an experiment's analyze() concluded (top level or in its summary), if any."""
    if not isinstance(analysis, dict):
        return []
    found = analysis.get("conclusions")
    if found is None and isinstance(analysis.get("summary"), dict):
        found = analysis["summary"].get("conclusions")
    return [str(c) for c in found] if isinstance(found, list) else []


def answer_lines(sweep_dir: str, analysis: dict | None, report_path: str) -> list[str]:
    """The lines a sweep ends with: its conclusions, then where to read the whole answer."""
    lines = [f"lbbench.sweep: answer: {c}" for c in conclusions_of(analysis)]
    answer = os.path.join(sweep_dir, "answer.md")
    where = answer if os.path.exists(answer) else report_path
    return lines + [
        f"lbbench.sweep: read the answer in {where}" + (f" (report {report_path})" if where != report_path else "")
    ]
