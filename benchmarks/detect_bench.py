"""Detection benchmarks (the `OmniModelLoader` detection interface): medians of repeated calls, in microseconds.

    python benchmarks/detect_bench.py --all --output results.json
    python benchmarks/detect_bench.py --category detection|sae|category|support|cli

Fixtures (tiny models, a sharded checkpoint, a diffusers pipeline, SAE folders) are built by a child process, so
this process never imports torch or transformers, as a program calling `nexus.detect` wouldn't. "cold" clears
Nexus' in-process header cache before every call (the OS page cache stays warm); "warm" keeps it.
"""
import argparse, json, os, platform, statistics, subprocess, sys, tempfile, time
from pathlib import Path

TARGETS_MS = {"detection": 1.0, "category": 0.5, "sae": 0.3, "support": 1.5}  # per-call targets of the detection interface
GOALS = {"get_model_info single-file LLM (ms)": 0.1, "cold `nexus info DIR` process (s)": 0.3}

BUILD = r'''
import sys, transformers
from pathlib import Path
from nexus.fixtures import *
transformers.utils.logging.disable_progress_bar()
root = Path(sys.argv[1])
save_tiny_model("llama", root / "llama")
tiny_model("llama").save_pretrained(root / "llama-sharded", max_shard_size="40KB")
save_tiny_model("whisper", root / "whisper"); save_tiny_model("siglip", root / "siglip")
save_tiny_diffusers_pipeline(root / "sd")
save_gemma_scope_sae(root / "gemma-scope-2b-pt-res"); save_sae_lens_sae(root / "sae-lens")
save_hook_folder_saes(root / "gemma-scope-2-1b-pt")
'''

def median_us(fn, n, setup=None):
    times = []
    for _ in range(n):
        if setup: setup()
        t = time.perf_counter(); fn(); times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e6

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--all", action="store_true")
    ap.add_argument("--category", choices=["detection", "sae", "category", "support", "cli"])
    ap.add_argument("--output", help="write the results as JSON here")
    ap.add_argument("-n", type=int, default=2000, help="calls per measurement")
    a = ap.parse_args()
    cats = ["detection", "sae", "category", "support", "cli"] if a.all or not a.category else [a.category]
    root = Path(tempfile.mkdtemp())
    subprocess.run([sys.executable, "-c", BUILD, str(root)], check=True, capture_output=True)
    import nexus.detect as d
    from nexus.detect import OmniModelLoader as L
    assert "torch" not in sys.modules and "transformers" not in sys.modules
    d.arch_index()
    clear = d._SUMMARY_CACHE.clear
    folders = {"tiny llama (1 file)": root / "llama", "tiny llama (sharded)": root / "llama-sharded",
               "all-MiniLM-L6-v2 (real)": Path(d.bundled_model_path("minilm")), "whisper": root / "whisper",
               "siglip": root / "siglip", "stable diffusion pipeline": root / "sd",
               "SmolLM2-135M GGUF (real)": Path(d.bundled_model_path("smollm2"))}
    res = {"machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()}, "results": {}}
    out = res["results"]
    if "detection" in cats:
        for name, p in folders.items():
            n = a.n if "GGUF" not in name else 50
            out[f"detection/get_model_info/{name}/warm"] = median_us(lambda: d.get_model_info(p), n)
            out[f"detection/get_model_info/{name}/cold"] = median_us(lambda: d.get_model_info(p), n, clear)
    if "sae" in cats:
        for name, p in {"gemma scope repo": root / "gemma-scope-2b-pt-res", "sae_lens": root / "sae-lens",
                        "hook folders": root / "gemma-scope-2-1b-pt", "llama (not an SAE)": root / "llama"}.items():
            out[f"sae/_is_sae_model/{name}"] = median_us(lambda: L._is_sae_model(p), a.n)
        out["sae/_get_sae_base_model/gemma scope repo"] = median_us(lambda: L._get_sae_base_model(root / "gemma-scope-2b-pt-res"), a.n)
    if "category" in cats:
        for name, p in folders.items():
            if "GGUF" in name: continue
            out[f"category/_detect_model_category/{name}"] = median_us(lambda: L._detect_model_category(p), a.n)
    if "support" in cats:
        for name, p in folders.items():
            if "GGUF" in name: continue
            out[f"support/is_model_supported/{name}/warm"] = median_us(lambda: L.is_model_supported(p), a.n)
    if "cli" in cats:
        exe = [os.path.join(os.path.dirname(sys.executable), "nexus")]
        def proc(args, runs=15):
            ts = []
            for _ in range(runs):
                t = time.perf_counter(); subprocess.run(args, check=True, capture_output=True); ts.append(time.perf_counter() - t)
            return statistics.median(ts)
        out["cli/python -c pass (s)"] = proc([sys.executable, "-c", "pass"])
        out["cli/nexus info DIR, tiny llama (s)"] = proc(exe + ["info", str(root / "llama")])
        out["cli/nexus info DIR, all-MiniLM-L6-v2 (s)"] = proc(exe + ["info", str(folders["all-MiniLM-L6-v2 (real)"])])
        out["cli/nexus info smollm2 (GGUF) (s)"] = proc(exe + ["info", "smollm2"])
    width = max(map(len, out))
    for k, v in out.items(): print(f"{k:<{width}}  {v:10.3f} {'s' if k.endswith('(s)') else 'us'}")
    if a.output: Path(a.output).write_text(json.dumps(res, indent=2))

if __name__ == "__main__": main()
