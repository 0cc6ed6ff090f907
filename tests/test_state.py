"""Pipeline state across processes: the run lock, a read-only folder, `nexus state` as users run it, imports."""
import json, os, re, shutil, signal, subprocess, sys, tempfile
from pathlib import Path
import pytest
from nexus.detect import NexusError
from nexus.state import (PipelineState, DatasetConfig, StateFileError, StateLockError, STATE_FILE, LOCK_FILE,
                         save_state, load_state, open_run, edit_state, state_path)

NEXUS = shutil.which("nexus") or pytest.fail("the `nexus` console script is not installed (pip install -e .)")
FIRST = {"teachers": {"coder": "/models/qwen-coder", "translation": "/models/nllb"},
         "datasets": {"code": DatasetConfig("/data/code", "coder")}, "mode": "standard", "lr": 2e-4}

def nexus(*args, cwd=None):
    return subprocess.run([NEXUS, *map(str, args)], capture_output=True, text=True, timeout=60, cwd=cwd)

def one_line_error(r, code=1):
    "A failed command: the expected exit code, nothing on stdout, exactly one line on stderr, no traceback."
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
    return r.stderr

@pytest.fixture
def run_dir(tmp_path):
    d = tmp_path / "run"
    with open_run(d, FIRST): pass
    return d

# --- one process per run folder ---------------------------------------------------------------------------------

HOLDER = "import sys, time; from nexus.state import open_run; r = open_run(sys.argv[1]); print('holding', flush=True); time.sleep(300)"
SECOND = """import sys
from nexus.state import open_run, StateLockError
try: open_run(sys.argv[1], {"lr": 1e-3})
except StateLockError as e: print(f"refused {e.pid}: {e}")
else: print("opened")"""

def test_second_process_refuses_and_a_killed_holder_leaves_no_stale_lock(run_dir):
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(run_dir)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        before = state_path(run_dir).read_bytes()
        r = subprocess.run([sys.executable, "-c", SECOND, str(run_dir)], capture_output=True, text=True, timeout=60)
        assert r.stdout.startswith(f"refused {holder.pid}: run in use by PID {holder.pid}:"), r.stdout + r.stderr
        err = one_line_error(nexus("state", "set", "lr=1e-3", "--run-dir", run_dir))
        assert f"run in use by PID {holder.pid}" in err
        assert f"# in use by PID {holder.pid}" in nexus("state", "show", run_dir).stdout  # reading is still fine
        assert state_path(run_dir).read_bytes() == before
        with pytest.raises(StateLockError, match=f"run in use by PID {holder.pid}"): open_run(run_dir)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert (run_dir / LOCK_FILE).read_text() == f"{holder.pid}\n"  # the dead holder's PID is still in the file ...
    r = subprocess.run([sys.executable, "-c", SECOND, str(run_dir)], capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == "opened", r.stdout + r.stderr  # ... but the kernel released its lock with it
    assert load_state(run_dir).hyper.lr == 1e-3
    assert nexus("state", "set", "lr=5e-4", "--run-dir", run_dir).returncode == 0

def test_same_process_twice_is_refused_until_closed(run_dir):
    with open_run(run_dir):
        with pytest.raises(StateLockError, match=f"run in use by PID {os.getpid()} \\(this process\\)"): open_run(run_dir)
    with open_run(run_dir) as again: assert again.lock.held

def test_forked_child_does_not_keep_the_run(run_dir):
    "A data-loader worker forked while the run is open must not hold the run after the parent lets it go."
    run = open_run(run_dir)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        os.write(w, b"x")
        import time; time.sleep(30)
        os._exit(0)
    os.close(w)
    os.read(r, 1)
    try:
        run.close()
        with open_run(run_dir): pass  # free although the child still lives
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)

# --- a read-only folder ------------------------------------------------------------------------------------------

ATTEMPTS = """
import json, os, sys
from nexus.state import PipelineState, save_state, open_run, edit_state, NexusError
if sys.argv[2] == "drop":  # root ignores folder permissions: become nobody, after the imports (root's files are private)
    os.setgroups([]); os.setgid(65534); os.setuid(65534)
folder, out = sys.argv[1], []
for name, attempt in [("save_state", lambda: save_state(PipelineState(mode="production"), folder)),
                      ("open_run", lambda: open_run(folder, {"lr": 1e-3})),
                      ("edit_state", lambda: edit_state(folder, {"lr": "1e-3"}))]:
    try: attempt(); out.append([name, "written", ""])
    except NexusError as e: out.append([name, type(e).__name__, str(e)])
print(json.dumps({"uid": os.getuid(), "results": out}))
"""

