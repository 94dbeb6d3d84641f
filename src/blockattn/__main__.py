"""`python -m blockattn ...` == the `blockattn` command (used where the console script is not installed)."""

from blockattn.cli import main

main()
