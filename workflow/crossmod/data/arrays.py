"""Parquet tables with one fixed-size array column per modality.

Feature tables keep the annotation's metadata as ordinary columns and each modality's
vectors as a fixed-size-list column, so that a whole modality converts to an
(n, d) NumPy matrix without a Python loop.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


def write_table(meta: pd.DataFrame, arrays: dict[str, np.ndarray], path: str | Path) -> None:
    table = pa.Table.from_pandas(meta.reset_index(drop=True), preserve_index=False)
    for name, matrix in arrays.items():
        matrix = np.ascontiguousarray(matrix, dtype=np.float32)
        if matrix.ndim != 2 or len(matrix) != len(meta):
            raise ValueError(f"{name}: expected ({len(meta)}, d), got {matrix.shape}")
        values = pa.array(matrix.reshape(-1), type=pa.float32())
        table = table.append_column(
            name, pa.FixedSizeListArray.from_arrays(values, matrix.shape[1])
        )
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)


def read_table(path: str | Path) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Metadata columns as a DataFrame, array columns as float32 matrices."""
    table = pq.read_table(path)
    arrays: dict[str, np.ndarray] = {}
    meta_columns = []
    for name, column in zip(table.column_names, table.columns, strict=True):
        if pa.types.is_fixed_size_list(column.type):
            flat = column.combine_chunks()
            width = column.type.list_size
            arrays[name] = flat.values.to_numpy(zero_copy_only=False).reshape(-1, width)
        else:
            meta_columns.append(name)
    return table.select(meta_columns).to_pandas(), arrays
