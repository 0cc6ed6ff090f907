"""The dashboard driven in-process as a person would: set widget values, press buttons, wait for the background run;
then the plot, the progress bar and the run folder's state must agree with the widgets and with losses.jsonl. A new
dashboard runs what a bare `nexus distill` runs (its default teacher, built-in data, the state's defaults), and the
command line it shows runs the same job from the CLI."""
import html, json, os, re, shlex, shutil, threading, time
from pathlib import Path
import pytest
import nexus.detect, nexus.pipeline
from nexus import cli
from nexus.dashboard import Dashboard, ModelBrowser
from nexus.detect import info_rows
from nexus.progress import phase
from nexus.state import edit_state, load_state, open_run, resolve_state

EXTRA = {"critical_layers": [1], "save_steps": 1000, "seed": 7, "hidden_weight": 1.0}  # as conftest's distill_flags

def logged(run_dir): return [json.loads(l) for l in open(Path(run_dir) / "losses.jsonl")]

MADE = []

@pytest.fixture(autouse=True)
def no_run_outlives_its_test():
    "A test that fails mid-run must not leave its run going in the background for the next tests."
    yield
    while MADE:
        dash = MADE.pop()
        if dash.running:
            dash.stop()
            dash.wait(timeout=120)

def dashboard(**kw):
    MADE.append(Dashboard(**kw))
    return MADE[-1]

def tiny_dashboard(root, run_dir, **kw):
    "A dashboard whose folders are typed in and scanned with the buttons, as a person would."
    dash = dashboard(flags=EXTRA, **kw)
    dash.models_root.value = str(root)
    dash.scan_button.click()
    dash.data_root.value = str(root / "data")
    dash.find_button.click()
    dash.run_dir.value = str(run_dir)
    dash.student_layers.value, dash.lr.value, dash.batch_size.value, dash.max_seq_length.value = 2, 3e-3, 4, 32
    return dash

def shown_command(dash):
    "The command line the dashboard shows, as text."
    return html.unescape(re.search(r"<code[^>]*>(.*)</code>", dash.command.value)[1])

@pytest.fixture
def tiny_smollm2(distill_setup, tmp_path, monkeypatch):
    """The bundled name `smollm2` (`nexus distill`'s default teacher) made to resolve to a tiny model, through the same
    lookup as the real one (an installed package that holds the model), so that a default job takes seconds."""
    site = tmp_path / "site"
    shutil.copytree(distill_setup / "general", site / "tiny_smollm2" / "model")
    (site / "tiny_smollm2" / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setitem(nexus.detect.BUNDLED_MODELS, "smollm2", ("tiny_smollm2", "model"))
    assert cli.DEFAULT_TEACHERS == {"smollm2": "smollm2"}  # the CLI's default, unchanged: only its file is tiny
    return site / "tiny_smollm2" / "model"

FAST = {"student_layers": 2, "max_steps": 3, "max_seq_length": 32}  # the tiny teacher has 4 layers; a short run

def wait_for(cond, timeout, what):
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end: raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)

