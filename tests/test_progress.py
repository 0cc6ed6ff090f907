"No stretch of a run is silent: a tiny `nexus distill` on a terminal says what it does, in every phase, within seconds."
import os, select, subprocess, time, shutil
import pytest
from test_cli_distill import tiny_args, spawn_on_pty

MAX_SILENCE = 4.0  # seconds: bars redraw once a second while a phase runs

def timed_output(args, timeout=600):
    "Run `nexus` on a pseudo-terminal, as in a user's shell; return (exit code, [(seconds since start, text)])."
    t0 = time.time()
    p, master = spawn_on_pty(args)
    chunks = []
    while time.time() - t0 < timeout:
        if select.select([master], [], [], 0.05)[0]:
            try: data = os.read(master, 65536)
            except OSError: break  # the terminal closed: the command ended
            if not data: break
            chunks.append((time.time() - t0, data.decode(errors="replace")))
        elif p.poll() is not None: break
    p.wait(timeout=60)
    os.close(master)
    chunks.append((time.time() - t0, ""))  # the exit: silence before it counts too
    return p.returncode, chunks

def test_no_phase_is_silent(distill_setup, tmp_path):
    code, chunks = timed_output(tiny_args(distill_setup, tmp_path / "run", steps=6))
    text = "".join(t for _, t in chunks)
    assert code == 0, text[-3000:]
    gaps = [(b[0] - a[0], a[1][-200:]) for a, b in zip([(0.0, "(start)")] + chunks, chunks)]
    longest, before = max(gaps)
    assert longest < MAX_SILENCE, f"{longest:.1f} s without a word, after: {before!r}"
    phases = ["loading torch and transformers", "loading teacher general", "reading and tokenising the data",
              "measuring the teacher's layers", "making the student", "(before training)", "training:",
              "saving the student", "(after training)", "drawing the loss plot"]
    assert [p for p in phases if p not in text] == [], text[-3000:]

def test_no_bars_in_a_pipe(distill_setup, tmp_path):
    "In a pipe (a script, a log) the output is the result alone, unless NEXUS_PROGRESS=1 asks for the bars."
    args = [shutil.which("nexus"), *map(str, tiny_args(distill_setup, tmp_path / "run", steps=2))]
    r = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and "training:" not in r.stderr and "%|" not in r.stderr, r.stderr[-2000:]
    args[args.index(str(tmp_path / "run"))] = str(tmp_path / "logged")
    r = subprocess.run(args, capture_output=True, text=True, timeout=600, env={**os.environ, "NEXUS_PROGRESS": "1"})
    assert r.returncode == 0 and "training: 100%" in r.stderr, r.stderr[-2000:]
