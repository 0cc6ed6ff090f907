"""Conventions people bring to `nexus` from transformers and other command lines: transformers' flag names, one
spelling (the other read silently), `--no_FLAG`, `--version`, a near miss named, errors in the flags' own words, and
experiment trackers."""
import json, re, shutil, subprocess
from unittest import mock
import pytest
from nexus import __version__
from nexus.cli import build_parser, flags_from_args
from nexus.state import load_state, open_run, resolve_state, state_keys

NEXUS = shutil.which("nexus") or pytest.fail("the `nexus` console script is not installed (pip install -e .)")

def run(*args, timeout=120):
    return subprocess.run([NEXUS, *map(str, args)], capture_output=True, text=True, timeout=timeout)

def distill_flags(*argv) -> dict:
    "The state flags `nexus distill ARGV` gives its run (parsed only: nothing is trained)."
    return flags_from_args(build_parser().parse_args(["distill", *map(str, argv)]))

def one_line_error(r, code=2):
    assert r.returncode == code, r.stdout + r.stderr
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
    return r.stderr

# transformers' names

@pytest.mark.parametrize("argv,key,value", [
    (["--learning_rate", "3e-4"], "hyper.lr", 3e-4),
    (["--num_train_epochs", "2"], "hyper.epochs", 2),
    (["--per_device_train_batch_size", "8"], "hyper.batch_size", 8),
    (["--gradient_accumulation_steps", "4"], "hyper.gradient_accumulation_steps", 4),
    (["--lr_scheduler_type", "linear"], "hyper.lr_scheduler", "linear"),
    (["--max_length", "256"], "optim.max_seq_length", 256),
    (["--torch_compile_mode", "default"], "optim.compile_mode", "default"),
    (["--activation_checkpointing"], "optim.gradient_checkpointing", True),
    (["--bf16"], "optim.precision", "bf16"),
    (["--fp16", "True"], "optim.precision", "fp16"),  # as transformers' READMEs write it
    (["--bf16", "false"], "optim.precision", "fp32"),  # mixed precision off: fp32, as transformers trains then
])
def test_transformers_names_set_the_same_settings(argv, key, value):
    flags = distill_flags(*argv)
    assert flags == {key: value}
    assert resolve_state(None, flags).get(key) == value

def test_transformers_names_land_in_the_saved_state(llama_dir, tmp_path):
    "From `nexus distill`'s flags into `.pipeline_state.json`, and `nexus state set` takes the names too."
    flags = distill_flags("--learning_rate", "3e-4", "--per_device_train_batch_size", "2", "--bf16",
                          "--teachers", f"llama={llama_dir}")
    with open_run(tmp_path / "run", flags): pass
    saved = load_state(tmp_path / "run")
    assert (saved.hyper.lr, saved.hyper.batch_size, saved.optim.precision) == (3e-4, 2, "bf16")
    r = run("state", "set", "num_train_epochs=5", "learning_rate=1e-4", "--run-dir", tmp_path / "run")
    assert r.returncode == 0, r.stderr
    saved = load_state(tmp_path / "run")
    assert (saved.hyper.epochs, saved.hyper.lr) == (5, 1e-4)

def test_output_dir_is_the_run_folder():
    assert build_parser().parse_args(["distill", "--output_dir", "runs/a"]).run_dir == "runs/a"

def test_help_shows_transformers_names_beside_the_flag():
    r = run("distill", "--help")
    assert r.returncode == 0
    for shown in ("--lr, --learning_rate LR", "--epochs, --num_train_epochs EPOCHS",
                  "--precision PRECISION, --bf16, --fp16", "--run_dir, --output_dir RUN_DIR"):
        assert shown in r.stdout, shown

# a near miss

@pytest.mark.parametrize("args,meant", [
    (["distill", "--learnin_rate", "3e-4"], "--learning_rate"),
    (["distill", "--no-pakcing"], "--no_packing"),
    (["load", "model", "--memory-limt", "1GiB"], "--memory_limit"),
    (["state", "set", "lr=1", "--dry-rn"], "--dry_run"),
])
def test_a_misspelt_flag_names_the_closest(args, meant):
    err = one_line_error(run(*args))
    assert f"unrecognized arguments: {next(a for a in args if a.startswith('--'))}" in err, err
    assert f"did you mean '{meant}'?" in err, err

