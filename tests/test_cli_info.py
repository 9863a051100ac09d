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


def test_missing_extra_names_the_extra():
    with pytest.raises(MissingExtraError, match=r"pip install 'unireplknet\[audio\]'"):
        require("surely_not_an_installed_module_xyz", "audio", "reading audio")
