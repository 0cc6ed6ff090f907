"A run stopped by SIGTERM and resumed with no flags logs the same losses at every step as an uninterrupted run."
import json, os, signal, subprocess, sys, time
import pytest
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


# ---------------------------------------------------------------------------------------------- kills without warning
from hypothesis import HealthCheck, given, settings, strategies as st

STEPS = 12
KILL_FLAGS = dict(max_steps=STEPS, save_steps=2, logging_steps=2)  # checkpoints every 2 steps, logs every 2


def finish(run_dir, timeout=600):
    "Resume `run_dir` until it ends normally; returns the stderr of each resume."
    errs = []
    for _ in range(3):
        p = run(run_dir, "--resume")
        out, err = p.communicate(timeout=timeout)
        errs.append(err)
        if p.returncode == 0: return errs
    raise AssertionError(f"the run did not finish after 3 resumes:\n{errs[-1][-3000:]}")


def stop_after(run_dir, sig, lines, flags=None, timeout=300):
    "Start (with `flags`) or resume `run_dir`, send `sig` once its loss log has `lines` more lines; its exit code."
    log = Path(run_dir) / "losses.jsonl"
    have = len(log.read_text().splitlines()) if log.exists() else 0
    p = run(run_dir, *([flags] if flags else ["--resume"]))
    deadline = time.time() + timeout
    while time.time() < deadline and p.poll() is None and (
            not log.exists() or len(log.read_text().splitlines()) < have + lines):
        time.sleep(0.005)
    if p.poll() is None: p.send_signal(sig)
    p.communicate(timeout=timeout)
    return p.returncode


def same_run(tmp_path, run_dir):
    "The interrupted run logged what the uninterrupted one logged at every step, and saved the very same student."
    from nexus.pipeline import read_losses
    a, b = read_losses(tmp_path / "whole"), read_losses(run_dir)
    assert [r["step"] for r in b] == list(range(2, STEPS + 1, 2)) and a == b
    wa = load_file(tmp_path / "whole" / "student" / "model.safetensors")
    wb = load_file(Path(run_dir) / "student" / "model.safetensors")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.fixture(scope="module")
def whole(distill_setup, tmp_path_factory):
    "The uninterrupted reference run of the kill tests."
    root = tmp_path_factory.mktemp("kills")
    p = run(root / "whole", json.dumps(distill_flags(distill_setup, **KILL_FLAGS)))
    out, err = p.communicate(timeout=600)
    assert p.returncode == 0, err[-2000:]
    return root


def test_sigkill_resumes_from_the_newest_complete_checkpoint(distill_setup, whole):
    "A SIGKILL after some checkpoints: the resume says which checkpoint it takes, and ends as the uninterrupted run."
    run_dir = whole / "killed"
    flags = json.dumps(distill_flags(distill_setup, **KILL_FLAGS))
    assert stop_after(run_dir, signal.SIGKILL, 3, flags) == -signal.SIGKILL
    state = json.loads((run_dir / ".pipeline_state.json").read_text())
    recorded = state["run"]["last_checkpoint"]
    assert recorded and (run_dir / recorded / "nexus-checkpoint-complete").exists(), state["run"]
    errs = finish(run_dir)
    assert f"resuming from {recorded}" in errs[0] or "resuming from checkpoints/checkpoint-" in errs[0], errs[0]
    same_run(whole, run_dir)


def test_a_missing_recorded_checkpoint_falls_back(distill_setup, whole):
    "The state names a checkpoint that was deleted: the resume says so and takes the newest complete one."
    import shutil
    run_dir = whole / "deleted"
    flags = json.dumps(distill_flags(distill_setup, **KILL_FLAGS))
    assert stop_after(run_dir, signal.SIGTERM, 3, flags) == 143
    recorded = json.loads((run_dir / ".pipeline_state.json").read_text())["run"]["last_checkpoint"]
    shutil.rmtree(run_dir / recorded)
    errs = finish(run_dir)
    assert f"(the state recorded {recorded}, missing or incomplete)" in errs[0], errs[0]
    same_run(whole, run_dir)


@settings(max_examples=3, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from([signal.SIGTERM, signal.SIGKILL]), st.integers(1, 3)), min_size=1,
                max_size=3))
def test_any_sequence_of_stops_and_kills_ends_as_the_uninterrupted_run(distill_setup, whole, stops):
    "Property: SIGTERM and SIGKILL at any step, any number of times, each followed by a resume: the same losses, weights."
    run_dir = whole / f"seq-{abs(hash(tuple(stops)))}-{time.time_ns()}"
    flags = json.dumps(distill_flags(distill_setup, **KILL_FLAGS))
    for i, (sig, lines) in enumerate(stops):
        code = stop_after(run_dir, sig, lines, flags if i == 0 else None)
        assert code in (0, 143, -signal.SIGKILL), code
        if code == 0: break
    finish(run_dir)
    same_run(whole, run_dir)


def test_sigterm_before_the_first_step_leaves_no_run(distill_setup, tmp_path):
    "SIGTERM while a new run sets up (loading, tokenising): exit 143, no traceback, and no half-made run folder."
    run_dir = tmp_path / "new" / "run"
    p = run(run_dir, json.dumps(distill_flags(distill_setup, max_steps=4)),
            env={**os.environ, "DISTILL_RUN_SETUP_SECONDS": "60"})  # the signal lands while the data is read
    deadline = time.time() + 120
    while time.time() < deadline and not (run_dir / ".pipeline_state.json").exists(): time.sleep(0.005)
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=30)
    assert p.returncode == 143 and "Traceback" not in err, err[-2000:]
    assert not (tmp_path / "new").exists()
