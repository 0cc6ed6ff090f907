"""A writer killed with SIGKILL at random moments never leaves a broken state: afterwards the file always parses and
equals one of the states that were written (the one before the kill, or one the killed writer finished)."""
import os, random, signal, time
from pathlib import Path
import pytest
from nexus.state import (PipelineState, HyperParams, RunInfo, DatasetConfig, STATE_FILE, save_state, load_state,
                         open_run, state_path)

KILLS, MIN_KILLS, TIME_LIMIT_S = 300, 200, 90.0

def state_number(i) -> PipelineState:
    "The i-th state a writer writes. Sizes and contents vary with i, so a torn file could not pass for a whole one."
    return PipelineState(
        teachers={f"t{j}": f"/models/teacher-{i}-{j}/" + "x" * (i % 200) for j in range(1 + i % 40)},
        datasets={"code": DatasetConfig(f"/data/code-{i}", "t0")},
        hyper=HyperParams(lr=1e-4 * (1 + i % 7), sample_size=1 + i),
        run=RunInfo(global_step=i))

def _writer(run_dir, first):
    "Child process: rewrite the state forever, state `first`, `first + 1`, ... until killed."
    try:
        i = first
        while True:
            save_state(state_number(i), run_dir)
            i += 1
    finally:
        os._exit(3)  # reached only if saving raised: the parent reports it

@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork and SIGKILL (POSIX)")
def test_sigkill_at_random_moments_leaves_old_or_new_state(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    save_state(state_number(0), run_dir)
    rng = random.Random(1234)
    last, kills, torn, progressed, temps = 0, 0, 0, 0, set()
    start = time.monotonic()
    while kills < KILLS and time.monotonic() - start < TIME_LIMIT_S:
        first = (kills + 1) * 1_000_000
        pid = os.fork()
        if pid == 0: _writer(run_dir, first)
        time.sleep(rng.uniform(0, 0.015))  # a write takes a few ms: kills land before, inside and between writes
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, f"the writer stopped by itself ({status})"
        kills += 1
        left = {p.name for p in run_dir.iterdir() if p.name.endswith(".tmp")}
        torn += bool(left - temps)  # this writer was killed in the middle of a write
        temps |= left
        state = load_state(run_dir)  # parses and validates, or the test fails here
        step = state.run.global_step
        assert step == last or first <= step < first + 1_000_000, f"state {step} was never written by this writer"
        assert state == state_number(step), f"the file holds a mix of states (step {step})"
        progressed += step != last
        last = step
    assert kills >= MIN_KILLS, f"only {kills} kills in {TIME_LIMIT_S} s"
    assert torn > 0, "no kill landed in the middle of a write, so the test proved nothing; make the states bigger"
    assert progressed > 0, "no writer ever finished a write"
    # the next process to open the run removes what the killed writers left behind, and reads the last good state
    with open_run(run_dir) as run:
        assert run.state.config() == state_number(last).config()
    assert sorted(p.name for p in run_dir.iterdir()) == sorted([".pipeline_state.lock", STATE_FILE])
    print(f"{kills} kills in {time.monotonic() - start:.1f} s: {torn} mid-write, {progressed} after a finished write")
