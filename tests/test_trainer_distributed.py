"""The objective doesn't depend on how a global batch is split: over micro-batches (accumulation) or processes
(torchrun, gloo on CPU). And a distributed run's checkpoint resumes in a single process."""
import json, os, shutil, subprocess, sys
from pathlib import Path
import pytest, torch
from conftest import distill_flags

HERE = Path(__file__).parent
TORCHRUN = shutil.which("torchrun") or pytest.fail("torchrun is not on PATH (it comes with torch)")
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}

def check(cmd, timeout=600):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=ENV)
    assert r.returncode == 0, r.stderr[-3000:]
    return r

def test_batch_split_and_accumulation_give_the_same_step(tmp_path):
    runs = {"8x1": [sys.executable], "2x4": [sys.executable], "2 processes x 4": [TORCHRUN, "--nproc_per_node", "2"]}
    shape = {"8x1": ("8", "1"), "2x4": ("2", "4"), "2 processes x 4": ("4", "1")}
    res = {}
    for name, launcher in runs.items():
        out = tmp_path / f"{name.replace(' ', '_')}.pt"
        check([*launcher, str(HERE / "distill_grads.py"), str(out), *shape[name]])
        res[name] = torch.load(out)
    ref = res["8x1"]
    for name in ("2x4", "2 processes x 4"):
        for k, v in ref["loss"].items():
            assert abs(res[name]["loss"][k] - v) <= 1e-6 * max(1.0, abs(v)), (name, k, v, res[name]["loss"][k])
        assert torch.allclose(res[name]["grads"], ref["grads"], rtol=1e-6, atol=1e-6), (name, (res[name]["grads"] - ref["grads"]).abs().max())

def losses(run_dir): return [json.loads(l) for l in open(Path(run_dir) / "losses.jsonl")]

def test_torchrun_matches_one_process_and_resumes_alone(distill_setup, tmp_path):
    script = str(HERE / "distill_run.py")
    check([sys.executable, script, str(tmp_path / "one"), json.dumps(distill_flags(distill_setup, batch_size=8, max_steps=4))])
    check([TORCHRUN, "--nproc_per_node", "2", script, str(tmp_path / "two"), json.dumps(distill_flags(distill_setup, batch_size=4, max_steps=4))])
    one, two = losses(tmp_path / "one"), losses(tmp_path / "two")
    assert [r["step"] for r in two] == [1, 2, 3, 4]
    for a, b in zip(one, two):
        for k in a:
            assert abs(a[k] - b[k]) <= 1e-5 * max(1.0, abs(a[k])), (a["step"], k, a[k], b[k])
    # the two-process checkpoint, resumed by a single process for two more steps
    check([sys.executable, script, str(tmp_path / "two"), "--resume", json.dumps({"max_steps": 6})])
    after = losses(tmp_path / "two")
    assert [r["step"] for r in after] == [1, 2, 3, 4, 5, 6] and all(r["loss_total"] == r["loss_total"] for r in after)
    state = json.loads((tmp_path / "two" / ".pipeline_state.json").read_text())
    assert state["run"]["global_step"] == 6 and (tmp_path / "two" / "student" / "model.safetensors").exists()

def test_finished_distributed_run_resumed_with_more_steps_trains_them(distill_setup, tmp_path):
    "Only the main process knows the flags lengthened the plan: every process must agree there is training left."
    script, run = str(HERE / "distill_run.py"), str(tmp_path / "run")
    two = [TORCHRUN, "--nproc_per_node", "2", script, run]
    check([*two, json.dumps(distill_flags(distill_setup, batch_size=4, max_steps=2))], timeout=300)
    check([*two, "--resume", json.dumps({"max_steps": 3})], timeout=300)
    assert [r["step"] for r in losses(run)] == [1, 2, 3]
    assert json.loads((tmp_path / "run" / ".pipeline_state.json").read_text())["run"]["global_step"] == 3
