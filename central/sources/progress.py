"""Progress bars for long commands: on stderr, and only when stderr is a terminal."""

from __future__ import annotations

import sys

from tqdm import tqdm


def progress_bar(*, total: int, unit: str, desc: str, enabled: bool = True) -> tqdm:
    """A tqdm bar on stderr; silent when ``enabled`` is false or stderr is not a terminal."""
    return tqdm(
        total=total,
        unit=unit,
        unit_scale=unit == "B",
        desc=desc,
        file=sys.stderr,
        disable=not enabled or not sys.stderr.isatty(),
        dynamic_ncols=True,
    )