def test_read_only_folder_is_a_clear_error_and_leaves_the_state_untouched():
    # not under pytest's tmp_path: that is private to its owner, and the unprivileged child must reach the folder
    base = Path(tempfile.mkdtemp(prefix="nexus-ro-"))
    try:
        os.chmod(base, 0o755)
        folder = base / "run"
        folder.mkdir()
        save_state(PipelineState(teachers={"coder": "/m/coder"}), folder)
        good = state_path(folder).read_bytes()
        os.chmod(folder, 0o555)
        drop = "drop" if os.geteuid() == 0 else "keep"
        r = subprocess.run([sys.executable, "-c", ATTEMPTS, str(folder), drop], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        res = json.loads(r.stdout)
        assert res["uid"] != 0, "the writer still ran as root, so the folder was not read-only for it"
        for name, kind, msg in res["results"]:
            assert kind == "StateFileError", (name, kind, msg)
            assert "permission denied (the folder is read-only for this user)" in msg and "chmod u+w" in msg, msg
        assert state_path(folder).read_bytes() == good
        assert sorted(os.listdir(folder)) == [STATE_FILE]  # no temporary or lock file appeared
    finally:
        os.chmod(base / "run", 0o755)
        shutil.rmtree(base)

# --- `nexus state` as users run it -------------------------------------------------------------------------------

def test_show_set_reset(run_dir):
    r = nexus("state", "show", run_dir)
    assert r.returncode == 0 and r.stderr == ""
    lines = r.stdout.splitlines()
    assert lines[0] == f"# {state_path(run_dir)} (schema 2)"
    assert ["hyper.lr", "0.0002"] in [l.split() for l in lines] and ["teachers.coder", "/models/qwen-coder"] in [l.split() for l in lines]
    assert json.loads(nexus("state", "show", run_dir, "--json").stdout) == load_state(run_dir).to_dict()
    assert nexus("state", "show", cwd=run_dir).stdout == r.stdout  # the current folder by default

    r = nexus("state", "set", "hyper.lr=3e-4", "teachers.coder=/models/coder-v2", "--run-dir", run_dir)
    assert r.returncode == 0 and r.stderr == ""
    assert [l.split() for l in r.stdout.splitlines()] == [["teachers.coder", "/models/qwen-coder", "->", "/models/coder-v2"],
                                                          ["hyper.lr", "0.0002", "->", "0.0003"], ["saved", str(state_path(run_dir))]]
    s = load_state(run_dir)
    assert (s.hyper.lr, s.teachers["coder"]) == (3e-4, "/models/coder-v2")

    r = nexus("state", "set", "mode=production", "--run-dir", run_dir, "--dry-run")
    assert r.stdout.splitlines()[-1] == "dry run: nothing was written" and load_state(run_dir).mode == "standard"
    r = nexus("state", "set", "mode=production", cwd=run_dir)
    assert "hyper.sample_size" in r.stdout and load_state(run_dir).hyper.sample_size == 5000

    r = nexus("state", "reset", "lr", "teachers.translation", "--run-dir", run_dir)
    assert r.returncode == 0, r.stderr
    s = load_state(run_dir)
    assert (s.hyper.lr, list(s.teachers)) == (1e-3, ["coder"])
    r = nexus("state", "reset", "lr", "--run-dir", run_dir)
    assert r.stdout.splitlines() == ["no changes", f"nothing to write; {state_path(run_dir)} is unchanged"]

@pytest.mark.parametrize("args,code,text", [
    (["set", "lr=fast"], 1, "hyper.lr: expected a number, got 'fast'. Nothing was written"),
    (["set", "lr=-1"], 1, "hyper.lr must be greater than 0, got -1.0. Nothing was written"),
    (["set", "hyper.sample_size=0"], 1, "hyper.sample_size must be at least 1, got 0"),
    (["set", "hyper.lrr=1"], 1, "unknown key 'hyper.lrr'; did you mean 'hyper.lr'?"),
    (["set", "datasets.code.expert=coderr"], 1, "datasets.code.expert: 'coderr' is not one of the teachers (coder, translation); did you mean 'coder'?"),
    (["set", "optim.attn_implementation=spda"], 1, "did you mean 'sdpa'?"),
    (["set", "schema_version=3"], 1, "schema_version is managed by Nexus"),
    (["reset", "teachers.nobody"], 1, "teachers has no entry 'nobody' (entries: coder, translation)"),
    (["set", "lr"], 2, "'lr' is not KEY=VALUE"),
    (["set"], 2, "the following arguments are required: KEY=VALUE"),
    (["frobnicate"], 2, "invalid choice: 'frobnicate'"),
])
def test_bad_edits_are_one_line_and_write_nothing(run_dir, args, code, text):
    before = state_path(run_dir).read_bytes()
    err = one_line_error(nexus("state", *args, "--run-dir", run_dir) if args[0] != "frobnicate" else nexus("state", *args), code)
    assert text in err, err
    assert state_path(run_dir).read_bytes() == before

@pytest.mark.parametrize("content,text", [
    (b"", "is empty: it holds no pipeline state"),
    (b'{"schema_version": 2, "hyper": {"lr": 1e-4,}}', "is not valid JSON: Expecting property name enclosed in double quotes at line 1, column 44"),
    (b'"debug"', "holds the string 'debug', but a pipeline state is a JSON object"),
    (b'{"schema_version": 7}', "has schema version 7: it was written by a newer Nexus"),
    (b'{"schema_version": 2, "hyper": {"lr": "1e-4"}}', "hyper.lr: expected a number, got the string '1e-4' (write it without quotes)"),
])
def test_unusable_files_are_one_line(tmp_path, content, text):
    (tmp_path / STATE_FILE).write_bytes(content)
    assert text in one_line_error(nexus("state", "show", tmp_path))
    with pytest.raises(NexusError, match=re.escape(text)): open_run(tmp_path)  # the run refuses too ...
    assert (tmp_path / STATE_FILE).read_bytes() == content    # ... and never replaces the file by defaults

def test_missing_state_is_one_line(tmp_path):
    assert "no pipeline state in" in one_line_error(nexus("state", "show", tmp_path / "nowhere"))
    assert "does not exist" in one_line_error(nexus("state", "set", "lr=1e-3", "--run-dir", tmp_path))
    assert os.listdir(tmp_path) == []  # no lock file made in a folder that holds no run

def test_keys_lists_every_setting():
    r = nexus("state", "keys")
    assert r.returncode == 0
    keys = [l.split()[0] for l in r.stdout.splitlines()]
    assert "hyper.lr" in keys and "router.weights" in keys and len(keys) == len(set(keys)) > 40

def test_schema_1_file_is_migrated_on_the_first_write_and_kept(tmp_path):
    v1 = {"version": 1, "teachers": ["/models/qwen-coder"], "datasets": ["/data/code"], "lr": 2e-5, "sample_size": 500,
          "use_unsloth": True, "router": "dataset", "step": 40, "checkpoint": "checkpoint-40"}
    original = json.dumps(v1).encode()
    (tmp_path / STATE_FILE).write_bytes(original)
    assert "(schema 1; migrated to 2 in memory" in nexus("state", "show", tmp_path).stdout
    r = nexus("state", "set", "lr=1e-5", "--run-dir", tmp_path)
    assert r.returncode == 0, r.stderr
    assert "migrated from schema 1 to 2; the original is kept as .pipeline_state.v1.json" in r.stdout
    assert (tmp_path / ".pipeline_state.v1.json").read_bytes() == original
    raw = json.loads(state_path(tmp_path).read_text())
    assert raw["schema_version"] == 2 and raw["teachers"] == {"qwen-coder": "/models/qwen-coder"} and raw["hyper"]["lr"] == 1e-5
    s = load_state(tmp_path)
    assert (s.mode, s.hyper.sample_size, s.optim.use_unsloth, s.run.global_step) == ("standard", 500, True, 40)

def test_open_run_migrates_and_keeps_the_original(tmp_path):
    original = b'{"version": 1, "teachers": ["/m/a"], "lr": 3e-5}'
    (tmp_path / STATE_FILE).write_bytes(original)
    with open_run(tmp_path) as run:
        assert run.migrated_from == 1 and run.changes == [] and run.state.hyper.lr == 3e-5
    assert (tmp_path / ".pipeline_state.v1.json").read_bytes() == original
    assert json.loads(state_path(tmp_path).read_text())["schema_version"] == 2

# --- imports -----------------------------------------------------------------------------------------------------

def test_state_and_the_cli_parser_import_no_heavy_modules():
    code = ("import sys, nexus.cli, nexus.state; nexus.cli.build_parser(); "
            "print(sorted(m for m in ('torch', 'transformers', 'numpy', 'diffusers') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stdout + r.stderr
