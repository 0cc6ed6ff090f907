"""benchmarks/gpu_check.py can't rot: its --dry mode runs every part on the CPU at tiny sizes through the same
functions the GPU run uses, and writes a JSON with every section and sane values, and the markdown block."""
import json, math, os, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).parent.parent
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}

# A stand-in for nexus.fused with the signature the check maps by name: a plain head + full-tensor KL, so the fused
# part's code path runs here even before nexus/fused.py exists.
STUB = '''
import torch.nn.functional as F
def fused_logit_loss(hidden, weight, teacher_logits, temperature=1.0):
    V = weight.shape[0]
    s = F.log_softmax((hidden @ weight.T).float(), -1).reshape(-1, V)
    t = F.log_softmax(teacher_logits.float(), -1).reshape(-1, V)
    return F.kl_div(s, t, log_target=True, reduction="batchmean")
'''

def dry(tmp_path, *extra, env=ENV, timeout=300):
    out, md = tmp_path / "check.json", tmp_path / "check.md"
    r = subprocess.run([sys.executable, str(SCRIPT), "--dry", "--workdir", str(tmp_path / "work"), "--output", str(out),
                        "--markdown", str(md), *extra], capture_output=True, text=True, timeout=timeout, env=env,
                       cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(out.read_text()), md.read_text()

def finite(x): return isinstance(x, (int, float)) and math.isfinite(x)

def check_loss_cases(part, other):
    assert part["status"] == "ok", part["status"]
    assert {(c["impl"], c["vocab"], c["dtype"]) for c in part["cases"]} == {
        (i, v, d) for i in ("full", other) for v in (512, 1024) for d in ("float32", "bfloat16")}
    for c in part["cases"]:
        assert c["peak_bytes"] >= c["inputs_bytes"] > 0 and c["added_bytes"] >= 0, c
        assert len(c["times_s"]) == 2 and all(t > 0 for t in c["times_s"]) and finite(c["loss"]) and c["loss"] > 0, c
    for s in part["summary"]:  # the two sides compute the same divergence
        assert s["loss_rel_diff"] < (1e-4 if s["dtype"] == "float32" else 5e-2), s
        assert finite(s["peak_ratio"]) and finite(s["time_ratio"]), s

def test_dry_run_writes_every_section(tmp_path):
    res, md = dry(tmp_path)
    assert res["dry"] and res["machine"]["device"] == "cpu" and res["machine"]["card"] is None
    assert res["command"].startswith("python benchmarks/gpu_check.py --dry")
    parts = res["parts"]
    assert set(parts) == {"loader", "losses", "fused", "trainer", "offload"}
    for name in ("loader", "losses", "trainer", "offload"): assert parts[name]["status"] == "ok", parts[name]
    # loader: both models loaded on the device asked for, with their weight bytes and the host RSS they took
    assert len(parts["loader"]["cases"]) == 2
    for c in parts["loader"]["cases"].values():
        assert c["status"] == "ok" and c["weight_bytes"] > 100_000 and c["param_devices"] == ["cpu"], c
        assert c["seconds"] > 0, c
        assert finite(c["fraction"]) and c["fraction"] >= 0 and c["host_increase"]["rss"] >= 0, c
    check_loss_cases(parts["losses"], "chunked")
    # fused: measured when nexus.fused exists, else said so (never a number)
    f = parts["fused"]
    if f["status"] == "ok": check_loss_cases(f, "fused")
    else: assert f["status"].startswith("not available") and "cases" not in f, f
    # trainer vs TRL: both sides trained, the same objective on the same batches
    s = parts["trainer"]["summary"]
    for side in ("nexus", "trl"):
        assert s[side]["tokens_per_s"] > 0 and s[side]["peak_bytes"] > 0 and finite(s[side]["first_loss"]), s
    assert abs(s["nexus"]["first_loss"] - s["trl"]["first_loss"]) <= 1e-2 * abs(s["trl"]["first_loss"]), s
    assert finite(s["tokens_per_s_ratio"]) and finite(s["peak_ratio"])
    # offload: with two teachers, at most the largest is ever resident on the device
    (run,) = parts["offload"]["runs"]
    assert run["offload"] is True and len(run["teacher_bytes"]) == 2
    assert run["pool_peak_resident_bytes"] == max(run["teacher_bytes"].values()) > 0
    assert all(finite(x) for x in run["losses"]) and run["losses"]
    # the markdown block: every section, marked as a dry run, with the command
    assert md.startswith("### GPU check: CPU (dry run") and "**Dry run**" in md and res["command"] in md
    for title in ("Loader", "Chunked logit loss", "Fused head", "Trainer vs TRL", "Teacher offload"): assert title in md

def test_dry_run_measures_a_fused_function(tmp_path):
    (tmp_path / "stub").mkdir()
    (tmp_path / "stub" / "fused_stub.py").write_text(STUB)
    env = {**ENV, "PYTHONPATH": os.pathsep.join([str(tmp_path / "stub"), ENV.get("PYTHONPATH", "")])}
    res, md = dry(tmp_path, "--parts", "fused", "--fused-module", "fused_stub", env=env)
    assert set(res["parts"]) == {"fused"}
    check_loss_cases(res["parts"]["fused"], "fused")
    assert res["parts"]["fused"]["function"].startswith("fused_stub.fused_logit_loss(hidden, weight, teacher_logits")
    assert "not run (not in --parts)" in md
