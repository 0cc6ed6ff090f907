"""The dashboard driven in-process as a person would: set widget values, press buttons, wait for the background run;
then the plot, the progress bar and the run folder's state must agree with the widgets and with losses.jsonl."""
import html, json, os, re, time
from pathlib import Path
import pytest
from nexus.dashboard import Dashboard, ModelBrowser
from nexus.detect import info_rows
from nexus.state import edit_state, load_state, open_run

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

def wait_for(cond, timeout, what):
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end: raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)

def test_run_from_widgets(distill_setup, tmp_path):
    root, run = distill_setup, tmp_path / "run"
    dash = tiny_dashboard(root, run)
    assert dash.error is None
    assert sorted(p for _, p in dash.teacher_select.options) == [str(root / "coder"), str(root / "general")]
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
    components = {k for r in rows_logged for k in r if k != "step"}
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
    assert "nowhere" in message_of(dash) and dash.teacher_select.options == ()
    dash.start_button.click()
    assert message_of(dash).startswith("Pick at least one teacher")
    dash.scan(root)
    dash.teacher_select.value = [str(root / "general")]
    dash.start_button.click()
    assert message_of(dash).startswith("Pick at least one dataset")
    (tmp_path / "empty").mkdir()
    dash.find_datasets(tmp_path / "empty")
    assert "holds no dataset file" in message_of(dash)
    dash.find_datasets(root / "data" / "general")
    dash.lr.value = -1.0
    dash.start_button.click()
    assert "hyper.lr must be greater than 0" in message_of(dash)
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
    assert browser.info["path"] == str(root / "general")  # the last good table stays
