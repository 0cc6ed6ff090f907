"""Teacher caches built in processes of their own: two processes (torchrun, gloo) build what one builds, a build
killed mid-way resumes to what an uninterrupted one builds, and `nexus distill` trains from a cache end to end."""
import json, os, shutil, signal, subprocess, sys, time
from pathlib import Path
import pytest, torch
from nexus.cache import TeacherCache

HERE = Path(__file__).parent
TORCHRUN = shutil.which("torchrun") or pytest.fail("torchrun is not on PATH (it comes with torch)")
NEXUS = shutil.which("nexus") or pytest.fail("the `nexus` console script is not installed (pip install -e .)")
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
BUILD = str(HERE / "cache_build.py")

def data_flags(root):
    return ["--teachers", f"general={root / 'general'}", "--datasets", f"general={root / 'data' / 'general'}",
            "--max_seq_length", "32", "--seed", "7", "--teacher_cache_k", "8"]

def run(cmd, timeout=300, env=ENV):
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    return r

def contents(folder) -> dict:
    "Every sample of a cache, decoded: {sample: (ids, logprobs, tail)}."
    c = TeacherCache(folder)
    assert c.complete, c
    return {i: tuple(c.sample(i)[:3]) for i in c.samples}

def assert_same(a, b):
    assert sorted(a) == sorted(b)
    for i in a:
        for x, y in zip(a[i], b[i]): assert torch.equal(x, y), i

@pytest.fixture(scope="module")
def one_process(distill_setup, tmp_path_factory):
    out = tmp_path_factory.mktemp("cache") / "one"
    run([sys.executable, BUILD, "--output", out, *data_flags(distill_setup)])
    return out / "general"

def test_two_processes_build_what_one_builds(distill_setup, one_process, tmp_path):
    run([TORCHRUN, "--nproc_per_node", "2", BUILD, "--output", tmp_path / "two", *data_flags(distill_setup)])
    shards = sorted(p.name for p in (tmp_path / "two" / "general").glob("shard-*"))
    assert len(shards) >= 2 and json.loads((tmp_path / "two" / "general" / "index.json").read_text())["complete"]
    assert_same(contents(one_process), contents(tmp_path / "two" / "general"))

def test_killed_build_resumes_to_the_same_cache(distill_setup, one_process, tmp_path):
    out = tmp_path / "killed"
    p = subprocess.Popen([sys.executable, BUILD, "--output", str(out), *data_flags(distill_setup)],
                         env={**ENV, "CACHE_BUILD_SECONDS": "0.5"}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 240
        while len(list((out / "general").glob("shard-*.safetensors"))) < 2 and time.time() < deadline:
            assert p.poll() is None, p.stderr.read().decode()[-2000:]
            time.sleep(0.05)
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=30)
    finally:
        if p.poll() is None: p.kill(); p.wait(timeout=30)
    partial = TeacherCache(out / "general")
    assert 2 <= len({*partial.where.values()}) and not partial.complete
    kept = {q.name: q.stat().st_mtime_ns for q in (out / "general").glob("shard-*.safetensors")}
    run([TORCHRUN, "--nproc_per_node", "2", BUILD, "--output", out, *data_flags(distill_setup)])  # another world size
    assert all((out / "general" / n).stat().st_mtime_ns == t for n, t in kept.items())  # covered shards: not redone
    assert_same(contents(one_process), contents(out / "general"))

def test_nexus_distill_trains_from_a_cache(distill_setup, one_process, tmp_path):
    base = ["distill", *data_flags(distill_setup), "--student_layers", "2", "--batch_size", "4", "--lr", "3e-3",
            "--save_steps", "1000", "--max_steps", "3", "--hidden_weight", "0"]
    r = run([NEXUS, *base, "--run_dir", tmp_path / "run", "--teacher_cache", "run"], timeout=600)
    assert "after" in r.stdout and json.loads((tmp_path / "run" / "metrics.json").read_text())["after"]["kl"] > 0
    assert TeacherCache(tmp_path / "run" / "teacher_cache" / "general").complete
    # the cache `nexus cache` built for these flags is reused as it is
    mtimes = {q: q.stat().st_mtime_ns for q in one_process.glob("shard-*")}
    run([NEXUS, *base, "--run_dir", tmp_path / "reuse", "--teacher_cache", one_process.parent], timeout=600)
    assert {q: q.stat().st_mtime_ns for q in one_process.glob("shard-*")} == mtimes
    # refused: a cache of other data (another length), and a loss that needs hidden states
    bad = subprocess.run([NEXUS, *base, "--max_seq_length", "24", "--run_dir", tmp_path / "bad", "--teacher_cache",
                          one_process.parent], capture_output=True, text=True, timeout=600, env=ENV)
    assert bad.returncode == 1 and "was built for another run: maximum length: 32 in the cache, 24 here" in bad.stderr
    hid = subprocess.run([NEXUS, *base, "--hidden_weight", "1", "--run_dir", tmp_path / "hid", "--teacher_cache", "run"],
                         capture_output=True, text=True, timeout=600, env=ENV)
    assert hid.returncode == 1 and "needs their hidden states" in hid.stderr, hid.stderr[-2000:]