def test_an_unknown_flag_with_nothing_close_is_still_one_line():
    err = one_line_error(run("info", ".", "--frobnicate"))
    assert "unrecognized arguments: --frobnicate" in err and "did you mean" not in err

# one spelling

@pytest.mark.parametrize("argv,dest,value", [
    (["load", "m", "--memory-limit", "8GiB"], "memory_limit", "8GiB"),
    (["load", "m", "--memory_limit", "8GiB"], "memory_limit", "8GiB"),
    (["load", "m", "--trust-remote-code"], "trust_remote_code", True),
    (["load", "m", "--trust_remote_code"], "trust_remote_code", True),
    (["load", "m", "--no-tokenizer"], "no_tokenizer", True),
    (["scan", ".", "--max-depth", "3"], "max_depth", 3),
    (["scan", ".", "--max_depth", "3"], "max_depth", 3),
    (["layers", "t", "--num-layers", "3"], "num_layers", 3),
    (["distill", "--run-dir", "r"], "run_dir", "r"),
    (["distill", "--run_dir=r"], "run_dir", "r"),
    (["distill", "--output-dir", "r"], "run_dir", "r"),
    (["state", "set", "lr=1", "--dry-run"], "dry_run", True),
    (["state", "reset", "lr", "--run-dir", "r"], "run_dir", "r"),
])
def test_either_spelling_is_the_same_flag(argv, dest, value):
    assert getattr(build_parser().parse_args(argv), dest) == value

def test_state_flags_take_either_spelling():
    assert distill_flags("--sample-size", "8", "--max_seq-length", "64") == distill_flags("--sample_size", "8",
                                                                                         "--max_seq_length", "64")

def _parsers(p, name="nexus"):
    "Every parser of the `nexus` command line, by its name."
    yield name, p
    for a in p._actions:
        if isinstance(getattr(a, "choices", None), dict):  # the subcommands
            for sub, q in a.choices.items(): yield from _parsers(q, f"{name} {sub}")

def test_help_shows_one_spelling():
    "Every flag in every help is written with underscores: the hyphenated spelling is read, never shown."
    for name, p in _parsers(build_parser()):
        hyphenated = re.findall(r"--[a-z0-9]+-[a-z0-9-]+", p.format_help())
        assert not hyphenated, (name, hyphenated)

# negations

@pytest.mark.parametrize("argv,expected", [
    (["--no-packing"], {"optim.packing": False}),
    (["--no_packing"], {"optim.packing": False}),
    (["--no-t2_scaling"], {"loss.t2_scaling": False}),
    (["--no-t2-scaling"], {"loss.t2_scaling": False}),
    (["--packing", "false"], {"optim.packing": False}),  # a value, as before
    (["--packing"], {"optim.packing": True}),
    (["--no_packing", "--packing", "yes"], {"optim.packing": True}),  # the last one given wins
])
def test_negations(argv, expected):
    assert distill_flags(*argv) == expected

def test_every_boolean_setting_has_its_negation():
    booleans = [k for k in state_keys() if k.flag and k.type == "true or false"]
    assert booleans
    for k in booleans: assert distill_flags(f"--no_{k.flag}") == {k.key: False}, k.key

# --version

def test_version():
    r = run("--version")
    assert (r.returncode, r.stdout, r.stderr) == (0, f"nexus {__version__}\n", "")

# errors in the words of the command line

@pytest.mark.parametrize("extra,said,not_said", [
    (["--memory-limit", "1KiB"], ["more than the --memory_limit of 1.0 KiB", "(--dtype bfloat16)"],
     ["is free", "torch_dtype"]),
    (["--dtype", "float64"], ["--dtype float64 is not a dtype Nexus knows"], ["torch_dtype"]),
    (["--memory_limit", "lots"], ["--memory_limit lots is not a size"], ["memory_limit="]),
])
def test_load_errors_name_the_flags(llama_dir, extra, said, not_said):
    err = one_line_error(run("load", llama_dir, *extra), code=1)
    assert all(s in err for s in said) and not any(s in err for s in not_said), err

