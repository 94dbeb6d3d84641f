"""SemanticSeg: the multi-category segmentation dataset, built offline from registry packages (issue 3).

    build(out, n_instances, categories, seed, workers)   the dataset, into a folder of Parquet files
    load_split(dir, split) / iter_split(dir, split)       reading it back (HF `datasets` / plain dicts)
    sources.load_units(source)                           independent texts of one source, for other stages
"""

from blockattn.data.parquet import iter_split, load_split

__all__ = ["iter_split", "load_split"]
