"""How long the main job takes before its first step, and after its last: `nexus distill` (SmolLM2-135M-Instruct into
6 layers, built-in data, debug rung) cut to one step, timed from the command's start to the first logged step and to
its exit, with the time each phase took (read from the bars it leaves). With `--baseline SRC`, the same run with the
`nexus` package from the source folder SRC (a checkout of another commit), alternating, in the same process tree.

    python benchmarks/startup_bench.py [--baseline /tmp/nexus-old] [--source .] [--repeats 2] [--out FILE.json]
"""
import argparse, json, os, re, subprocess, sys, tempfile, time

PHASE = re.compile(r"^(?P<desc>[^\r\n]+?)(?:: +\d+%\|[^\r\n]*?)? \[(?P<mm>\d+):(?P<ss>\d\d)[<\],]")

def phases(text) -> dict:
    "Each phase's elapsed seconds, from the last state of every bar left on screen."
    out = {}
    for line in text.replace("\r\n", "\n").split("\n"):
        last = line.rsplit("\r", 1)[-1].strip()
        m = PHASE.match(last)
        if m: out[m["desc"]] = int(m["mm"]) * 60 + int(m["ss"])
    return out

# an editable install's import hook would win over PYTHONPATH: without it, `nexus` comes from PYTHONPATH when set
LAUNCH = ("import os, sys\n"
          "if os.environ.get('PYTHONPATH'): sys.meta_path[:] = [f for f in sys.meta_path if '__editable__' not in "
          "getattr(f, '__module__', '')]\n"
          "from nexus.cli import main\nimport nexus; print('nexus from', os.path.dirname(nexus.__file__), flush=True)\n"
          "raise SystemExit(main())")

def one_run(src=None) -> dict:
    "Time one `nexus distill --max_steps 1` with the package from `src` (None: the installed one)."
    env = {**os.environ, "NEXUS_PROGRESS": "1", "HF_HUB_OFFLINE": "1"}
    env.pop("PYTHONPATH", None)
    if src: env["PYTHONPATH"] = src
    with tempfile.TemporaryDirectory() as tmp:
        run = os.path.join(tmp, "run")
        cmd = [sys.executable, "-c", LAUNCH, "distill", "--run-dir", run, "--max_steps", "1"]  # a spelling every version reads
        t0, first = time.time(), None
        p = subprocess.Popen(cmd, env=env, cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        log = os.path.join(run, "losses.jsonl")
        while p.poll() is None:
            if first is None and os.path.exists(log) and os.path.getsize(log): first = time.time() - t0
            time.sleep(0.05)
        text = p.stdout.read()
        if p.returncode: raise SystemExit(f"the run failed ({p.returncode}):\n{text[-3000:]}")
        where = text.split("nexus from ", 1)[1].split("\n", 1)[0]
        return {"nexus": where, "to_first_step_s": first, "total_s": time.time() - t0, "phases_s": phases(text)}

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline", help="a source folder holding another version's `nexus` package")
    ap.add_argument("--source", help="the source folder of the version measured (default: the installed `nexus`)")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--out", default="benchmarks/startup.json")
    a = ap.parse_args()
    one_run(a.source)  # the converted teacher is cached by the first run: time the runs users make after it
    res = {"now": [], "baseline": []}
    for _ in range(a.repeats):
        res["now"].append(one_run(a.source))
        if a.baseline: res["baseline"].append(one_run(a.baseline))
    json.dump(res, open(a.out, "w"), indent=2)
    for k, runs in res.items():
        for r in runs:
            print(f"{k:9} first step after {r['to_first_step_s']:.1f} s, exit after {r['total_s']:.1f} s ({r['nexus']})")
    for desc, s in res["now"][-1]["phases_s"].items(): print(f"  {s:5.0f} s  {desc}")

if __name__ == "__main__": main()
