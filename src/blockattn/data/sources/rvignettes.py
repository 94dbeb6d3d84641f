"""R package vignettes (the `doc/*.Rmd` files of Debian `r-cran-*` packages): text of a kind SemanticSeg
never contains (issue 3 keeps them out), for judging a segmenter on unseen text. Not part of SemanticSeg's
registry: only `blockattn data build-unseen` uses this source. Gold boundaries: the vignettes' headings.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from blockattn.data.documents import Document
from blockattn.data.fetch import Package
from blockattn.data.formats.markdown import markdown_pieces
from blockattn.data.sources.base import Source

CATEGORY = "r-vignettes"
_PACKAGES = (
    ("r-cran-data.table", "1.14.8+dfsg-1"), ("r-cran-dplyr", "1.0.10-1"), ("r-cran-tidyr", "1.3.0-1"),
    ("r-cran-ggplot2", "3.4.1+dfsg-1"), ("r-cran-testthat", "3.1.6-1"), ("r-cran-tibble", "3.1.8+dfsg-1"),
    ("r-cran-httr", "1.4.5+dfsg-1"), ("r-cran-stringr", "1.5.0-1"), ("r-cran-magrittr", "2.0.3-1"),
    ("r-cran-knitr", "1.42+dfsg-1"), ("r-cran-jsonlite", "1.8.4+dfsg-1"), ("r-cran-readr", "2.1.4-1"),
    ("r-cran-purrr", "1.0.1-1"), ("r-cran-glue", "1.6.2-1"), ("r-cran-lubridate", "1.9.2+dfsg-1"),
    ("r-cran-forcats", "1.0.0-1"), ("r-cran-devtools", "2.4.5-1"),
)


def parse(roots: Sequence[Path]) -> Iterator[Document]:
    for root in roots:
        for path in sorted(root.glob("usr/lib/R/site-library/*/doc/*.Rmd")):
            package = path.parent.parent.name
            title, pieces = markdown_pieces(path.read_text(encoding="utf-8", errors="replace"))
            if pieces:
                key = f"{package}/{path.stem}"
                yield Document(f"r-vignettes/{key}", "r-vignettes", CATEGORY, title or key, group=f"rvig:{key}",
                               pieces=tuple(pieces))


R_VIGNETTES = Source(
    name="r-vignettes", category=CATEGORY, packages=tuple(Package("debian", n, v) for n, v in _PACKAGES),
    license="each package's licence (MIT / GPL-2+ / GPL-3 / MPL-2.0; see its copyright file)",
    description="R Markdown vignettes of 17 CRAN packages", parse=parse, version=2)
