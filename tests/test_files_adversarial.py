"""Files that are not what their names say, and records larger than anyone meant: every reader Nexus has refuses a
FIFO, a device, a socket or a folder at once, never waits on one or reads one forever; data is read with a bounded
record size; a huge record is tokenised only as far as a run can use it; a stray weight-like file hides no model from
`nexus scan`.

Anything that could hang or eat memory runs in a child process, bounded in time (and, where memory is the point, in
address space), so a regression fails a test instead of hanging the suite."""
import json, os, shutil, socket, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent
NEXUS = os.path.join(os.path.dirname(sys.executable), "nexus")
READERS = {  # a file name, and how Nexus reads a file of that name
    "config.json": "formats.read_json_object(p)",
    "model.safetensors": "formats.read_safetensors_header(p)",
    "model.gguf": "formats.read_gguf_header(p)",
    "params.npz": "formats.read_npz_shapes(p)",
    "d.jsonl": "data.count_records(p)",
    "d.json": "list(data.read_records(p))",
    "d.csv": "data.count_records(p)",
    "d.tsv": "list(data.read_records(p))",
    "d.txt": "list(data.read_examples(p))",
    "d.parquet": "data.count_records(p)",
}
KINDS = {"fifo": "a FIFO (named pipe)", "device": "a character device", "socket": "a socket", "folder": "a folder"}

PROBE = r'''
import faulthandler, json, os, resource, sys
faulthandler.dump_traceback_later(30, exit=True)  # a hang prints where it hangs, and ends the child
from nexus import formats, data, detect
from nexus.errors import NexusError
cap = int(sys.argv[2])
if cap:  # what the child may still allocate: a reader that reads without bound runs out, and is caught doing so
    vm = next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmSize"))
    resource.setrlimit(resource.RLIMIT_AS, (vm + cap, vm + cap))
out = {}
for name, call in json.loads(sys.argv[3]).items():
    p = os.path.join(sys.argv[1], name)
    try: out[name] = ["no error", json.dumps(eval(call), default=str)]
    except NexusError as e: out[name] = [type(e).__name__, str(e)]
    except BaseException as e: out[name] = ["NOT A NEXUS ERROR: " + type(e).__name__, str(e)[:300]]
print(json.dumps(out))
'''


def probe(folder, readers, cap=0, timeout=120, setup=""):
    "{file name: [error class, message]} of reading each of `readers` in `folder`, in a child bounded in time."
    code = PROBE.replace("out = {}", setup + "\nout = {}")
    r = subprocess.run([sys.executable, "-c", code, str(folder), str(cap), json.dumps(readers)], capture_output=True,
                       text=True, timeout=timeout, env={**os.environ, "MALLOC_ARENA_MAX": "2"})
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout)


def make(kind, path: Path):
    "A file system object of `kind` at `path`: a FIFO, a link to /dev/zero, a listening UNIX socket, or a folder."
    if kind == "fifo": os.mkfifo(path)
    elif kind == "device": path.symlink_to("/dev/zero")
    elif kind == "folder": path.mkdir()
    else:
        s = socket.socket(socket.AF_UNIX)
        s.bind(str(path))
        return s


@pytest.mark.parametrize("kind", KINDS)
def test_every_reader_refuses_what_is_not_a_regular_file(kind, tmp_path):
    "A FIFO nobody writes to, /dev/zero behind a link, a socket, a folder: each reader says what it is, at once."
    socks = [make(kind, tmp_path / name) for name in READERS]
    try: out = probe(tmp_path, READERS, cap=1 << 30)  # /dev/zero read whole would pass any cap
    finally:
        for s in socks:
            if s: s.close()
    for name, (cls, msg) in out.items():
        assert cls.endswith("Error") and not cls.startswith("NOT"), (name, cls, msg)
        assert f"is {KINDS[kind]}" in msg and name in msg, (name, msg)


def test_a_model_folder_with_a_fifo_or_device_inside_is_no_hang(tmp_path, llama_dir):
    "A model folder whose config.json is a FIFO, or whose weights link to /dev/zero: a clear error, no hang."
    (tmp_path / "fifo-config").mkdir()
    os.mkfifo(tmp_path / "fifo-config" / "config.json")
    (tmp_path / "zero-weights").mkdir()
    (tmp_path / "zero-weights" / "config.json").write_bytes((llama_dir / "config.json").read_bytes())
    (tmp_path / "zero-weights" / "model.safetensors").symlink_to("/dev/zero")
    os.mkfifo(tmp_path / "lone.gguf")
    calls = {"fifo-config": "detect.get_model_info(p)", "zero-weights": "detect.get_model_info(p)",
             "lone.gguf": "detect.get_model_info(p)"}
    out = probe(tmp_path, calls, cap=1 << 30)
    assert out["fifo-config"][0] == "ConfigError" and "no config.json here" in out["fifo-config"][1]
    assert out["lone.gguf"][0] == "ModelPathError" and "is a FIFO (named pipe)" in out["lone.gguf"][1]
    assert out["zero-weights"][0] == "no error"  # the link to a device is not taken for a weight file
    info = subprocess.run([NEXUS, "info", str(tmp_path / "zero-weights"), "--json"], capture_output=True, text=True,
                          timeout=120)
    assert info.returncode == 0 and json.loads(info.stdout)["weight_files"] == []


