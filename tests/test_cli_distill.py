"`nexus distill` as a user runs it: interrupted and resumed, bad input, and (slow) the real default."
import json, os, pty, select, signal, subprocess, sys, time, shutil
from pathlib import Path
import pytest, torch
from safetensors.torch import load_file

NEXUS = shutil.which("nexus") or pytest.fail("the `nexus` console script is not installed (pip install -e .)")

def tiny_args(root, run_dir, steps=24):
    return ["distill", "--run-dir", str(run_dir), "--teachers", f"general={root / 'general'}",
            "--datasets", f"general={root / 'data' / 'general'}", "--student_layers", "2", "--batch_size", "4",
            "--lr", "3e-3", "--max_seq_length", "32", "--save_steps", "1000", "--critical_layers", "1",
            "--max_steps", str(steps), "--seed", "7", "--hidden_weight", "1"]

def spawn_on_pty(args):
    "Run `nexus` with stdout and stderr on a pseudo-terminal, as in a user's shell (the progress line redraws)."
    master, slave = pty.openpty()
    p = subprocess.Popen([NEXUS, *map(str, args)], stdout=slave, stderr=slave, stdin=subprocess.DEVNULL, close_fds=True)
    os.close(slave)
    return p, master

def read_all(master, p, timeout):
    out, deadline = b"", time.time() + timeout
    while time.time() < deadline:
        r, _, _ = select.select([master], [], [], 0.05)
        if r:
            try: chunk = os.read(master, 65536)
            except OSError: break
            if not chunk: break
            out += chunk
        elif p.poll() is not None: break
    return out.decode(errors="replace")

