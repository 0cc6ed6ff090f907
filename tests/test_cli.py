"The `nexus` console script as users run it: exit codes, one line on error, never a traceback."
import json, os, subprocess, sys, shutil
import pytest

NEXUS = shutil.which("nexus") or pytest.fail("the `nexus` console script is not installed (pip install -e .)")

def run(*args, timeout=120):
    return subprocess.run([NEXUS, *map(str, args)], capture_output=True, text=True, timeout=timeout)

def test_info_table_and_json(llama_dir):
    r = run("info", llama_dir)
    assert r.returncode == 0 and "LlamaForCausalLM" in r.stdout and r.stderr == ""
    info = json.loads(run("info", llama_dir, "--json").stdout)
    assert info["num_parameters"] > 0 and info["category"] == "transformers"

def test_info_bundled_models():
    r = run("info", "smollm2")
    assert r.returncode == 0 and "134.5M" in r.stdout and "gguf Q4_1" in r.stdout
    assert json.loads(run("info", "minilm", "--json").stdout)["num_parameters"] == 22_713_216

@pytest.mark.parametrize("args,code,text", [
    (["info", "/definitely/not/here"], 1, "no such file or folder"),
    (["info"], 2, "the following arguments are required: path"),
    (["info", ".", "--frobnicate"], 2, "unrecognized arguments: --frobnicate"),
    (["teleport"], 2, "invalid choice: 'teleport'"),
    (["scan", "/definitely/not/here"], 1, "no such file or folder"),
])
def test_errors_are_one_line(args, code, text):
    r = run(*args)
    assert r.returncode == code
    assert text in r.stderr and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr

def test_bad_config_is_one_line(tmp_path):
    (tmp_path / "config.json").write_bytes(b"\xff\xfe garbage")
    r = run("info", tmp_path)
    assert r.returncode == 1 and "not UTF-8 text" in r.stderr and r.stderr.count("\n") == 1

def test_scan_lines_json_and_warnings(registry, tmp_path):
    r = run("scan", registry)
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 14
    os.symlink(tmp_path, tmp_path / "loop")
    (tmp_path / "sub").mkdir()
    os.symlink(registry / "Whisper", tmp_path / "sub" / "whisper")
    r = run("scan", tmp_path, "--json")
    out = json.loads(r.stdout)
    assert [m["architecture"] for m in out["models"]] == ["WhisperForConditionalGeneration"]
    assert len(out["problems"]) == 1 and "symlink loop" in out["problems"][0]["error"]
    assert r.stderr.startswith("nexus: warning:") and "Traceback" not in r.stderr

def test_scan_output_survives_closed_pipe(registry):
    "`nexus scan ROOT | head -1` must not print a BrokenPipeError traceback."
    p = subprocess.run(f"'{NEXUS}' scan '{registry}' | head -1", shell=True, capture_output=True, text=True, timeout=120)
    assert len(p.stdout.splitlines()) == 1 and "Traceback" not in p.stderr

def test_load_reports_and_errors(llama_dir, tmp_path):
    r = run("load", llama_dir)
    assert r.returncode == 0, r.stderr
    assert "LlamaForCausalLM" in r.stdout and "forward -> (1, 8, 320)" in r.stdout and "dtype float32" in r.stdout
    r = run("load", llama_dir, "--memory-limit", "1KiB")
    assert r.returncode == 1 and "needs about" in r.stderr and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert "more than the --memory_limit of 1.0 KiB" in r.stderr and "is free" not in r.stderr, r.stderr
    from nexus.fixtures import save_custom_code_model
    marker = tmp_path / "MARKER"
    r = run("load", save_custom_code_model(tmp_path / "custom", marker=marker))
    assert r.returncode == 1 and "only with --trust_remote_code:" in r.stderr and not marker.exists(), r.stderr
    assert "trust_remote_code=True" not in r.stderr  # the flag, not the library's keyword

@pytest.fixture(scope="module")
def planted_dir(tmp_path_factory):
    "A tiny 6-layer teacher whose layers 1 and 4 barely change the hidden state (output projections scaled to ~0)."
    import torch
    from nexus.fixtures import tiny_model, save_tiny_tokenizer
    folder = tmp_path_factory.mktemp("planted") / "teacher"
    model = tiny_model("llama", num_hidden_layers=6)
    with torch.no_grad():
        for i in (1, 4):
            model.model.layers[i].self_attn.o_proj.weight.mul_(1e-3)
            model.model.layers[i].mlp.down_proj.weight.mul_(1e-3)
    model.save_pretrained(folder); save_tiny_tokenizer(folder)
    return folder

def test_layers_prints_every_layer_and_writes_the_plot(planted_dir, tmp_path):
    png = tmp_path / "layers.png"
    r = run("layers", planted_dir, "--num-layers", "4", "--method", "importance", "--output", png)
    assert r.returncode == 0 and r.stderr == "", r.stderr[-2000:]
    lines = r.stdout.splitlines()
    assert "kept by importance: [0, 2, 3, 5]" in lines[0]
    rows = [l.split() for l in lines[2:8]]
    assert [row[0] for row in rows] == ["0", "1", "2", "3", "4", "5"]
    assert all(float(row[1]) >= 0 for row in rows)
    assert [row[-1] == "kept" for row in rows] == [True, False, True, True, False, True]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and lines[-1] == f"plot  {png}"
    out = json.loads(run("layers", planted_dir, "--num-layers", "4", "--method", "every_k", "--json").stdout)
    assert out["layers"] == [0, 1, 3, 4] and len(out["importance"]) == 6 and out["tokens"] > 0

@pytest.mark.parametrize("args,code,text", [
    (["--num-layers", "9"], 1, "can't be cut from a teacher of 6"),
    (["--method", "best"], 2, "invalid choice: 'best'"),
])
def test_layers_errors_are_one_line(planted_dir, args, code, text):
    r = run("layers", planted_dir, *args)
    assert r.returncode == code and text in r.stderr and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
