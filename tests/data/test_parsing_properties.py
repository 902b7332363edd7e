"""Property-based tests (hypothesis) of the file-name and list-file parsers on random names: a
name either parses to what it encodes or is reported as a DatasetError, never another exception."""

from __future__ import annotations

import string
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from hcm.data.market1501 import DUKE_RULE, MARKET_RULE
from hcm.data.msmt17 import read_list_file
from hcm.data.parsing import IMAGE_SUFFIXES, is_image_name, read_image_folder
from hcm.data.veri776 import VERI_RULE
from hcm.errors import DatasetError

NAME_EXAMPLES = 200
FOLDER_EXAMPLES = 100
PROPERTY = settings(max_examples=NAME_EXAMPLES, deadline=None)
ON_DISK = settings(max_examples=FOLDER_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

#: characters a file name may hold on Linux, biased towards the ones re-ID names are made of
NAME_CHARS = st.one_of(st.sampled_from("0123456789_c-s.jpgJPGn "), st.characters(
    blacklist_categories=("Cs",), blacklist_characters="/\x00"))
#: names of at most 100 characters (4 UTF-8 bytes each stays below the 255-byte limit)
NAMES = st.text(NAME_CHARS, min_size=1, max_size=60)
#: stems in the datasets' own form (identity -1..9999, camera 0..21: some out of range, some junk)
VALID_STEMS = st.builds(lambda pid, cam, frame: f"{pid:04d}_c{cam}s1_{frame:06d}_01", st.integers(-1, 9999),
                        st.integers(0, 21), st.integers(0, 999999))
SUFFIXES = st.sampled_from(sorted(IMAGE_SUFFIXES) + [".JPG", ".txt", ""])


@PROPERTY
@given(pid=st.integers(-1, 10**6), cam=st.integers(0, 99), width=st.integers(1, 7),
       sep=st.sampled_from("s_"), rest=st.text(string.ascii_letters + string.digits + "_-", max_size=20),
       rule=st.sampled_from([MARKET_RULE, DUKE_RULE, VERI_RULE]))
def test_names_written_like_the_datasets_parse_to_what_they_encode(pid, cam, width, sep, rest, rule) -> None:
    cam_text = str(cam) if rule is VERI_RULE else str(cam % 10)
    # the camera ends at a non-digit: "s" (Market-1501 0002_c1s1_...) or "_" (DukeMTMC-reID, VeRi-776)
    name = f"{'-' if pid < 0 else ''}{abs(pid):0{width}d}_c{cam_text}{sep}{rest}.jpg"
    assert rule.parse(name) == (pid, int(cam_text))


@PROPERTY
@given(name=NAMES, rule=st.sampled_from([MARKET_RULE, DUKE_RULE, VERI_RULE]))
def test_any_name_parses_to_integers_or_to_none(name: str, rule) -> None:
    parsed = rule.parse(name)
    assert parsed is None or (isinstance(parsed[0], int) and isinstance(parsed[1], int))


@ON_DISK
@given(stems=st.lists(st.one_of(VALID_STEMS, VALID_STEMS, NAMES), min_size=1, max_size=8, unique=True), suffixes=st.lists(SUFFIXES, min_size=8, max_size=8),
       rule=st.sampled_from([MARKET_RULE, VERI_RULE]))
def test_a_folder_of_random_names_is_read_or_refused_with_a_dataset_error(stems, suffixes, rule) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        names = {f"{stem}{suffix}"[:100] for stem, suffix in zip(stems, suffixes[: len(stems)], strict=True)} - {".", ".."}
        for name in names:
            (folder / name).write_bytes(b"")
        try:
            rows, junk = read_image_folder(folder, rule)
        except DatasetError as exc:
            event("refused")
            assert str(exc).startswith(str(folder)), exc  # names the folder or the file
            return
    event("read")
    images = [n for n in names if is_image_name(n)]
    assert len(rows) + junk == len(images)  # every image read or counted as junk, none lost
    for path, pid, camid, orig_pid in rows:
        assert rule.parse(Path(path).name) == (pid, camid + 1) and pid == orig_pid != -1
        assert rule.camera_ok(camid + 1)


@ON_DISK
@given(lines=st.lists(st.one_of(
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=40),
    st.builds(lambda pid, cam, pid2: f"{pid:04d}/{pid:04d}_0_{cam:02d}_x.jpg {pid2}",
              st.integers(0, 20), st.integers(0, 20), st.integers(-2, 20))), max_size=8))
def test_a_list_file_of_random_lines_is_read_or_refused_with_a_dataset_error(lines: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "list_train.txt"
        path.write_text("\n".join(lines), encoding="utf-8")
        existing = {line.split()[0] for line in lines if len(line.split()) == 2}
        try:
            rows = read_list_file(path, Path(tmp) / "train", existing)
        except DatasetError as exc:
            event("refused")
            assert str(exc).startswith(str(path)), exc
            return
    event("read")
    for _, pid, camid, orig_pid in rows:
        assert pid == orig_pid != -1 and 0 <= camid <= 14
