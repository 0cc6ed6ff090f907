"""Sharded training through accelerate's FSDP version 2 (`fully_shard`), on the CPU: two processes (gloo) shard the
student per decoder layer, keep the teachers whole in eval mode, take the steps one process takes, and leave a
checkpoint that one process resumes, optimizer state included. accelerate turns FSDP on only for runs on an
accelerator, so `fsdp_cpu_run.py` forces it on for these CPU processes (a shim in the tests, not in Nexus)."""
import json, os, shutil, subprocess, sys
from pathlib import Path
import pytest
from conftest import distill_flags

HERE = Path(__file__).parent
TORCHRUN = shutil.which("torchrun") or pytest.fail("torchrun is not on PATH (it comes with torch)")
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
FSDP = {"ACCELERATE_USE_FSDP": "true", "FSDP_VERSION": "2", "FSDP_STATE_DICT_TYPE": "FULL_STATE_DICT",
        "FSDP_AUTO_WRAP_POLICY": "TRANSFORMER_BASED_WRAP"}  # what accelerate launch sets from the tutorial's config

def run(cmd, env=ENV, timeout=180):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)

def check(cmd, **kw):
    r = run(cmd, **kw)
    assert r.returncode == 0, r.stderr[-3000:]
    return r

def losses(run_dir): return [json.loads(l) for l in open(Path(run_dir) / "losses.jsonl")]

def close(a, b, tol=1e-5): return all(abs(a[k] - b[k]) <= tol * max(1.0, abs(a[k])) for k in a if k.startswith("loss"))

def test_fsdp2_matches_one_process_and_resumes_alone(distill_setup, tmp_path):
    script, one, two = str(HERE / "distill_run.py"), tmp_path / "one", tmp_path / "two"
    flags = lambda **kw: json.dumps(distill_flags(distill_setup, max_steps=4, save_steps=2, **kw))
    check([sys.executable, script, str(one), flags(batch_size=8)])
    check([TORCHRUN, "--nproc_per_node", "2", str(HERE / "fsdp_cpu_run.py"), str(two), flags(batch_size=4)],
          env={**ENV, **FSDP})
    note = json.loads((two / "fsdp.json").read_text())
    assert note["student_sharded"] and note["groups"] == ["model.layers.0", "model.layers.1"], note
    assert note["teachers"] == {"general": {"sharded": False, "training": False}}, note
    assert [r["step"] for r in losses(two)] == [1, 2, 3, 4]
    for a, b in zip(losses(one), losses(two)): assert close(a, b), (a, b)
    # the sharded run's student, saved whole, measures as the single process's does
    metrics = [json.loads((d / "metrics.json").read_text()) for d in (one, two)]
    assert all(abs(metrics[0]["after"][k] - metrics[1]["after"][k]) <= 1e-4 * metrics[0]["after"][k]
               for k in ("kl", "perplexity")), metrics
    assert (two / "student" / "model.safetensors").exists()
    # both checkpoints resumed by one process for three more steps (8 rows a step, as before): the same steps, so
    # the optimizer's moments came back from the sharded run's full optimizer state (step 7 depends on them)
    for d in (one, two): check([sys.executable, script, str(d), "--resume", json.dumps({"max_steps": 7, "batch_size": 8})])
    after_one, after_two = losses(one), losses(two)
    assert [r["step"] for r in after_two] == [1, 2, 3, 4, 5, 6, 7]
    for a, b in zip(after_one[4:], after_two[4:]): assert close(a, b), (a, b)
    state = json.loads((two / ".pipeline_state.json").read_text())
    assert state["run"]["global_step"] == 7 and state["run"]["last_checkpoint"] == "checkpoints/checkpoint-7"

def test_sharded_state_dict_is_refused_with_what_to_set(distill_setup, tmp_path):
    r = run([TORCHRUN, "--nproc_per_node", "2", str(HERE / "fsdp_cpu_run.py"), str(tmp_path / "run"),
             json.dumps(distill_flags(distill_setup, max_steps=2))],
            env={**ENV, **FSDP, "FSDP_STATE_DICT_TYPE": "SHARDED_STATE_DICT"})
    assert r.returncode != 0 and "set fsdp_state_dict_type: FULL_STATE_DICT" in r.stderr, r.stderr[-3000:]
