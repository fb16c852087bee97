"""The CLI's console: on a terminal, its width; piped or redirected, wide enough to keep the tables."""

from __future__ import annotations

import os
import sys

from rich.console import Console

# Rich falls back to 80 columns when output is not a terminal, which cut the demo's table headers
# (`cli…`, `act…`) in CI logs; a file or a pipe has no width to respect, so tables keep theirs.
PIPED_WIDTH = 160


def make_console(*, stderr: bool = False) -> Console:
    """A console for stdout (stderr when `stderr`, so stdout stays machine-readable): the terminal's
    width, COLUMNS when set, else PIPED_WIDTH."""
    stream = sys.stderr if stderr else sys.stdout
    if stream.isatty() or os.environ.get("COLUMNS"):
        return Console(stderr=stderr)
    return Console(stderr=stderr, width=PIPED_WIDTH)
