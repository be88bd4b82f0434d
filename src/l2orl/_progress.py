"""Progress bars of long jobs (rich), shown on a terminal or in a notebook only."""

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Column


def progress_bar(enabled: bool) -> Progress:
    """A rich `Progress` on stderr: description, bar, `done/total`, the task's `status` field,
    elapsed time and ETA. Disabled unless `enabled` and stderr is a terminal or a notebook, so
    logs and pipes stay free of redraws (`TTY_COMPATIBLE=1` forces it on)."""
    console = Console(stderr=True)
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(bar_width=20),
        MofNCompleteColumn(),
        # the figures wrap onto more lines where the terminal is narrow
        TextColumn("{task.fields[status]}", table_column=Column(ratio=1, no_wrap=False)),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        expand=True,
        disable=not (enabled and (console.is_terminal or console.is_jupyter)),
    )