def test_discovery_and_sampling_skip_or_refuse_a_fifo(tmp_path):
    "A FIFO among data files is not a data file: discovery skips it; named directly, it is refused, not waited on."
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "good.jsonl").write_text('{"text": "a"}\n{"text": "b"}\n')
    os.mkfifo(tmp_path / "data" / "pipe.jsonl")
    calls = {"data": "[f.path.name for f in data.discover_datasets(p)]",
             "data/pipe.jsonl": "data.sample_examples([p], 2)"}
    out = probe(tmp_path, calls)
    assert json.loads(out["data"][1]) == ["good.jsonl"]
    assert out["data/pipe.jsonl"][0] == "DataReadError" and "is a FIFO (named pipe)" in out["data/pipe.jsonl"][1]


def sparse(path: Path, size: int, head=b""):
    "A file of `size` bytes, `head` and then zeros, none of them stored on disk: a record without a line break."
    with open(path, "wb") as f:
        f.write(head)
        f.truncate(size)


def test_a_line_without_end_is_refused_with_bounded_memory(tmp_path):
    "2 GiB without a line break, in every line-based format: an error naming the file and line 1, in bounded memory."
    names = ["d.jsonl", "d.csv", "d.txt", "d.tsv"]
    for name in names: sparse(tmp_path / name, 2 << 30, b'{"text": "' if name == "d.jsonl" else b"")
    sparse(tmp_path / "d.json", 2 << 30, b"[")
    setup = "data.MAX_RECORD_BYTES, data.MAX_JSON_BYTES = 1 << 20, 4 << 20  # small bounds, to keep the test quick"
    out = probe(tmp_path, {n: READERS[n] for n in names + ["d.json"]}, cap=256 << 20, setup=setup)
    for name in names:
        cls, msg = out[name]
        assert cls == "DataReadError" and f"{name}, line 1: a line longer than 1 MiB" in msg, (name, cls, msg)
    assert out["d.json"][0] == "DataReadError" and "is larger than 4 MiB" in out["d.json"][1], out["d.json"]


def test_the_real_line_bound(tmp_path):
    "With the shipped bound (256 MiB), a 300 MiB line is refused, naming its line, without reading the rest."
    sparse(tmp_path / "d.jsonl", 300 << 20, b'{"text": "fine"}\n{"text": "')
    out = probe(tmp_path, {"d.jsonl": READERS["d.jsonl"]}, cap=1536 << 20)
    cls, msg = out["d.jsonl"]
    assert cls == "DataReadError" and "d.jsonl, line 2: a line longer than 256 MiB" in msg, (cls, msg)


def test_a_paragraph_and_a_csv_field_are_bounded_too(tmp_path):
    "A txt paragraph of many short lines, and a quoted csv field spanning lines, stop at the record bound."
    (tmp_path / "d.txt").write_text("line of a paragraph\n" * 10_000)
    (tmp_path / "d.csv").write_text('text\n"' + "a field line\n" * 10_000 + '"\n')
    setup = "data.MAX_RECORD_BYTES = 1 << 16"
    out = probe(tmp_path, {"d.txt": READERS["d.txt"], "d.csv": READERS["d.csv"]}, setup=setup)
    txt_cls, txt_msg = out["d.txt"]
    assert txt_cls == "DataReadError" and "d.txt, line 1: a paragraph longer than 65536 bytes" in txt_msg
    assert out["d.csv"][0] == "DataFormatError" and "field larger than field limit" in out["d.csv"][1], out["d.csv"]


BIG = r'''
import json, os, resource, sys, time
from nexus.fixtures import tiny_tokenizer
from nexus.data import sample_examples, build_dataset
tok = tiny_tokenizer()
tok(["warm", "up"], add_special_tokens=False)  # the tokenizer's threads and buffers exist before the cap
vm = next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmSize"))
cap = vm + int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
t = time.time()
examples = sample_examples([sys.argv[1]], None, seed=0)
items = build_dataset(examples, tok, 32, packing=False).items
print(json.dumps({"examples": len(examples), "lengths": sorted(len(it["input_ids"]) for it in items),
                  "longest": max(len(e.text) for e in examples), "seconds": time.time() - t}))
'''


def test_a_200_mb_record_is_not_tokenised_whole(tmp_path):
    """A 200 MB JSON Lines record of which a run keeps 32 tokens: read, cut and tokenised within 1.5 GiB more than the
    child had (tokenising it whole takes gigabytes), in bounded time."""
    path = tmp_path / "big.jsonl"
    with open(path, "w") as f:
        f.write('{"text": "A short record."}\n{"text": "')
        for _ in range(200): f.write("The fox slept under the old oak, and dreamt of rivers. " * 18_000)
        f.write('"}\n{"prompt": "Q?", "completion": "A."}\n')
    assert path.stat().st_size > 190e6
    r = subprocess.run([sys.executable, "-c", BIG, str(path), str(1536 << 20)], capture_output=True, text=True,
                       timeout=300, env={**os.environ, "MALLOC_ARENA_MAX": "2", "RAYON_NUM_THREADS": "2"})
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout)
    assert out["examples"] == 3 and out["longest"] > 190e6
    assert out["lengths"][-1] == 32 and len(out["lengths"]) == 3


