"""The docs build's notebook processing (what `nbdev-proc-nbs` does before Quarto renders) succeeds on every
notebook. `nbdev-proc-nbs` itself first insists on a Quarto binary, which these machines can't download (it comes
from GitHub releases); the GitHub deploy workflow installs Quarto and renders the site."""
import os, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

def test_notebooks_process_for_the_docs(tmp_path):
    code = ("import warnings, nbdev.quarto as q; warnings.simplefilter('ignore'); from nbdev.config import get_config; "
            "print(q.proc_nbs(get_config().nbs_path))")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=1200,
                       env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    proc = Path(r.stdout.strip().splitlines()[-1])
    for nb in (ROOT / "nbs").glob("*.ipynb"): assert (proc / nb.name).exists(), nb.name