def test_remote_code_error_names_the_flag(tmp_path):
    from nexus.fixtures import save_custom_code_model
    marker = tmp_path / "MARKER"
    err = one_line_error(run("load", save_custom_code_model(tmp_path / "custom", marker=marker)), code=1)
    assert "only with --trust_remote_code: read that code first" in err and "=True" not in err, err
    assert not marker.exists()

def test_python_callers_read_keywords(llama_dir):
    "The same errors from Python name the keyword arguments a caller passed."
    from nexus.loader import OmniModelLoader
    from nexus.errors import InsufficientMemoryError
    with pytest.raises(InsufficientMemoryError) as e: OmniModelLoader(llama_dir).load(memory_limit="1KiB")
    assert "more than the memory_limit of 1.0 KiB" in str(e.value) and "torch_dtype='bfloat16'" in str(e.value)

# experiment trackers

def test_report_to_is_checked_while_parsing():
    err = one_line_error(run("distill", "--report_to", "tensorbord"))
    assert "argument --report_to: hyper.report_to: 'tensorbord' is not an experiment tracker transformers knows; " \
           "did you mean 'tensorboard'?" in err, err
    from transformers.integrations import integration_utils
    with mock.patch.object(integration_utils, "get_available_reporting_integrations", return_value=["tensorboard"]):
        assert distill_flags("--report_to", "tensorboard") == {"hyper.report_to": ["tensorboard"]}
        assert distill_flags("--report_to", "none") == {"hyper.report_to": []}
        with pytest.raises(SystemExit): distill_flags("--report_to", "tensorboard", "wandb")

def test_report_to_names_what_is_installed(capsys):
    from transformers.integrations import integration_utils
    with mock.patch.object(integration_utils, "get_available_reporting_integrations", return_value=["tensorboard"]):
        with pytest.raises(SystemExit): distill_flags("--report_to", "mlflow")
    err = capsys.readouterr().err
    assert "'mlflow' is not installed here (installed: tensorboard); install it, or leave it out" in err, err

def test_a_state_saved_before_report_to_existed_loads_with_none(llama_dir, tmp_path):
    "A key added with a default needs no migration: an older file without it loads, shows and resumes as before."
    with open_run(tmp_path / "run", {"teachers": {"llama": str(llama_dir)}}): pass
    path = tmp_path / "run" / ".pipeline_state.json"
    d = json.loads(path.read_text())
    del d["hyper"]["report_to"]
    path.write_text(json.dumps(d))
    assert load_state(tmp_path / "run").hyper.report_to == []
    r = run("state", "show", tmp_path / "run")
    assert r.returncode == 0 and re.search(r"^hyper\.report_to +\[\]$", r.stdout, re.M), r.stdout + r.stderr

def test_report_to_tensorboard_writes_event_files(distill_setup, tmp_path):
    "A tiny run with `--report_to tensorboard` leaves TensorBoard event files in its run folder, holding the loss."
    pytest.importorskip("tensorboard")
    root, run_dir = distill_setup, tmp_path / "run"
    r = run("distill", "--run_dir", run_dir, "--teachers", f"general={root / 'general'}", "--datasets",
            f"general={root / 'data' / 'general'}", "--student_layers", "2", "--per_device_train_batch_size", "4",
            "--max_length", "32", "--max_steps", "2", "--logging_steps", "1", "--report_to", "tensorboard",
            timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads((run_dir / ".pipeline_state.json").read_text())["hyper"]["report_to"] == ["tensorboard"]
    events = sorted(run_dir.rglob("events.out.tfevents.*"))
    assert events, sorted(str(p.relative_to(run_dir)) for p in run_dir.rglob("*"))
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    tags = set()
    for e in events: tags |= set(EventAccumulator(str(e)).Reload().Tags()["scalars"])
    assert any("loss" in t for t in tags), tags
