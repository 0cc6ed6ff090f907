"""JupyterLab in headless Chromium: a notebook that displays the dashboard renders its widgets, and they talk to the
kernel both ways (a teacher picked in the browser reaches the kernel, and the command line the kernel writes for it
shows; a run started with the browser's Start button fills the progress bar and draws the loss plot, where nothing
was shown before). A screenshot is kept as a test artifact.

Needs Chromium, its driver and selenium: `apt-get install -y chromium chromium-driver` and `pip install selenium`.
Skipped only when no Chromium is found and NEXUS_BROWSER_TESTS is unset; with NEXUS_BROWSER_TESTS=1 (CI) a missing
browser fails the test. The screenshot goes to $NEXUS_TEST_ARTIFACTS (default: tests/artifacts/)."""
import json, os, secrets, shutil, signal, socket, subprocess, sys, time, urllib.request
from pathlib import Path
import pytest
from conftest import distill_flags

CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"))), None)
CHROMEDRIVER = next((p for p in ("/usr/bin/chromedriver", shutil.which("chromedriver")) if p and os.path.exists(p)), None)
REQUIRED = os.environ.get("NEXUS_BROWSER_TESTS", "") not in ("", "0")
ARTIFACTS = Path(os.environ.get("NEXUS_TEST_ARTIFACTS") or Path(__file__).parent / "artifacts")

pytestmark = pytest.mark.skipif(CHROMIUM is None and not REQUIRED,
                                reason="no Chromium (apt-get install chromium chromium-driver); set NEXUS_BROWSER_TESTS=1 to make this a failure")

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

class Gone(Exception): "Something waited on has died: waiting longer won't help."

def wait_until(cond, timeout, what, poll=0.25):
    "The first true value of `cond()`; errors while waiting are retried (the page is still changing), `Gone` is not."
    end = time.monotonic() + timeout
    while True:
        try:
            if (v := cond()): return v
        except Gone: raise
        except Exception: pass
        if time.monotonic() > end: raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(poll)

@pytest.fixture
def lab(tmp_path):
    "A JupyterLab server on a free localhost port with a token, isolated from the user's settings; yields (url, token, root)."
    root, home = tmp_path / "lab", tmp_path / "home"
    root.mkdir(); home.mkdir()
    port, token = free_port(), secrets.token_hex(16)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "JUPYTER_CONFIG_DIR": str(home / "config"),
           "JUPYTER_RUNTIME_DIR": str(home / "runtime"), "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"), "IPYTHONDIR": str(home / "ipython"), "MPLBACKEND": "Agg"}
    news = home / "settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    news.parent.mkdir(parents=True)
    news.write_text('{"fetchNews": "false"}')  # no "official Jupyter news?" question over the page
    log = open(tmp_path / "lab.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
                             f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}", "--ServerApp.port_retries=0",
                             "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
                             "--LabApp.extension_manager=readonly",  # nothing asks PyPI for extensions
                             *(["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else [])],
                            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        def up():
            if proc.poll() is not None: raise Gone("jupyter lab exited:\n" + (tmp_path / "lab.log").read_text()[-3000:])
            with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2) as r: return r.status == 200
        wait_until(up, 60, "jupyter lab to answer")
        yield url, token, root
    finally:
        proc.send_signal(signal.SIGTERM)  # the server shuts its kernels down
        try: proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()

@pytest.fixture
def browser(tmp_path):
    "Headless Chromium driven by selenium through the system chromedriver (never a downloaded one)."
    if CHROMIUM is None: pytest.fail("NEXUS_BROWSER_TESTS is set but no Chromium was found: apt-get install -y chromium chromium-driver")
    if CHROMEDRIVER is None: pytest.fail("Chromium is installed but chromedriver is not: apt-get install -y chromium-driver")
    try: from selenium import webdriver
    except ImportError: pytest.fail("Chromium is installed but selenium is not: pip install selenium")
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
              "--disable-sync", "--no-first-run", "--disable-dev-shm-usage", "--window-size=1400,2200", f"--user-data-dir={tmp_path / 'chromium'}"):
        opts.add_argument(a)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER, log_output=str(tmp_path / "chromedriver.log")), options=opts)
    try: yield driver
    finally: driver.quit()

NOTEBOOK_CELL = """\
from nexus.dashboard import Dashboard
dash = Dashboard(
    models_root={models!r},
    data_root={data!r},
    run_dir={run!r},
    flags={flags!r},
    refresh=0.2)
dash.max_steps.value = 4
dash"""

