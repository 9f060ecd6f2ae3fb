"""Allow ``python -m tally``."""

from __future__ import annotations

from tally.cli import cli

cli()
