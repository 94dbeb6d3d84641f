"""Experiment recipes: runs that train (distill/) and then measure (eval/), writing reports."""
