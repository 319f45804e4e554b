"""The release-format reader: strict refuses and lists every problem; lenient drops and records."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from conftest import good_row, make_release, write_map
from crossmod.data.release import DatasetError, load_map, read_release

BAD_ROWS = {
    2: "missing image",
    3: "missing map",
    4: "is 20x31 (HxW) but its image is 20x30",
    5: "has 3 answers",
    6: "empty caption",
    7: "duplicate (task_id, image): first seen in row 1",
    8: "not valid UTF-8",
    9: "is outside 1..5",
}
NON_UTF8 = "CAPTION-WITH-BAD-BYTES"


@pytest.fixture
def corrupt_release(tmp_path):
    rows = [good_row(i) for i in range(1, 12)]
    rows[1]["no_image"] = True  # row 2
    rows[2]["no_map"] = True  # row 3
    rows[3]["map_shape"] = (20, 31)  # row 4
    rows[4]["personality"] = "[1 2 3]"  # row 5
    rows[5]["ad_msg"] = "   "  # row 6
    rows[6]["task_id"], rows[6]["image"] = rows[0]["task_id"], rows[0]["image"]  # row 7
    rows[7]["ad_msg"] = NON_UTF8  # row 8
    rows[8]["personality"] = "[1 2 3 4 5 1 2 3 4 9]"  # row 9
    csv_path = make_release(tmp_path, rows)
    # Row 8 gets bytes that are not UTF-8 (Latin-1 "café").
    raw = csv_path.read_bytes().replace(NON_UTF8.encode(), b"caf\xe9 au lait")
    csv_path.write_bytes(raw)
    return tmp_path


def test_good_folder_reads_every_row(tmp_path):
    make_release(tmp_path, [good_row(i) for i in range(1, 6)])
    result = read_release(tmp_path)
    frame = result.annotations
    assert len(frame) == 5 and result.rejects == []
    assert frame["annotation_id"].tolist() == [0, 1, 2, 3, 4]
    assert frame["row"].tolist() == [1, 2, 3, 4, 5]
    assert frame.loc[0, "bfi_reserved"] == 2 and frame.loc[0, "bfi_imagination"] == 4
    assert (frame["height"] == 20).all() and (frame["width"] == 30).all()
    assert frame.loc[0, "map_path"].endswith("bv/1/img_001_101.mat")
    assert frame.loc[0, "user"] == "U1"


def test_strict_mode_names_every_problem_with_its_row(corrupt_release):
    with pytest.raises(DatasetError) as info:
        read_release(corrupt_release)
    message = str(info.value)
    assert "8 of 11 rows have problems" in message
    for row, reason in BAD_ROWS.items():
        lines = [line for line in message.splitlines() if f"row {row} (line {row + 1})" in line]
        assert len(lines) == 1, (row, message)
        assert reason in lines[0], (row, lines[0])
        assert "data.csv" in lines[0]
    for good in (1, 10, 11):
        assert f"row {good} " not in message


def test_lenient_mode_drops_exactly_the_bad_rows_and_says_why(corrupt_release):
    result = read_release(corrupt_release, lenient=True)
    assert result.annotations["row"].tolist() == [1, 10, 11]
    rejects = result.rejects_frame()
    assert rejects["row"].tolist() == sorted(BAD_ROWS)
    for row, reason in BAD_ROWS.items():
        assert reason in rejects.loc[rejects["row"] == row, "reason"].item()
    # Everything is accounted for: kept + rejected = all rows.
    assert len(result.annotations) + len(rejects) == 11


def test_release_file_names_and_missing_columns(tmp_path):
    make_release(tmp_path, [good_row(1)], csv_name="data_ads.csv")
    assert len(read_release(tmp_path).annotations) == 1
    (tmp_path / "data_ads.csv").write_text("task_id,image,caption\n1,a.jpg,x\n")
    with pytest.raises(DatasetError, match="missing column"):
        read_release(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError, match="no annotation table"):
        read_release(empty)


def test_map_clicks_are_read(tmp_path):
    clicks = np.array([[3.0, 4.0, 1.0], [10.0, 12.0, 2.0]])
    path = tmp_path / "m.mat"
    write_map(path, np.ones((5, 6), dtype=np.float32), clicks)
    hm, got = load_map(path)
    assert hm.shape == (5, 6)
    np.testing.assert_array_equal(got, clicks)


def test_cli_strict_exits_1_and_lenient_writes_rejects(corrupt_release, tmp_path):
    out, rejects = tmp_path / "out" / "a.parquet", tmp_path / "out" / "rejects.csv"
    base = [sys.executable, "-m", "crossmod.data.validate", "--root", str(corrupt_release)]
    args = ["--out", str(out), "--rejects", str(rejects)]
    strict = subprocess.run(base + args, capture_output=True, text=True)
    assert strict.returncode == 1
    assert "row 2 (line 3)" in strict.stderr and "row 9 (line 10)" in strict.stderr
    assert not out.exists()
    lenient = subprocess.run(base + args + ["--lenient"], capture_output=True, text=True)
    assert lenient.returncode == 0, lenient.stderr
    assert "dropped 8 bad row(s)" in lenient.stderr
    assert len(pd.read_parquet(out)) == 3
    assert pd.read_csv(rejects)["row"].tolist() == sorted(BAD_ROWS)
