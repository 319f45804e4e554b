"""Reporting: tidy CSVs across datasets, the paper's tables, and the report's figures.

``python -m crossmod.reporting.collect`` writes metrics.csv, weights.csv and
identity.csv; ``tables`` the paper's tables (SPEC 7) as CSV, Markdown, LaTeX and
HTML; ``plots`` the retrieval figures; ``examples`` the figure of a few annotations.
Methods, their labels, order and colours come from the method registry.
"""
