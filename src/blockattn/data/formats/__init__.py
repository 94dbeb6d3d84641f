"""Parsers for the text formats our sources ship in (plain prose, reStructuredText, pod, roff, HTML, code).

Each turns a file into `Piece`s (see `blockattn.data.documents`) and knows nothing about packages.
"""