def test_run_from_widgets(distill_setup, tmp_path):
    root, run = distill_setup, tmp_path / "run"
    dash = tiny_dashboard(root, run)
    assert dash.error is None
    assert [p for _, p in dash.teacher_select.options] == ["smollm2", str(root / "coder"), str(root / "general")]
    assert dash.teachers() == {"smollm2": "smollm2"}  # nexus distill's default teacher stays picked until changed
    dash.teacher_select.value = [str(root / "coder"), str(root / "general")]
    dash.teacher_names[str(root / "coder")].value = "code-expert"  # rename a teacher: the datasets' expert choices follow
    rows = dash.dataset_rows
    assert sorted(rows) == ["coder", "general"]
    assert (dash.datasets()["general"]["expert"], dash.datasets()["coder"]["expert"]) == ("general", None)  # no teacher is called 'coder' now
    assert [label for label, _ in rows["coder"][1].options] == ["untagged: all teachers", "code-expert", "general"]
    rows["coder"][1].value = "code-expert"
    dash.mode.value, dash.max_steps.value = "debug", 6

    dash.start_button.click()
    assert dash.running and dash.start_button.disabled and not dash.stop_button.disabled  # the click returned; the run goes on
    result = dash.wait(timeout=240)
    assert dash.error is None, dash.error
    assert (result.exit_code, result.global_step) == (0, 6)

    # one line per logged loss component, each holding every logged step
    rows_logged = logged(run)
    components = {k for r in rows_logged for k in r if k.startswith("loss_")}  # not the lr
    assert {"loss_total", "loss_logits", "loss_hidden", "loss_ce"} <= components and any(k.startswith("loss_hidden/") for k in components)
    assert len(dash.ax.lines) == len(components) and set(dash.lines) == components
    for k, line in dash.lines.items():
        assert list(line.get_xdata()) == [r["step"] for r in rows_logged]
        assert list(line.get_ydata()) == [r[k] for r in rows_logged]
    assert dash.plot.value[:8] == b"\x89PNG\r\n\x1a\n"

    # the state file says what the widgets said
    st = load_state(run)
    assert st.teachers == {"code-expert": str(root / "coder"), "general": str(root / "general")}
    assert {n: (d.path, d.expert) for n, d in st.datasets.items()} == {
        "coder": (str(root / "data" / "coder"), "code-expert"), "general": (str(root / "data" / "general"), "general")}
    assert (st.mode, st.hyper.sample_size, st.student.num_layers, st.hyper.max_steps, st.hyper.epochs) == ("debug", 50, 2, 6, dash.epochs.value)
    assert (st.hyper.lr, st.hyper.batch_size, st.optim.max_seq_length, st.loss.critical_layers) == (3e-3, 4, 32, [1])
    assert (st.run.global_step, st.run.last_checkpoint) == (6, "checkpoints/checkpoint-6")

    # progress, status and the results
    assert (dash.progress.value, dash.progress.max, dash.progress.bar_style) == (6, 6, "success")
    assert dash.status.value.startswith("done: 6 steps")
    assert f"{result.before['kl']:.4g}" in dash.results.value and f"{result.after['kl']:.4g}" in dash.results.value
    assert (run / "student" / "model.safetensors").exists()
    assert not dash.running and not dash.start_button.disabled and dash.stop_button.disabled

def test_stop_leaves_a_resumable_run(distill_setup, tmp_path):
    root, run = distill_setup, tmp_path / "run"
    dash = tiny_dashboard(root, run, refresh=0.1)
    dash.teacher_select.value = [str(root / "general")]
    dash.find_datasets()
    dash.dataset_rows["coder"][0].value = False  # use the general data only
    dash.max_steps.value = 500
    dash.start_button.click()
    wait_for(lambda: (run / "losses.jsonl").exists() and (run / "losses.jsonl").read_bytes().count(b"\n") >= 2, 180, "two logged steps")
    dash.stop_button.click()
    result = dash.wait(timeout=120)
    n = result.global_step
    assert result.exit_code == 130 and 2 <= n < 500
    assert (run / "checkpoints" / f"checkpoint-{n}" / "model.safetensors").exists()
    st = load_state(run)
    assert (st.run.global_step, st.run.last_checkpoint) == (n, f"checkpoints/checkpoint-{n}")
    assert dash.progress.bar_style == "warning" and "Press Resume" in dash.message.value
    assert len(logged(run)) == n and len(dash.lines["loss_total"].get_xdata()) == n

    edit_state(run, {"max_steps": str(n + 3)})  # as `nexus state set max_steps=...`: a short rest of the run
    dash.resume_button.click()
    result = dash.wait(timeout=180)
    assert dash.error is None, dash.error
    assert (result.exit_code, result.global_step) == (0, n + 3)
    assert [r["step"] for r in logged(run)] == list(range(1, n + 4))  # the resumed run continued the same log
    assert list(dash.lines["loss_total"].get_xdata()) == list(range(1, n + 4))
    assert load_state(run).run.global_step == n + 3

def message_of(dash):
    "The dashboard's message: one line of text, never a traceback."
    assert dash.error and "Traceback" not in dash.message.value and dash.error in dash.message.value.replace("&#x27;", "'")
    return dash.error

