"Project invariants: the README's two commands, CI running the test command verbatim, nbdev 3 configuration."
import re, subprocess, sys, tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

def readme_commands():
    return re.findall(r"```sh\n(.+?)\n```", (ROOT / "README.md").read_text())

def test_readme_starts_with_exactly_two_commands():
    text = (ROOT / "README.md").read_text()
    cmds = readme_commands()
    assert len(cmds) >= 2
    first_two = text.index(cmds[1]) + len(cmds[1])
    assert text[:first_two].count("```sh") == 2, "the two set-up commands must come first"
    install_run, install_test = cmds[:2]
    assert install_run.startswith("pip install torch==2.13.0") and install_test.startswith("pip install torch==2.13.0")

def test_ci_runs_the_readme_test_command_verbatim():
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert "pip install torch==2.13.0" in ci
    assert readme_commands()[1] in ci, "the README's test command must appear verbatim in .ci/run"
    assert ci.index("pip install torch==2.13.0") < ci.index(readme_commands()[1])

def test_readme_is_generated_from_index():
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "readme.py"), "--check"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr

def test_nbdev3_configuration():
    assert not (ROOT / "settings.ini").exists() and not (ROOT / "setup.py").exists()
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert cfg["project"]["name"] != "nexus"  # that PyPI name belongs to an unrelated package
    assert cfg["tool"]["nbdev"]["tst_flags"] == ["notest", "slow", "gpu"]
    assert cfg["project"]["scripts"]["nexus"] == "nexus.cli:main"
