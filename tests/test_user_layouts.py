"""How real folders look: byte-order marks, header case, `_class_` folders, archive leftovers, symlinked folders,
NFD names, 16-bit and EXIF-rotated images, and `auto` measuring only the training split."""
from __future__ import annotations

import os
import unicodedata
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from unireplknet.modalities.base import NOT_DATA_DIRS, class_folder_items, files_with, read_file_list, scan_splits
from unireplknet.modalities.image.auto import auto_config
from unireplknet.modalities.image.transforms import IMAGE_EXTENSIONS, load_image

EXTS = (".png",)


def _png(path: Path, size: int = 16, value: int = 100) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size), value, np.uint8)).save(path)
    return path


def test_csv_with_byte_order_mark_capitalised_header_and_split_case(tmp_path):
    for c in ("a", "b"):
        for i in range(3):
            _png(tmp_path / c / f"{i}.png")
    rows = ["Path,Label,Split"] + [f"{c}/{i}.png,{c},{'TEST' if i == 2 else 'Train'}" for c in "ab" for i in range(3)]
    (tmp_path / "list.csv").write_bytes(("\ufeff" + "\r\n".join(rows) + "\r\n").encode("utf-8"))
    got = read_file_list(tmp_path / "list.csv", EXTS)
    assert len(got) == 6 and {s for _, _, s in got} == {"train", "test"}
    splits = scan_splits(tmp_path / "list.csv", EXTS)
    assert list(splits.tests) == ["test"] and splits.classes == ["a", "b"]


def test_underscore_folders_are_classes_but_archive_leftovers_are_not(tmp_path):
    for c in ("yes", "_unknown_", "_silence_"):
        for i in range(2):
            _png(tmp_path / c / f"{i}.png")
    for junk in ("__MACOSX", "_background_noise_", ".git"):
        _png(tmp_path / junk / "x.png")
    _png(tmp_path / "yes" / "__MACOSX" / "y.png")
    (tmp_path / "yes" / "._0.png").write_bytes(b"\x00\x05\x16\x07")  # AppleDouble
    items = class_folder_items(tmp_path, EXTS)
    assert sorted({lab[0] for _, lab in items}) == ["_silence_", "_unknown_", "yes"]
    assert len(items) == 6 and "__macosx" in NOT_DATA_DIRS


def test_symlinked_sub_folder_is_followed_and_a_loop_terminates(tmp_path):
    _png(tmp_path / "data" / "a" / "0.png")
    _png(tmp_path / "data" / "b" / "0.png")
    for i in range(3):
        _png(tmp_path / "elsewhere" / f"{i}.png")
    os.symlink(tmp_path / "elsewhere", tmp_path / "data" / "a" / "more")
    os.symlink(tmp_path / "data" / "a", tmp_path / "data" / "a" / "loop")
    files = files_with(tmp_path / "data" / "a", EXTS)
    assert len(files) == 4


def test_class_names_in_nfd_and_nfc_are_one_class(tmp_path):
    nfc, nfd = unicodedata.normalize("NFC", "café"), unicodedata.normalize("NFD", "café")
    assert nfc != nfd
    for split, name in (("train", nfc), ("test", nfd)):
        for c in (name, "tea"):
            for i in range(3):
                _png(tmp_path / split / c / f"{i}.png")
    splits = scan_splits(tmp_path, EXTS)
    assert splits.classes == ["café", "tea"] and sum(len(v) for v in splits.tests.values()) == 6


def test_sixteen_bit_and_float_images_are_scaled_not_clipped(tmp_path):
    a = np.zeros((8, 8), np.uint16)
    a[:, 4:] = 4000
    Image.fromarray(a).save(tmp_path / "deep.png")
    with Image.open(tmp_path / "deep.png") as im:
        assert im.mode.startswith("I")
    got = np.asarray(load_image(tmp_path / "deep.png", 1))
    assert got[:, :4].max() == 0 and got[:, 4:].min() == round(4000 / 257)
    f = np.zeros((8, 8), np.float32)
    f[:4] = 0.5
    Image.fromarray(f, "F").save(tmp_path / "float.tif")
    got = np.asarray(load_image(tmp_path / "float.tif", 3))
    assert got.shape == (8, 8, 3) and got[:4].min() == 128 and got[4:].max() == 0


def test_exif_orientation_is_applied(tmp_path):
    img = Image.new("RGB", (20, 10), (0, 0, 0))
    img.paste((255, 255, 255), (0, 0, 10, 10))  # left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    img.save(tmp_path / "photo.jpg", exif=exif)
    got = np.asarray(load_image(tmp_path / "photo.jpg", 1)).astype(int)
    assert got.shape == (20, 10)  # shown upright: portrait
    assert got[:10].mean() > 200 and got[10:].mean() < 50  # the white half is now on top


def test_auto_measures_only_the_training_split(tmp_path):
    for c in ("a", "b"):
        for i in range(4):
            _png(tmp_path / "Train" / c / f"{i}.png", size=40)
            Image.fromarray(np.zeros((200, 200, 3), np.uint8)).save(_png(tmp_path / "Test" / c / f"{i}.png"))
    out = auto_config({"data": str(tmp_path), "seed": 0})
    assert out["input_size"][0] == 32 and out["in_chans"][0] == 1  # 40 px grey train images, not 200 px colour test


def test_auto_honours_data_root_for_a_csv_list(tmp_path):
    for c in ("a", "b"):
        for i in range(4):
            _png(tmp_path / "images" / c / f"{i}.png", size=40)
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "l.csv").write_text("path,label\n" + "".join(
        f"{c}/{i}.png,{c}\n" for c in "ab" for i in range(4)))
    out = auto_config({"data": str(tmp_path / "lists" / "l.csv"), "data_root": str(tmp_path / "images"), "seed": 0})
    assert out["input_size"][0] == 32


@pytest.mark.parametrize("ext", [".JPG", ".Png"])
def test_upper_case_extensions_are_found(tmp_path, ext):
    Image.new("RGB", (4, 4)).save(tmp_path / f"x{ext}", format="PNG" if "p" in ext.lower() else "JPEG")
    assert len(files_with(tmp_path, IMAGE_EXTENSIONS)) == 1


def test_a_class_without_validation_files_is_named_in_a_warning(tmp_path, caplog):
    for c, n in (("a", 6), ("b", 6), ("rare", 1)):
        for i in range(n):
            _png(tmp_path / c / f"{i}.png")
    with caplog.at_level("WARNING"):
        splits = scan_splits(tmp_path, EXTS)
    assert "rare" in splits.classes and "no validation file (rare)" in caplog.text
