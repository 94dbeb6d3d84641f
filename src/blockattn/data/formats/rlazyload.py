"""Reading R lazy-load databases (`data/Rdata.rdb` + `.rdx`), the way installed R packages ship datasets.

The `.rdx` index is an RDS object mapping each variable to (offset, length) in the `.rdb`; each record
there is a 4-byte length followed by a zlib-compressed R serialisation, which PyPI `rdata` parses.
"""

from __future__ import annotations

import warnings
import zlib
from pathlib import Path
from typing import Any


def read_lazyload(stem: Path, name: str) -> Any:
    """The R object `name` from the lazy-load database `stem`.rdb/.rdx, converted to Python."""
    import rdata

    with warnings.catch_warnings():  # rdata warns about R classes it has no constructor for; harmless here
        warnings.simplefilter("ignore")
        index = rdata.read_rds(stem.with_suffix(".rdx"))
        offset, length = (int(x) for x in index["variables"][name])
        with stem.with_suffix(".rdb").open("rb") as f:
            f.seek(offset)
            record = f.read(length)
        return rdata.conversion.convert(rdata.parser.parse_data(zlib.decompress(record[4:])))
