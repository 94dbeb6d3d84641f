"""Where blockattn keeps converted models, fetched sources and caches: $BLOCKATTN_HOME (~/.cache/blockattn)."""

from __future__ import annotations

import os
from pathlib import Path


def blockattn_home() -> Path:
    return Path(os.environ.get("BLOCKATTN_HOME", "~/.cache/blockattn")).expanduser()
