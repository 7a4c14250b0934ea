"""benchmarks/gpu_suite.py, the prepared GPU check, in its dry run (CPU, smallest sizes): every step runs and
reports a status, a table and a key=value line; a step that fails is recorded and the others still run;
command-line mistakes are one line."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SUITE = ROOT / "benchmarks" / "gpu_suite.py"
STEPS = ["setup", "parity_torch", "parity_onnxruntime", "cuda_graphs", "runtime", "latent_vs_token", "depth_scaling",
         "node"]  # fmt: skip


def run_suite(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SUITE), *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, check=False)  # fmt: skip


def kv(path: Path) -> dict[str, str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1, lines
    return dict(part.split("=", 1) for part in lines[0].split())


@pytest.mark.slow
def test_dry_run_runs_every_step(tmp_path: Path) -> None:
    done = run_suite("--dry-run", "--out", str(tmp_path))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for step in STEPS:
        md = (tmp_path / f"{step}.md").read_text(encoding="utf-8")
        assert md.startswith(f"## {step}: ") and "\nstatus: ok (" in md, md[:2000]
        assert "\n|---" in md or "\n|-" in md, f"{step}.md has no table"
        values = kv(tmp_path / f"{step}.kv")
        assert values["step"] == step and values["status"] == "ok" and float(values["seconds"]) > 0
        assert len(values) > 3, f"{step}.kv holds no numbers: {values}"
        assert (tmp_path / f"{step}.log").is_file()
    summary = (tmp_path / "summary.md").read_text(encoding="utf-8")
    assert summary.startswith("# GPU suite: dry run on the CPU")
    for step in STEPS:
        assert f" {step} |" in summary
    assert summary.count("dry run: not a measurement") == 3  # no target is marked met or missed
    assert kv(tmp_path / "summary.kv")["mode"] == "dry"
    # the steps that measure say what they compared: parity within tolerance and the same k*, on the CPU
    assert kv(tmp_path / "parity_torch.kv")["parity_ok"] == "1"
    assert kv(tmp_path / "parity_onnxruntime.kv")["parity_ok"] == "1"
    assert kv(tmp_path / "cuda_graphs.kv")["graphs_fallback"] == "1"  # the CPU runs the head eagerly
    assert float(kv(tmp_path / "node.kv")["chunks_per_s_graphs"]) > 0


@pytest.mark.slow
def test_a_failed_step_is_recorded_and_the_others_run(tmp_path: Path) -> None:
    # without --dry-run: a machine with no CUDA device runs the dry run by itself, and says so
    no_gpu = shutil.which("nvidia-smi") is None and not Path("/dev/nvidia0").exists()
    done = run_suite(*([] if no_gpu else ["--dry-run"]), "--out", str(tmp_path), "--only", "parity_torch",
                     "latent_vs_token", "--step-timeout", "parity_torch=0.5")  # fmt: skip
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    if no_gpu:
        assert "no CUDA device on this machine (nvidia-smi lists none, no /dev/nvidia0): dry run" in done.stdout
    failed = kv(tmp_path / "parity_torch.kv")
    assert failed["status"] == "failed"
    md = (tmp_path / "parity_torch.md").read_text(encoding="utf-8")
    assert "status: failed: timed out: stopped after 0.5 s" in md
    assert kv(tmp_path / "latent_vs_token.kv")["status"] == "ok"
    summary = (tmp_path / "summary.md").read_text(encoding="utf-8")
    assert "failed: timed out" in summary and "latent_vs_token" in summary
    assert not (tmp_path / "runtime.md").exists()  # not selected


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--step-timeout", "nosuch=3"], "gpu_suite: --step-timeout nosuch=3: unknown step 'nosuch'"),
        (["--step-timeout", "node=soon"], "gpu_suite: --step-timeout node=soon: 'soon' is not a number of seconds"),
        (["--step-timeout", "0"], "gpu_suite: --step-timeout 0: must be > 0 seconds"),
        (["--budget", "-1"], "gpu_suite: --budget must be > 0 seconds, got -1"),
        (["--only", "everything"], "gpu_suite: argument --only: invalid choice: 'everything'"),
    ],
)
def test_command_line_mistakes_are_one_line(args: list[str], message: str) -> None:
    done = run_suite(*args, timeout=60)
    assert done.returncode == 2
    assert done.stdout == "" and done.stderr.count("\n") == 1 and done.stderr.startswith(message), done.stderr
