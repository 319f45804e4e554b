"""Data: the strict release-format reader, the synthetic generator, user splits and pools.

``python -m crossmod.data.synthetic`` writes a synthetic set in the release format;
``crossmod.data.validate`` reads a release folder into a checked table;
``crossmod.data.splits`` draws the 70/10/20 user splits and ``crossmod.data.pools`` the
15-answer retrieval pools; ``arrays`` stores per-modality matrices in Parquet.
"""
