"""`unireplknet info`, the CLI dispatcher and the lazy-extra error."""
import json
import subprocess
import sys

import pytest

from reference_weights import manifest
from unireplknet._extras import MissingExtraError, require
from unireplknet.cli import main


def test_info_json_counts_match_reference(capsys):
    assert main(["info", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    rows = {r["model"]: r for r in data["variants"]}
    assert len(rows) == 9
    for name, row in rows.items():
        ref = manifest()[name]
        assert row["params_train"] == ref["params_train"] and row["params_deploy"] == ref["params_deploy"]
        if ref["macs_224_deploy"]:
            assert abs(row["macs"] - ref["macs_224_deploy"]) <= 0.01 * ref["macs_224_deploy"]
    tops = {w["tag"]: w["top1"] for w in data["weights"]}
    assert tops["unireplknet_s.in22k_ft_in1k_384"] == 86.44 and tops["unireplknet_a.in1k_224"] == 77.03


def test_info_table_via_python_m():
    out = subprocess.run([sys.executable, "-m", "unireplknet", "info"], capture_output=True, text=True, check=True)
    assert "unireplknet_xl" in out.stdout and "87.96" in out.stdout
    assert "Compiled training kernels: " in out.stdout


def test_info_says_which_training_kernels_run(capsys, monkeypatch):
    from unireplknet.ops import native

    assert main(["info", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)["training_kernels"]
    assert status.startswith("loaded from ") if native.available() else "PyTorch's kernels" in status
    monkeypatch.setitem(native._STATE, "enabled", False)
    assert main(["info", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["training_kernels"].startswith("switched off (UNIREPLKNET_NATIVE=0")


def test_missing_extra_names_the_extra():
    with pytest.raises(MissingExtraError, match=r"pip install 'unireplknet\[audio\]'"):
        require("surely_not_an_installed_module_xyz", "audio", "reading audio")
