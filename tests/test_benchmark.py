import json

import pytest

from deploy_helpers import tiny_model
from unireplknet.benchmark import benchmark_modes, check_fits_memory, format_table, measure_gemm_peak
from unireplknet.cli import main


def test_benchmark_modes_tiny():
    model = tiny_model()
    modes = ["eager", "deploy", "channels-last", "optimized", "bf16"]
    results = benchmark_modes(model, modes, batch_size=2, input_size=(1, 64, 64), warmup=1, repeats=2,
                              latency_iters=2, gemm_peak=False)
    assert [r.mode for r in results] == modes
    deploy = results[1]
    assert deploy.speedup_vs_deploy == pytest.approx(1.0) == deploy.speedup_best_vs_deploy
    assert deploy.latency_min_speedup_vs_deploy == pytest.approx(1.0)
    for r in results:
        assert r.throughput > 0 and r.latency_p50_ms > 0 and r.latency_p90_ms >= r.latency_p50_ms
        assert r.params == deploy.params and r.macs == deploy.macs > 0
        assert r.throughput_best >= r.throughput and r.latency_min_ms <= r.latency_p50_ms  # best repeat vs median
    assert results[0].params == deploy.params  # counted on the deploy structure
    table = format_table(results)
    assert table.count("\n") >= 6 and "| optimized | 2 |" in table


def test_gemm_peak_positive():
    peak = measure_gemm_peak(n=128, repeats=2)
    assert 0 < peak < 1e6  # GFLOP/s: positive, below a PFLOP/s (speed itself depends on the machine's load)


def test_benchmark_bad_input():
    model = tiny_model()
    with pytest.raises(ValueError, match="too small"):
        benchmark_modes(model, ["deploy"], batch_size=1, input_size=(1, 16, 64))
    with pytest.raises(ValueError, match="needs --device cuda"):
        benchmark_modes(model, ["deploy", "optimized-cudagraphs"], batch_size=1, input_size=(1, 32, 32))
    with pytest.raises(ValueError, match="unknown benchmark mode"):
        benchmark_modes(model, ["turbo"], batch_size=1, input_size=(1, 32, 32))
    with pytest.raises(ValueError, match="does not fit"):
        check_fits_memory(model, 10**9, (1, 224, 224))
    with pytest.raises(ValueError, match="does not fit"):
        benchmark_modes(model, ["deploy"], batch_size=10**9, input_size=(1, 224, 224))


def test_cli_benchmark_json(tmp_path, capsys):
    out = tmp_path / "b.json"
    code = main(["benchmark", "--model", "unireplknet_a", "--modes", "deploy,optimized", "--batch-size", "1",
                 "--input-size", "3", "32", "32", "--repeats", "1", "--warmup", "1", "--latency-iters", "0",
                 "--no-gemm-peak", "--json", str(out)])
    text = capsys.readouterr().out
    assert code == 0, text
    data = json.loads(out.read_text())
    assert [r["mode"] for r in data["results"]] == ["deploy", "optimized"]
    assert data["results"][0]["params"] > 4e6  # unireplknet_a has ~4.4M parameters
    assert "| optimized |" in text
    assert main(["benchmark", "--modes", "turbo"]) == 2
    assert main(["benchmark", "--input-size", "3", "8", "8"]) == 2
    assert "too small" in capsys.readouterr().err
