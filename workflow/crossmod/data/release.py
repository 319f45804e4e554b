"""Reading the public ``cross_mod`` release format, strictly and loudly.

Layout of a dataset folder (SPEC section 1)::

    <root>/data.csv                              (or data_ads.csv / data_coco.csv)
    <root>/ims/<prefix>/<name>.jpg
    <root>/bv/<prefix>/<name>_<task_id>.mat      (key 'hm'; optional 'clicks')

Every row is checked; every problem is collected with the row number and a reason.
In strict mode (the default) any problem refuses the whole dataset and the error
lists all of them at once; in lenient mode the bad rows are dropped, returned as
rejects with their reasons, and counted. Nothing is dropped silently.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.io
from PIL import Image

from crossmod.features.bfi import COLUMNS as BFI_COLUMNS
from crossmod.features.bfi import PersonalityFormatError, parse_personality

CSV_NAMES: tuple[str, ...] = ("data.csv", "data_ads.csv", "data_coco.csv")
REQUIRED_COLUMNS: tuple[str, ...] = ("task_id", "image", "ad_msg", "personality", "mturker_id")
ANNOTATION_COLUMNS: tuple[str, ...] = (
    "annotation_id",
    "row",
    "task_id",
    "user",
    "image",
    "image_path",
    "map_path",
    "height",
    "width",
    "caption",
    *BFI_COLUMNS,
)
REJECT_COLUMNS: tuple[str, ...] = ("row", "line", "task_id", "image", "reason")


class DatasetError(Exception):
    """The dataset cannot be read as it is; the message lists every problem."""


@dataclass(frozen=True)
class Problem:
    row: int  # 1-based data row (the header is not a row)
    line: int  # 1-based line of the file where the row starts
    task_id: str
    image: str
    reason: str

    def __str__(self) -> str:
        where = f"row {self.row} (line {self.line})"
        what = f" task_id={self.task_id!r} image={self.image!r}" if self.image else ""
        return f"{where}{what}: {self.reason}"


@dataclass
class ReadResult:
    annotations: pd.DataFrame
    rejects: list[Problem] = field(default_factory=list)
    csv_path: Path | None = None

    def rejects_frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            [[p.row, p.line, p.task_id, p.image, p.reason] for p in self.rejects],
            columns=list(REJECT_COLUMNS),
        )


def find_csv(root: Path) -> Path:
    """The annotation table of a release folder, by the names the release uses."""
    for name in CSV_NAMES:
        candidate = root / name
        if candidate.is_file():
            return candidate
    raise DatasetError(f"{root}: no annotation table found (looked for {', '.join(CSV_NAMES)})")


def image_path(root: Path, image: str) -> Path:
    return root / "ims" / image


def map_path(root: Path, image: str, task_id: str) -> Path:
    """``ims/<prefix>/<name>.jpg`` of task T has its map at ``bv/<prefix>/<name>_T.mat``."""
    rel = Path(image)
    return root / "bv" / rel.parent / f"{rel.stem}_{task_id}.mat"


def load_map(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """The BubbleView map ``hm`` (float) and, when stored, the clicks (N x 3: x, y, order)."""
    mat = scipy.io.loadmat(path)
    if "hm" not in mat:
        raise ValueError(f"{path}: no 'hm' variable")
    hm = np.asarray(mat["hm"], dtype=np.float32)
    clicks = mat.get("clicks")
    if clicks is not None:
        clicks = np.asarray(clicks, dtype=np.float64).reshape(-1, 3)
    return hm, clicks


def _decode_rows(csv_path: Path) -> tuple[list[str], list[tuple[int, int, list[str]]]]:
    """Header and rows (row number, line number, cells) of the CSV.

    Bytes that are not UTF-8 are kept as surrogates so that the offending row can be
    named later instead of the whole file failing to decode.
    """
    text = csv_path.read_bytes().decode("utf-8", errors="surrogateescape")
    if text.startswith("\ufeff"):
        text = text[1:]
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise DatasetError(f"{csv_path}: the file is empty") from None
    rows = []
    line = reader.line_num + 1
    for number, cells in enumerate(reader, start=1):
        rows.append((number, line, cells))
        line = reader.line_num + 1
    return [h.strip() for h in header], rows


def _bad_bytes(cells: list[str]) -> str | None:
    for cell in cells:
        if any("\udc80" <= ch <= "\udcff" for ch in cell):
            raw = cell.encode("utf-8", errors="surrogateescape")
            return f"not valid UTF-8: {raw!r}"
    return None


def read_release(root: str | Path, *, lenient: bool = False) -> ReadResult:
    """Read and validate one dataset folder in the release format.

    Returns the annotation table (one row per annotation, columns
    :data:`ANNOTATION_COLUMNS`) and, in lenient mode, the rejected rows. Raises
    :class:`DatasetError` listing every problem in strict mode.
    """
    root = Path(root)
    csv_path = find_csv(root)
    header, rows = _decode_rows(csv_path)
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise DatasetError(
            f"{csv_path}: missing column(s) {', '.join(missing)}; found {', '.join(header)}"
        )
    index = {name: header.index(name) for name in REQUIRED_COLUMNS}

    problems: list[Problem] = []
    records: list[dict] = []
    seen: dict[tuple[str, str], int] = {}
    for number, line, cells in rows:
        if not any(cell.strip() for cell in cells):
            continue  # blank line at the end of a file: not an annotation
        get = {name: (cells[i].strip() if i < len(cells) else "") for name, i in index.items()}
        task_id, image = get["task_id"], get["image"]
        reasons: list[str] = []
        if len(cells) != len(header):
            reasons.append(f"has {len(cells)} fields, the header has {len(header)}")
        bad = _bad_bytes(cells)
        if bad:
            reasons.append(bad)
        if not task_id:
            reasons.append("empty task_id")
        if not get["mturker_id"]:
            reasons.append("empty mturker_id")
        if not get["ad_msg"]:
            reasons.append("empty caption (ad_msg)")
        answers: tuple[int, ...] | None = None
        try:
            answers = parse_personality(get["personality"])
        except PersonalityFormatError as err:
            reasons.append(str(err))
        key = (task_id, image)
        if key in seen:
            reasons.append(f"duplicate (task_id, image): first seen in row {seen[key]}")
        else:
            seen[key] = number
        height = width = None
        img_file = map_file = None
        if not image:
            reasons.append("empty image")
        elif not bad:
            img_file = image_path(root, image)
            map_file = map_path(root, image, task_id)
            if not img_file.is_file():
                reasons.append(f"missing image {img_file}")
            else:
                try:
                    with Image.open(img_file) as im:
                        width, height = im.size
                except OSError as err:
                    reasons.append(f"unreadable image {img_file}: {err}")
            if not map_file.is_file():
                reasons.append(f"missing map {map_file}")
            else:
                try:
                    hm, _ = load_map(map_file)
                except (ValueError, OSError, NotImplementedError) as err:
                    reasons.append(f"unreadable map {map_file}: {err}")
                else:
                    if hm.ndim != 2:
                        reasons.append(f"map {map_file} has {hm.ndim} dimensions, expected 2")
                    elif height is not None and hm.shape != (height, width):
                        reasons.append(
                            f"map {map_file} is {hm.shape[0]}x{hm.shape[1]} (HxW) "
                            f"but its image is {height}x{width}"
                        )
                    elif not np.isfinite(hm).all():
                        reasons.append(f"map {map_file} has non-finite values")
        if reasons:
            problems.append(Problem(number, line, task_id, image, "; ".join(reasons)))
            continue
        assert answers is not None and img_file is not None and map_file is not None
        records.append(
            {
                "row": number,
                "task_id": task_id,
                "user": get["mturker_id"],
                "image": image,
                "image_path": str(img_file),
                "map_path": str(map_file),
                "height": height,
                "width": width,
                "caption": get["ad_msg"],
                **dict(zip(BFI_COLUMNS, answers, strict=True)),
            }
        )

    if problems and not lenient:
        listing = "\n".join(f"  {csv_path}: {p}" for p in problems)
        raise DatasetError(
            f"{csv_path}: {len(problems)} of {len(rows)} rows have problems "
            f"(set reader.lenient to drop them instead):\n{listing}"
        )
    frame = pd.DataFrame.from_records(records, columns=[c for c in ANNOTATION_COLUMNS[1:]])
    frame.insert(0, "annotation_id", np.arange(len(frame), dtype=np.int64))
    frame = frame.astype({"row": "int64", "height": "int64", "width": "int64"})
    frame = frame.astype({c: "int8" for c in BFI_COLUMNS})
    return ReadResult(frame, problems, csv_path)
