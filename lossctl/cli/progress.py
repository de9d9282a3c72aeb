"""A progress bar on stderr for work that takes more than a second, on a terminal only.

It appears only once a second has passed (quick runs never flash a bar), never when
stderr is not a terminal or with ``--quiet``, and disappears when the work is done.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


def show_after_seconds() -> float:
    """1 s, or ``$LOSSCTL_PROGRESS_AFTER`` (the tests show the bar at once with 0)."""
    try:
        return float(os.environ.get("LOSSCTL_PROGRESS_AFTER", "1.0"))
    except ValueError:
        return 1.0


class Progress:
    """Counts ``total`` units of work; thread-safe :meth:`advance`."""

    def __init__(self, total: int, description: str, *, enabled: bool = True) -> None:
        self.total = total
        self.description = description
        self.enabled = enabled and sys.stderr is not None and sys.stderr.isatty()
        self.done = 0
        self.started = time.monotonic()
        self._bar: Any = None
        self._task: Any = None
        self._lock = threading.Lock()

    def advance(self, units: int = 1, total: int | None = None) -> None:
        """``units`` more done (of ``total``, when the caller learns it only now)."""
        if not self.enabled:
            return
        with self._lock:
            self.done += units
            if total is not None:
                self.total = total
            if self._bar is None and time.monotonic() - self.started >= show_after_seconds():
                self._show()
            if self._bar is not None:
                self._bar.update(self._task, completed=self.done, total=self.total)

    def _show(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TaskProgressColumn, TimeRemainingColumn

        self._bar = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            TaskProgressColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._bar.start()
        self._task = self._bar.add_task(self.description, total=self.total, completed=self.done)

    def close(self) -> None:
        with self._lock:
            if self._bar is not None:
                self._bar.stop()
                self._bar = None


@contextmanager
def following_tasks(tasks: int, quiet: bool) -> Iterator[Callable[[int, int], None]]:
    """A bar of cluster tasks: yields the ``on_done(done, total)`` the engine calls as each
    task finishes (``lossctl ce`` and ``kl`` with ``--scheduler``)."""
    progress = Progress(tasks, "tasks", enabled=not quiet)
    try:
        yield lambda done, total: progress.advance(1, total)
    finally:
        progress.close()
