"Bad paths that need a real filesystem situation: permission denied (as another user) and symlink loops."
import json, os, shutil, subprocess, sys, tempfile
from pathlib import Path
import pytest
from nexus.detect import ModelPathError, NexusError, get_model_info, scan

def _as_unprivileged(code, *args):
    """Run `code` in a fresh interpreter as an unprivileged user, so permissions really apply (root ignores them).
    Imports happen first: this Python lives where that user may not read."""
    drop = "os.setgid(65534); os.setuid(65534)" if os.geteuid() == 0 else "pass"
    r = subprocess.run([sys.executable, "-c", code.replace("#DROP", drop), *args], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)

PROBE = '''
import json, os, sys, difflib, zipfile
from nexus.detect import get_model_info, NexusError, arch_index
arch_index()
#DROP
try: get_model_info(sys.argv[1]); print(json.dumps(None))
except NexusError as e: print(json.dumps([type(e).__name__, str(e)]))
'''

@pytest.fixture
def world_readable_tmp():
    d = Path(tempfile.mkdtemp(dir="/tmp"))
    d.chmod(0o755)
    yield d
    for p in d.rglob("*"): p.chmod(0o755) if p.is_dir() else None
    shutil.rmtree(d)

def test_permission_denied_on_folder(world_readable_tmp, llama_dir):
    model = world_readable_tmp / "model"
    shutil.copytree(llama_dir, model)
    model.chmod(0o700)  # only root may list it
    cls, msg = _as_unprivileged(PROBE, str(model))
    assert cls == "ModelPathError" and "permission denied" in msg and "chmod" in msg

def test_permission_denied_on_config(world_readable_tmp, llama_dir):
    model = world_readable_tmp / "model"
    shutil.copytree(llama_dir, model)
    for p in model.iterdir(): p.chmod(0o644)
    model.chmod(0o755)
    (model / "config.json").chmod(0o600)
    cls, msg = _as_unprivileged(PROBE, str(model))
    assert cls == "ModelPathError" and "permission denied reading the config.json" in msg

def test_symlink_loop_as_the_path(tmp_path):
    loop = tmp_path / "loop"
    os.symlink(loop, loop)
    with pytest.raises(ModelPathError, match="symbolic link loop"): get_model_info(loop)

def test_scan_survives_mutual_link_loop(tmp_path, llama_dir):
    a, b = tmp_path / "a", tmp_path / "b"
    os.symlink(b, a); os.symlink(a, b)
    os.symlink(llama_dir, tmp_path / "m")
    res = scan(tmp_path)
    assert [m["name"] for m in res.models] == ["m"]
    assert len(res.problems) == 2 and all("symbolic link loop" in str(e) for _, e in res.problems)

def test_read_only_cache_still_detects(tmp_path, llama_dir):
    "The architecture index cache is an optimisation: an unwritable cache folder must not break detection."
    code = "import json, sys; from nexus.detect import get_model_info; print(json.dumps(get_model_info(sys.argv[1])['category']))"
    cache = tmp_path / "cache"
    cache.write_text("a file where the cache folder should be")
    r = subprocess.run([sys.executable, "-c", code, str(llama_dir)], capture_output=True, text=True,
                       env={**os.environ, "NEXUS_CACHE_DIR": str(cache / "sub")}, timeout=60)
    assert r.returncode == 0 and json.loads(r.stdout) == "transformers", r.stderr