def test_problems_are_one_message(distill_setup, tmp_path):
    root = distill_setup
    dash = dashboard(run_dir=tmp_path / "run", flags=EXTRA)
    dash.models_root.value = str(tmp_path / "nowhere")
    dash.scan_button.click()
    assert "nowhere" in message_of(dash) and [p for _, p in dash.teacher_select.options] == ["smollm2"]
    dash.teacher_select.value = []
    dash.start_button.click()
    assert message_of(dash).startswith("Pick at least one teacher")
    assert "none yet: Pick at least one teacher" in dash.command.value  # the command line says why there is none
    dash.scan(root)
    dash.teacher_select.value = [str(root / "general")]
    (tmp_path / "empty").mkdir()
    dash.find_datasets(tmp_path / "empty")
    assert "holds no dataset file" in message_of(dash)
    dash.find_datasets(root / "data" / "general")
    dash.lr.value = -1.0
    dash.start_button.click()
    assert "hyper.lr must be greater than 0" in message_of(dash)
    assert "none yet: " in dash.command.value and "hyper.lr must be greater than 0" in dash.command.value
    dash.lr.value = 3e-3
    dash.teacher_names[str(root / "general")].value = "bad name!"
    dash.start_button.click()
    assert "'bad name!' is not a usable name" in message_of(dash)
    dash.teacher_names[str(root / "general")].value = "general"
    dash.resume_button.click()
    assert "holds no run to resume" in message_of(dash)
    assert not (tmp_path / "run").exists()  # nothing was made on disk by any of these

    busy = tmp_path / "busy"
    with open_run(busy, {"teachers": {"general": str(root / "general")}}):  # another holder of the run folder's lock
        dash.run_dir.value = str(busy)
        dash.start_button.click()
        assert f"is in use by PID {os.getpid()}" in message_of(dash) and not dash.running
    edit_state(busy, {"run.global_step": "3"})  # as if that run had made three steps
    dash.start_button.click()
    assert "already holds a run (step 3): press Resume" in message_of(dash) and not dash.running

    dash.run_dir.value = str(tmp_path / "too-deep")
    dash.student_layers.value = 9  # the teachers have 4 layers: the run itself fails, in its thread
    dash.start_button.click()
    assert dash.wait(timeout=120) is None
    assert "can't be cut from a teacher of 4" in message_of(dash)
    assert dash.progress.bar_style == "danger" and not dash.running
    dash.student_layers.value, dash.max_steps.value = 2, 2  # a run that failed before its first step may start again, with new settings
    dash.start_button.click()
    assert dash.wait(timeout=120).global_step == 2 and dash.error is None
    assert load_state(tmp_path / "too-deep").student.num_layers == 2

def test_two_teachers_need_two_names(distill_setup, tmp_path):
    root = distill_setup
    dash = tiny_dashboard(root, tmp_path / "run")
    dash.teacher_select.value = [str(root / "coder"), str(root / "general")]
    dash.teacher_names[str(root / "coder")].value = "general"
    dash.start_button.click()
    assert message_of(dash) == "Every picked teacher needs a name of its own; they are now ['general', 'general']."
    assert not (tmp_path / "run").exists()

def test_model_browser(distill_setup, tmp_path):
    root = distill_setup
    browser = ModelBrowser(root)
    assert [label.split(" · ")[0] for label, _ in browser.found.options] == ["coder", "general"]
    browser.found.value = str(root / "general")
    assert (browser.info["path"], browser.info["num_layers"], browser.error) == (str(root / "general"), 4, None)
    shown = [tuple(html.unescape(c) for c in m) for m in re.findall(r"<th[^>]*>(.*?)</th><td[^>]*>(.*?)</td>", browser.table.value)]
    assert shown == [(k, str(v) if v is not None else "-") for k, v in info_rows(browser.info)]  # the rows `nexus info` prints
    assert ("layers / hidden / vocab", "4 / 32 / 320") in shown
    browser.path.value = str(root / "data")
    browser.show_button.click()
    assert "no config.json here" in message_of(browser)
    assert (browser.info, browser.table.value) == (None, "")  # the last model's table would read as this one's
    browser.show(root / "general")
    assert browser.table.value and browser.error is None
    browser.scan(tmp_path / "nowhere")
    assert "nowhere" in message_of(browser) and (browser.info, browser.table.value) == (None, "")

def test_model_browser_takes_bundled_names(tiny_smollm2):
    browser = ModelBrowser("smollm2")  # scans the bundled model, as `nexus info smollm2` reads it
    assert [p for _, p in browser.found.options] == [str(tiny_smollm2)] and browser.error is None
    browser.show("smollm2")
    assert (browser.info["path"], browser.error) == (str(tiny_smollm2), None)

def test_a_new_dashboard_is_nexus_distill(tiny_smollm2):
    "Every setting a new dashboard shows starts where a bare `nexus distill` starts, and its command line says so."
    dash = dashboard()
    assert dash.teachers() == cli.DEFAULT_TEACHERS and dash.datasets() == {}
    assert dash.teacher_select.options[0][0].startswith("smollm2 (default) · LlamaForCausalLM")
    bare = resolve_state(None, {"teachers": cli.DEFAULT_TEACHERS})  # what `nexus distill` alone runs
    assert resolve_state(None, dash.flags()).config() == bare.config()
    assert shown_command(dash) == dash.command_line() == "nexus distill --teachers smollm2=smollm2"
    assert "built-in data" in dash.data_note.value
    dash.run_dir.value = "runs/x"  # the command line follows the widgets
    assert shown_command(dash) == f"nexus distill --run_dir {os.path.abspath('runs/x')} --teachers smollm2=smollm2"
    dash.mode.value, dash.lr.value = "standard", 5e-4
    assert shown_command(dash).endswith("--teachers smollm2=smollm2 --mode standard --lr 0.0005")

