"""The detection example runs end to end (reduced --quick settings) and writes its PNG.

(The segmentation example's training path, ``run_segmentation_training``, is run end to end by
``test_segmentation.py::test_train_command_on_a_mask_folder``.)
"""
import json
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _run(script: str, out: Path) -> dict:
    proc = subprocess.run([sys.executable, str(EXAMPLES / script), "--quick", "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out / "result.json").read_text())


def test_detection_example_quick(tmp_path):
    res = _run("detection_shapes.py", tmp_path / "det")
    assert res["iters"] == 6 and 0.0 <= res["AP50"] <= 1.0
    assert res["reparam_max_score_diff"] < 1e-3
    assert Path(res["png"]).stat().st_size > 1000

