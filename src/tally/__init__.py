"""Tally: self-hosted usage statistics, served through the statistics APIs admins already use.

The package is layered: ``model`` (directory and events), ``stores`` (one module per backend behind
``stores.base.Store``), ``engine`` (ingest and the statistics questions), ``api`` (one thin facade
per API family) and ``cli``.
"""

from __future__ import annotations

__version__ = "0.1.0"