def test_default_job_runs_as_the_cli_runs_it(tiny_smollm2, tmp_path):
    """Start on a new dashboard (the bundled teacher, no datasets: built-in data) runs; the command line it shows,
    given to the CLI with another run folder, runs the same job: the same state and the same losses."""
    run, again = tmp_path / "run", tmp_path / "from-the-cli"
    dash = dashboard(run_dir=run, refresh=0.05)
    assert dash.plot.layout.display == "none" and dash.plot.value == b""  # nothing shown, not a broken image
    dash.student_layers.value, dash.max_steps.value, dash.max_seq_length.value = FAST.values()
    seen = []
    dash.status.observe(lambda ch: seen.append(ch["new"]), "value")
    gate, real = threading.Event(), nexus.pipeline.load_teachers
    def held_loading(*a, **kw):  # a setup phase kept open until the status has shown it
        with phase("loading the teachers, held by the test"):
            gate.wait(60)
            return real(*a, **kw)
    nexus.pipeline.load_teachers = held_loading
    try:
        dash.start_button.click()
        assert dash.error is None, dash.error
        wait_for(lambda: "loading the teachers, held by the test…" in seen, 60, "the status to show the setup phase")
    finally:
        gate.set()
        nexus.pipeline.load_teachers = real
    result = dash.wait(timeout=240)
    assert dash.error is None, dash.error
    assert (result.exit_code, result.global_step) == (0, 3)
    st = load_state(run)
    assert st.teachers == {"smollm2": "smollm2"}  # the bundled name, as the CLI saves it
    builtin = run / "data" / "smollm2"  # the built-in data, written in the run folder
    assert {n: (d.path, d.expert) for n, d in st.datasets.items()} == {"smollm2": (str(builtin), "smollm2")}
    assert (builtin / "builtin.jsonl").stat().st_size > 0
    assert dash.plot.layout.display != "none" and dash.plot.value[:8] == b"\x89PNG\r\n\x1a\n"
    assert dash.status.value.startswith("done: 3 steps")

    command = shown_command(dash)
    assert command == dash.command_line()
    assert command == (f"nexus distill --run_dir {run} --teachers smollm2=smollm2 "  # only what is not a default
                       "--student_layers 2 --max_steps 3 --max_seq_length 32")
    argv = shlex.split(command)[1:]
    argv[argv.index("--run_dir") + 1] = str(again)
    assert cli.main(argv) == 0
    def same_job(st, folder):  # the built-in data lives in each run folder
        d = st.config()
        for ds in d["datasets"].values(): ds["path"] = os.path.relpath(ds["path"], folder)
        return d
    assert same_job(load_state(again), again) == same_job(st, run)
    assert (again / "data" / "smollm2" / "builtin.jsonl").read_bytes() == (builtin / "builtin.jsonl").read_bytes()
    cli_losses = [r["loss_total"] for r in logged(again)]
    assert [r["loss_total"] for r in logged(run)] == pytest.approx(cli_losses, rel=1e-4)

def test_resume_of_a_finished_run_trains_nothing(distill_setup, tmp_path):
    root, run = distill_setup, tmp_path / "run"
    dash = tiny_dashboard(root, run)
    dash.teacher_select.value = [str(root / "general")]
    dash.dataset_rows["coder"][0].value = False
    dash.max_steps.value = 2
    dash.start_button.click()
    first = dash.wait(timeout=180)
    assert (dash.error, first.exit_code, first.global_step, first.complete) == (None, 0, 2, False)
    files = {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != ".pipeline_state.json"}

    dash.resume_button.click()
    again = dash.wait(timeout=180)
    assert dash.error is None, dash.error
    assert (again.complete, again.global_step, again.after) == (True, 2, first.after)  # read back from the folder
    assert dash.run_progress.started is None  # the Trainer never began
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != ".pipeline_state.json"} == files
    assert dash.status.value == "complete at step 2: nothing to train"
    assert "The run is complete at step 2: nothing was trained" in dash.message.value
    assert (dash.progress.value, dash.progress.max, dash.progress.bar_style) == (2, 2, "success")
    assert list(dash.lines["loss_total"].get_xdata()) == [1, 2]  # the plot shows the run's log
    assert f"{first.after['kl']:.4g}" in dash.results.value
