"""Progress bars on stderr: percent, amount done and time left while a command works.

A bar is drawn only when stderr is a terminal and the output is not ``--json``; rich
draws it and is imported only then (tooling: the Lambda functions never import
``model_store.cli``). Without a bar, a command's notes are plain lines on stderr.
"""

from __future__ import annotations

import sys
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self, TextIO

if TYPE_CHECKING:
    from rich.progress import Progress, ProgressColumn, TaskID

Unit = Literal["bytes", "fits", "lines"]


def wanted(as_json: bool, stream: TextIO | None = None) -> bool:
    """Whether to draw a bar: stderr (or STREAM) is a terminal and the output is for people."""
    isatty = getattr(stream or sys.stderr, "isatty", None)
    try:
        return not as_json and callable(isatty) and bool(isatty())
    except ValueError:  # a closed stream
        return False


class Bar:
    """One task's bar, a context manager; every method does nothing when it is not shown.

    ``unit`` says what is counted: ``bytes`` (shown as kB/MB with a rate), ``fits`` (model
    fits of a grid search), or ``lines`` (bytes of a file, with a ``lines`` count field).
    """

    def __init__(
        self,
        description: str,
        unit: Unit,
        *,
        total: float | None = None,
        show: bool,
        stream: TextIO | None = None,
    ) -> None:
        self.stream = stream or sys.stderr
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        if show:
            self._progress = _progress(self.stream, unit)
            self._task = self._progress.add_task(description, total=total, lines=0)

    @property
    def shown(self) -> bool:
        return self._progress is not None

    def __enter__(self) -> Self:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()

    def update(
        self,
        *,
        completed: float | None = None,
        advance: float | None = None,
        total: float | None = None,
        description: str | None = None,
        **fields: Any,
    ) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.update(
                self._task,
                completed=completed,
                advance=advance,
                total=total,
                description=description,
                **fields,
            )

    def finish(self, **fields: Any) -> None:
        """All of the total done (a total is set to what was done if there was none)."""
        if self._progress is not None and self._task is not None:
            task = self._progress.tasks[self._task]
            total = task.total if task.total is not None else task.completed
            self._progress.update(self._task, total=total, completed=total, **fields)

    def note(self, message: str) -> None:
        """A line of text: above the bar when there is one, else on stderr."""
        if self._progress is not None:
            self._progress.console.print(
                message, markup=False, highlight=False, emoji=False, soft_wrap=True
            )
        else:
            print(message, file=self.stream, flush=True)


def _progress(stream: TextIO, unit: Unit) -> Progress:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        MofNCompleteColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    class _Console(Console):
        """A console that leaves the cursor alone: none is left hidden by an interrupted
        command, and the bar's last line ends the output."""

        def show_cursor(self, show: bool = True) -> bool:
            return False

    amounts: dict[Unit, list[ProgressColumn]] = {
        "bytes": [DownloadColumn(), TransferSpeedColumn()],
        "fits": [MofNCompleteColumn(), TextColumn("fits")],
        "lines": [TextColumn("{task.fields[lines]:,} lines read"), DownloadColumn()],
    }
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(bar_width=20),
        TaskProgressColumn(),
        *amounts[unit],
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=_Console(file=stream),
        # Only the bar goes to stderr: what the command prints on stdout stays there.
        redirect_stdout=False,
        redirect_stderr=False,
    )