def make_notebook(path, **kw):
    import nbformat
    from nbformat.v4 import new_notebook, new_code_cell
    nb = new_notebook(cells=[new_code_cell(NOTEBOOK_CELL.format(**kw))],
                      metadata={"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}})
    nbformat.write(nb, path)

def test_dashboard_renders_in_jupyterlab(browser, distill_setup, lab, tmp_path, record_property):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys
    url, token, root = lab
    run = tmp_path / "run"
    flags = {k: v for k, v in distill_flags(distill_setup).items() if k not in ("teachers", "datasets")}
    make_notebook(root / "dashboard.ipynb", models=str(distill_setup), data=str(distill_setup / "data"), run=str(run), flags=flags)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "dashboard-jupyterlab.png"
    css = lambda sel: browser.find_elements(By.CSS_SELECTOR, sel)
    try:
        browser.get(f"{url}/lab/tree/dashboard.ipynb?token={token}")
        editor = wait_until(lambda: [e for e in css(".jp-Notebook .jp-Cell .cm-content") if e.is_displayed()][0], 90, "the notebook to open")
        wait_until(lambda: "Idle" in browser.find_element(By.CSS_SELECTOR, ".jp-StatusBar-Widget").text, 90, "the kernel to start")
        editor.click()
        ActionChains(browser).key_down(Keys.SHIFT).send_keys(Keys.ENTER).key_up(Keys.SHIFT).perform()  # run the cell
        wait_until(lambda: css(".jp-OutputArea-output .jupyter-widgets .widget-button"), 90, "the dashboard's widgets")
        buttons = {b.text.strip(): b for b in css(".jp-OutputArea-output .widget-button")}
        assert {"Scan", "Find", "Start", "Stop", "Resume"} <= set(buttons), sorted(buttons)
        assert css(".jp-OutputArea-output .widget-select-multiple select"), "the teachers' multi-select"
        assert css(".jp-OutputArea-output .widget-toggle-buttons"), "the rung"
        assert css(".jp-OutputArea-output .widget-hprogress"), "the progress bar"

        images = [i for i in css(".jp-OutputArea-output .widget-image") if i.is_displayed()]
        assert not images, "an image shown before any plot (an empty one is a broken-image icon)"
        command = lambda: browser.find_element(By.CSS_SELECTOR, ".jp-OutputArea-output .nexus-command").text
        assert "nexus distill --run_dir" in command() and "--teachers smollm2=smollm2" in command()  # the CLI's default

        # browser -> kernel: picking a teacher makes the kernel add its name box and write the command line again
        options = wait_until(lambda: css(".widget-select-multiple select option"), 30, "the scanned models")
        assert [o.text.split(" · ")[0] for o in options] == ["smollm2 (default)", "coder", "general"]
        assert [o.text.split(" · ")[0] for o in options if o.is_selected()] == ["smollm2 (default)"]
        from selenium.webdriver.support.select import Select
        teachers = Select(browser.find_element(By.CSS_SELECTOR, ".widget-select-multiple select"))
        teachers.deselect_all()
        teachers.select_by_index(2)  # general
        wait_until(lambda: any(i.get_attribute("value") == "general" for i in css(".jp-OutputArea-output .widget-text input")), 30,
                   "the teacher's name box, made by the kernel")
        picked = f"--teachers general={distill_setup / 'general'}"
        wait_until(lambda: picked in command(), 30, "the command line of the pick")
        # kernel -> browser, from the run's threads: progress, status and the plot
        buttons["Start"].click()
        wait_until(lambda: "done: 4 steps" in browser.find_element(By.CSS_SELECTOR, ".jp-OutputArea-output").text, 120, "the run to finish")
        img = wait_until(lambda: [i for i in css(".jp-OutputArea-output .widget-image") if i.size["height"] > 50], 30, "the loss plot")
        bar = css(".jp-OutputArea-output .widget-hprogress .progress-bar")[0]
        assert "progress-bar-success" in bar.get_attribute("class") and "width:100%" in bar.get_attribute("style").replace(" ", "")
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", img[0])
        time.sleep(0.5)
    except BaseException:  # what CI needs to tell why: the page and the server's log, beside the screenshot
        (ARTIFACTS / "dashboard-jupyterlab.html").write_text(browser.page_source)
        shutil.copy(tmp_path / "lab.log", ARTIFACTS / "dashboard-jupyterlab.lab.log")
        raise
    finally:
        browser.save_screenshot(str(shot))
        record_property("screenshot", str(shot))
        print(f"screenshot: {shot}")
    assert json.loads((run / ".pipeline_state.json").read_text())["teachers"] == {"general": str(distill_setup / "general")}
