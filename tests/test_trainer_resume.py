"A run stopped by SIGTERM and resumed with no flags logs the same losses at every step as an uninterrupted run."
import json, os, signal, subprocess, sys, time
from pathlib import Path
import torch
from safetensors.torch import load_file
from conftest import distill_flags

SCRIPT = str(Path(__file__).with_name("distill_run.py"))

def losses(run_dir): return [json.loads(l) for l in open(Path(run_dir) / "losses.jsonl")]

def run(run_dir, *args, **kw):
    return subprocess.Popen([sys.executable, SCRIPT, str(run_dir), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)

def test_sigterm_then_resume_is_exact(distill_setup, tmp_path):
    flags = json.dumps(distill_flags(distill_setup, max_steps=24))
    whole = run(tmp_path / "whole", flags)
    out, err = whole.communicate(timeout=600)
    assert whole.returncode == 0, err[-2000:]

    stopped = run(tmp_path / "stopped", flags)
    log = tmp_path / "stopped" / "losses.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and (not log.exists() or len(log.read_text().splitlines()) < 3): time.sleep(0.01)
    stopped.send_signal(signal.SIGTERM)
    out, err = stopped.communicate(timeout=300)
    assert stopped.returncode == 143, err[-2000:]
    done_before = len(losses(tmp_path / "stopped"))
    assert 3 <= done_before < 24, "the signal must land mid-run"
    state = json.loads((tmp_path / "stopped" / ".pipeline_state.json").read_text())
    assert state["run"]["last_checkpoint"] == f"checkpoints/checkpoint-{done_before}"

    resumed = run(tmp_path / "stopped", "--resume")  # no flags: the saved state decides everything
    out, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err[-2000:]

    a, b = losses(tmp_path / "whole"), losses(tmp_path / "stopped")
    assert [r["step"] for r in b] == list(range(1, 25))
    assert a == b  # every component at every step, bitwise (JSON keeps every float digit)
    wa, wb = load_file(tmp_path / "whole" / "student" / "model.safetensors"), load_file(tmp_path / "stopped" / "student" / "model.safetensors")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
