"""The recording index on disk: one Parquet part per (bag content, model version), written atomically.

A part's name is its bag's content hash and the model version, so a rerun of a bag replaces its part instead of
appending rows: the index never holds a clip twice, and workers on many machines write without coordination
(each writes only its own bags' parts; on object storage a part is one PUT).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from vljepa_ros.index.schema import SCHEMA

PARTS_FOLDER = "clips"


class RecordingIndex:
    """The Parquet parts under `root`/clips: add a bag's rows, ask whether a bag is in, read everything back."""

    def __init__(self, root: Path | str):
        self.root = Path(root)
        self.parts = self.root / PARTS_FOLDER

    def part_path(self, bag_hash: str, model_version: str) -> Path:
        """Where the rows of one bag under one model version live."""
        return self.parts / f"{model_version}-{bag_hash}.parquet"

    def has_bag(self, bag_hash: str, model_version: str) -> bool:
        """True when this bag's rows under this model version are in the index."""
        return self.part_path(bag_hash, model_version).is_file()

    def add_bag(self, rows: pa.Table, bag_hash: str, model_version: str) -> Path:
        """Write (or replace) the part of one bag; rows must all carry this bag hash and model version."""
        rows = rows.cast(SCHEMA)
        if len(rows) and (
            set(rows["bag_hash"].to_pylist()) != {bag_hash} or set(rows["model_version"].to_pylist()) != {model_version}
        ):
            raise ValueError("add_bag: every row must carry the given bag hash and model version")
        if len(pc.unique(rows["key"])) != len(rows):
            raise ValueError("add_bag: duplicate clip keys in one bag")
        self.parts.mkdir(parents=True, exist_ok=True)
        path = self.part_path(bag_hash, model_version)
        partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
        pq.write_table(rows, partial)
        os.replace(partial, path)  # readers see the whole part or none of it
        return path

    def part_files(self) -> list[Path]:
        """Every complete part, sorted by name."""
        return sorted(self.parts.glob("*.parquet")) if self.parts.is_dir() else []

    def table(self, columns: list[str] | None = None) -> pa.Table:
        """All rows (or some columns) of the index, parts in name order."""
        files = self.part_files()
        if not files:
            return SCHEMA.empty_table() if columns is None else SCHEMA.empty_table().select(columns)
        return pa.concat_tables([pq.read_table(f, columns=columns, schema=SCHEMA) for f in files])

    def __len__(self) -> int:
        return sum(pq.ParquetFile(f).metadata.num_rows for f in self.part_files())


def vectors_of(table: pa.Table, column: str = "embedding") -> np.ndarray:
    """(N, E) float32 matrix of a list<float32> column (rows all of one width)."""
    values = table[column].combine_chunks()
    if len(values) == 0:
        return np.zeros((0, 0), np.float32)
    flat = values.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    return flat.reshape(len(values), -1)