def test_a_stray_weight_file_hides_no_model(tmp_path, llama_dir):
    "`nexus scan`: a stray notes.pt, or a loose GGUF model, above model folders hides none of them."
    from nexus.detect import bundled_model_path, scan
    (tmp_path / "notes.pt").write_bytes(b"not a model")
    (tmp_path / "models" / "deep" / "er").mkdir(parents=True)
    os.symlink(bundled_model_path("smollm2"), tmp_path / "models" / "smol.gguf")
    (tmp_path / "models" / "stray.bin").write_bytes(b"also not a model")
    shutil.copytree(llama_dir, tmp_path / "models" / "deep" / "er" / "llama")  # a link to it would be listed once
    os.symlink(llama_dir, tmp_path / "llama-top")
    res = scan(tmp_path)
    assert sorted(m["name"] for m in res.models) == ["llama", "llama-top", "smol.gguf"]
    r = subprocess.run([NEXUS, "scan", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 3, r.stdout
    warnings = r.stderr.splitlines()
    assert len(warnings) == 1 and "notes.pt" in warnings[0] and "nexus scan" not in r.stderr, r.stderr


STATE_FILE, LOCK_FILE = ".pipeline_state.json", ".pipeline_state.lock"
STATE_KINDS = {"fifo": "is a FIFO (named pipe)", "device": "is a symbolic link", "link": "is a symbolic link"}


def saved_state(folder: Path) -> bytes:
    "A valid pipeline state saved in `folder` (made in a child: this process stays torch-free); its bytes."
    folder.mkdir(parents=True, exist_ok=True)
    code = "import sys; from nexus.state import PipelineState, save_state; save_state(PipelineState(), sys.argv[1])"
    subprocess.run([sys.executable, "-c", code, str(folder)], check=True, timeout=120)
    return (folder / STATE_FILE).read_bytes()


def state_commands(run):
    return {"show": [NEXUS, "state", "show", str(run)],
            "set": [NEXUS, "state", "set", "hyper.lr=0.001", "--run-dir", str(run)],
            "resume": [NEXUS, "distill", "--resume", str(run)]}


@pytest.mark.parametrize("kind", STATE_KINDS)
def test_a_state_file_that_is_not_a_regular_file_is_refused_at_once(kind, tmp_path):
    """A state file that is a FIFO, a link to /dev/zero, or a link to a valid state elsewhere: `state show`, `state
    set` and `distill --resume` refuse it in one line, never wait on it or read it forever, and change nothing."""
    run, elsewhere = tmp_path / "run", tmp_path / "elsewhere"
    good = saved_state(elsewhere)
    run.mkdir()
    if kind == "fifo": os.mkfifo(run / STATE_FILE)
    elif kind == "device": (run / STATE_FILE).symlink_to("/dev/zero")
    else: (run / STATE_FILE).symlink_to(elsewhere / STATE_FILE)
    for name, cmd in state_commands(run).items():
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert r.returncode != 0 and STATE_KINDS[kind] in r.stderr, (name, r.stderr[-2000:])
        assert "Traceback" not in r.stderr and r.stderr.strip().count("\n") == 0, (name, r.stderr[-2000:])
    assert (elsewhere / STATE_FILE).read_bytes() == good
    assert (run / STATE_FILE).is_symlink() == (kind != "fifo")


@pytest.mark.parametrize("kind", ["link", "fifo", "hardlink"])
def test_a_lock_file_that_is_not_nexus_own_is_never_written_through(kind, tmp_path):
    """A `.pipeline_state.lock` that links to a file outside the run (symbolic or hard link), or is a FIFO: `state set`
    and `distill --resume` refuse it in one line; the linked file keeps its bytes, the state is unchanged."""
    run = tmp_path / "run"
    good = saved_state(run)
    victim = tmp_path / "precious.txt"
    victim.write_text("do not truncate me\n")
    if kind == "link": (run / LOCK_FILE).symlink_to(victim)
    elif kind == "hardlink": os.link(victim, run / LOCK_FILE)
    else: os.mkfifo(run / LOCK_FILE)
    for name in ("set", "resume"):
        r = subprocess.run(state_commands(run)[name], capture_output=True, text=True, timeout=120)
        assert r.returncode != 0 and LOCK_FILE in r.stderr, (name, r.stderr[-2000:])
        assert "Traceback" not in r.stderr and r.stderr.strip().count("\n") == 0, (name, r.stderr[-2000:])
    assert victim.read_text() == "do not truncate me\n" and (run / STATE_FILE).read_bytes() == good
