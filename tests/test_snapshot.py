import gzip

import pytest

from paperscope.errors import SnapshotError
from paperscope.sources.snapshot import read_snapshot

from .conftest import FIXTURES

SAMPLE = FIXTURES / "snapshot-sample.jsonl"


def test_wanted_records_are_read_and_cleaned():
    found = read_snapshot(SAMPLE, ["2106.09685", "0704.0001", "9999.99999"])
    assert set(found) == {"2106.09685", "0704.0001"}
    old = found["0704.0001"]
    assert old.title == "Calculation of prompt diphoton production cross sections"
    assert old.abstract == "A fully differential calculation in perturbative QCD."
    assert old.authors == ("C. Balázs", "E. L. Berger")
    assert (old.year, old.primary_category, old.source) == (2007, "hep-ph", "snapshot:snapshot-sample.jsonl")
    lora = found["2106.09685"]
    assert lora.authors == ("Edward J. Hu", "Yelong Shen") and lora.year == 2021


def test_missing_fields_fall_back_to_the_id_and_the_authors_string():
    qlora = read_snapshot(SAMPLE, ["2305.14314"])["2305.14314"]
    assert qlora.year == 2023  # from the id: no versions listed
    assert qlora.authors == ("Tim Dettmers", "Artidoro Pagnoni")


def test_gzip_snapshots_are_streamed(tmp_path):
    packed = tmp_path / "snapshot.json.gz"
    packed.write_bytes(gzip.compress(SAMPLE.read_bytes()))
    assert set(read_snapshot(packed, ["2305.14314"])) == {"2305.14314"}


def test_only_wanted_lines_are_parsed(tmp_path):
    noisy = tmp_path / "noisy.jsonl"
    noisy.write_text(SAMPLE.read_text() + '{"id": "1111.11111", broken json\n')
    assert set(read_snapshot(noisy, ["2106.09685"])) == {"2106.09685"}
    assert read_snapshot(noisy, ["1111.11111"]) == {}  # a damaged record is skipped, not fatal


def test_progress_reports_bytes_read():
    seen = []
    read_snapshot(SAMPLE, ["none"], progress=seen.append)
    assert sum(seen) == SAMPLE.stat().st_size


@pytest.mark.parametrize("content, message", [
    ("hello world\n", "not an arXiv metadata snapshot"),
])
def test_files_of_another_format_are_refused(tmp_path, content, message):
    path = tmp_path / "other.txt"
    path.write_text(content)
    with pytest.raises(SnapshotError, match=message):
        read_snapshot(path, ["2106.09685"])


def test_a_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(SnapshotError, match="Snapshot file not found"):
        read_snapshot(tmp_path / "nope.jsonl", ["x"])
