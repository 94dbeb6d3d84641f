"""Speed benchmarks. Each writes JSON under reports/ and a plot beside it; ratios are measured in one run."""