@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupt_then_resume(distill_setup, tmp_path, sig, code):
    whole = subprocess.run([NEXUS, *tiny_args(distill_setup, tmp_path / "whole")], capture_output=True, text=True, timeout=900)
    assert whole.returncode == 0, whole.stderr[-2000:]

    run_dir = tmp_path / "stopped"
    p, master = spawn_on_pty(tiny_args(distill_setup, run_dir))
    out, log = "", run_dir / "losses.jsonl"
    deadline = time.time() + 600
    while time.time() < deadline and not (log.exists() and log.read_text().strip()):
        out += read_all(master, p, 0.05)
    p.send_signal(sig)
    out += read_all(master, p, 300)
    p.wait(timeout=60)
    os.close(master)
    assert p.returncode == code, out[-3000:]
    assert "Traceback" not in out
    tail = out.replace("\r\n", "\n").rsplit("\n", 1)
    assert tail[-1].strip("\r\x1b[K ") == "", f"a partial line after the last newline: {tail[-1]!r}"
    assert f"Resume with: nexus distill --resume {run_dir}" in out
    state = json.loads((run_dir / ".pipeline_state.json").read_text())
    assert state["run"]["last_checkpoint"] and (run_dir / state["run"]["last_checkpoint"] / "model.safetensors").exists()

    resumed = subprocess.run([NEXUS, "distill", "--resume", str(run_dir)], capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a, b = load_file(tmp_path / "whole" / "student" / "model.safetensors"), load_file(run_dir / "student" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)

@pytest.mark.parametrize("extra,text,code", [
    (["--frobnicate"], "unrecognized arguments: --frobnicate", 2),
    (["--teachers", "general=/no/such/model"], "no such file or folder", 1),
    (["--lr=-1"], "hyper.lr must be greater than 0", 2),
    (["--sample_size", "0"], "hyper.sample_size must be at least 1", 2),
    (["--datasets", "general={empty}"], "holds no dataset file", 1),
])
def test_bad_input_is_one_line_and_leaves_no_run(distill_setup, tmp_path, extra, text, code):
    empty = tmp_path / "empty-data"; empty.mkdir(); (empty / "notes.md").write_text("not a dataset")
    args = tiny_args(distill_setup, tmp_path / "run") + [e.format(empty=empty) for e in extra]
    r = subprocess.run([NEXUS, *args], capture_output=True, text=True, timeout=600)
    assert r.returncode == code, r.stderr[-2000:]
    assert r.stderr.strip().count("\n") == 0 and text in r.stderr and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert not (tmp_path / "run").exists(), "a failed start must leave no run folder behind"

def test_a_failed_start_or_resume_leaves_nothing(tmp_path):
    "A run that fails to start removes every folder it made (parents too); a resume of a non-run leaves no lock file."
    r = subprocess.run([NEXUS, "distill", "--run-dir", str(tmp_path / "new" / "a" / "b" / "run"), "--teachers",
                        "general=/no/such/model"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 1 and "no such file or folder" in r.stderr, r.stderr[-2000:]
    assert os.listdir(tmp_path) == [], os.listdir(tmp_path)
    (tmp_path / "plain").mkdir()
    r = subprocess.run([NEXUS, "distill", "--resume", str(tmp_path / "plain")], capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 1 and "no pipeline state in" in r.stderr, r.stderr[-2000:]
    assert os.listdir(tmp_path / "plain") == []

def test_relative_paths_are_saved_absolute(distill_setup, tmp_path):
    "Paths typed relative to one folder are saved absolute; a resume from elsewhere after the data moved says so."
    work = tmp_path / "work"
    shutil.copytree(distill_setup / "general", work / "m" / "general")
    shutil.copytree(distill_setup / "data" / "general", work / "m" / "data")
    args = tiny_args(distill_setup, "run", steps=2)
    args[args.index("--teachers") + 1], args[args.index("--datasets") + 1] = "general=m/general", "general=m/data"
    r = subprocess.run([NEXUS, *args], cwd=work, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    state = json.loads((work / "run" / ".pipeline_state.json").read_text())
    assert state["teachers"]["general"] == str(work / "m" / "general"), state["teachers"]
    assert state["datasets"]["general"]["path"] == str(work / "m" / "data"), state["datasets"]
    shutil.move(work / "m" / "data", work / "m" / "data-moved")
    r = subprocess.run([NEXUS, "distill", "--resume", str(work / "run"), "--max_steps", "4"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 1 and r.stderr.count("\n") == 1, r.stderr[-2000:]  # the error alone: nothing resumes
    assert f"datasets.general.path ({work / 'm' / 'data'}) no longer exists" in r.stderr, r.stderr

def test_resuming_a_finished_run_trains_nothing(distill_setup, tmp_path):
    "A finished run resumed says it is complete and trains nothing; a larger --max_steps extends it, shown as a diff."
    run_dir = tmp_path / "run"
    r = subprocess.run([NEXUS, *tiny_args(distill_setup, run_dir, steps=6)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    r = subprocess.run([NEXUS, "distill", "--resume", str(run_dir)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and "nothing to train: the run is complete at step 6" in r.stdout, r.stdout + r.stderr
    assert "resuming from checkpoints/checkpoint-6; its training is complete" in r.stderr, r.stderr
    assert sorted(os.listdir(run_dir / "checkpoints")) == ["checkpoint-6"]
    r = subprocess.run([NEXUS, "distill", "--resume", str(run_dir), "--max_steps", "8"], capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0 and "hyper.max_steps  6 -> 8" in r.stderr, r.stdout + r.stderr
    assert r.stderr.index("changed on resume") < r.stderr.index("resuming from"), r.stderr  # before anything loads
    state = json.loads((run_dir / ".pipeline_state.json").read_text())["run"]
    assert (state["global_step"], state["last_checkpoint"]) == (8, "checkpoints/checkpoint-8"), state

@pytest.mark.slow
def test_real_default_lowers_kl(tmp_path):
    """The main job itself (SmolLM2-135M-Instruct -> 6 layers, built-in data, debug rung, its default settings), cut
    to 8 steps: the student's held-out KL to the teacher falls by at least 30%, and the summary says how far it is."""
    r = subprocess.run([NEXUS, "distill", "--run-dir", str(tmp_path / "run"), "--max_steps", "8"],
                       capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert m["after"]["kl"] <= 0.7 * m["before"]["kl"], m
    assert m["after"]["teacher_perplexity"] == pytest.approx(m["before"]["teacher_perplexity"]), m
    lines = {ln[:11].strip(): ln for ln in r.stdout.splitlines() if ln.strip()}  # the labels are 11 wide
    assert "(teacher " in lines["before"] and "(teacher " in lines["after"], r.stdout
    assert "x the teacher's" in lines["gap"] and "by importance" in lines["student"], r.stdout
    assert (tmp_path / "run" / "losses.png").exists() and "loss plot" in r.stdout

def test_second_sigint_leaves_no_partial_line(distill_setup, tmp_path):
    "On a terminal, a second Ctrl-C leaves at once and clears the progress line first: the prompt starts clean."
    p, master = spawn_on_pty(tiny_args(distill_setup, tmp_path / "run", steps=400))
    out, log, deadline = "", tmp_path / "run" / "losses.jsonl", time.time() + 600
    while time.time() < deadline and not (log.exists() and log.read_text().strip()): out += read_all(master, p, 0.05)
    out += read_all(master, p, 1.2)  # the line is redrawn twice a second
    p.send_signal(signal.SIGINT); time.sleep(0.05); p.send_signal(signal.SIGINT)
    out += read_all(master, p, 60)
    p.wait(timeout=60)
    os.close(master)
    assert p.returncode == 130 and "training: " in out, out[-3000:]
    tail = out.replace("\r\n", "\n").rsplit("\n", 1)
    assert tail[-1].rsplit("\r", 1)[-1].strip("\x1b[K ") == "", f"a partial line after the last newline: {tail[-1]!r}"

def test_second_sigint_exits_at_once(distill_setup, tmp_path):
    run_dir = tmp_path / "run"
    p = subprocess.Popen([NEXUS, *tiny_args(distill_setup, run_dir, steps=400)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log, deadline = run_dir / "losses.jsonl", time.time() + 600
    while time.time() < deadline and not (log.exists() and log.read_text().strip()): time.sleep(0.01)
    p.send_signal(signal.SIGINT); time.sleep(0.05); p.send_signal(signal.SIGINT)
    t = time.time()
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130 and time.time() - t < 10, err[-2000:]
    assert "Traceback" not in err
