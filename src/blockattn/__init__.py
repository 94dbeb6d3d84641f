"""blockattn: block attention for LLMs.

Blocks of the input cannot attend to one another, except the final (query) block, which sees everything;
each block's KV cache is computed once and reused at any position. See README.md for the tour.
"""

__version__ = "0.1.0"
