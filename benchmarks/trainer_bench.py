"""Speed and memory of a distillation step: `DistillationTrainer` vs the bare cost, vs TRL's GKDTrainer, and teacher offload.

    python benchmarks/trainer_bench.py --output trainer_bench.json [--steps 5] [--seq-len 256] [--batch 2] [--repeats 3]

Teacher: SmolLM2-135M-Instruct, dequantised once from the bundled GGUF to fp32 safetensors (cached by `teacher_source`).
Student: `make_student(teacher, 6, method="every_k")` (6 of its 30 layers, 49.6M parameters). Data: the built-in
'coder' examples (Python from the standard library), tokenised with the teacher's tokenizer and packed into full rows
of --seq-len tokens (no padding), batches of --batch rows; every side sees the same batches in the same order.

Parts (each can be run alone with --parts):

* overhead: in one process, the real `DistillationTrainer.training_step` (forward + backward, no optimizer step) on
  prepared batches, vs a bare `transformers.Trainer` whose `compute_loss` runs the same teacher forward (no grad) and
  the student with plain cross-entropy on the labels. Sides alternate step by step (the order rotates every round).
  The step is split with module hooks: teacher forward (hooks on the teacher), loss (hooks on the loss module; Nexus's
  chunked logit loss computes its gradient inside its forward), student forward + backward = the rest.
* trl: `trl.experimental.gkd.GKDTrainer` (lmbda=0, seq_kd=False: off-policy, no generation) vs `DistillationTrainer`
  (logits only) at the same divergence and temperature, each in a fresh subprocess (so its peak RSS is its own),
  alternating; the whole `trainer.train()` loop (data collation, forward, backward, AdamW step) timed per step by a
  callback.
* offload: two teachers (SmolLM2 and a copy), dataset routing (one sample of each expert per batch), `TeacherPool`
  with and without `teacher_offload`: the pool's peak resident teacher bytes on the device and the process's RSS.

Peak memory on CPU: `ru_maxrss` of the subprocess (whole life: loading and training), and the training-only peak:
the kernel's VmHWM reset through /proc/self/clear_refs after loading, read after training, minus the RSS at the
reset. On CUDA (`--device cuda`, wired but not run on the development box) the peak is `torch.cuda.max_memory_allocated`.

Time: wall clock (`perf_counter`) and process CPU time (`process_time`, all threads) of every step, and the minor
page faults it took (`ru_minflt`). Every process runs torch with --threads threads (1 by default): on a shared 2-core
machine a 2-thread OpenMP region stalls whenever another tenant preempts one of its threads, which made 2-thread
step times swing by 2x; a single thread's CPU time is stable to a few percent. `--threads 0` keeps torch's default.
"""
import argparse, contextlib, copy, json, os, platform, resource, statistics, subprocess, sys, tempfile, time, warnings
from pathlib import Path

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
MiB = 2 ** 20


# ---------------------------------------------------------------------------------------------------- helpers
def rss_bytes():
    with open("/proc/self/statm") as f: return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

def reset_hwm():
    "Reset the kernel's peak-RSS mark (VmHWM) to the current RSS; False where the kernel refuses."
    try:
        with open("/proc/self/clear_refs", "w") as f: f.write("5")
        return True
    except OSError: return False

def vm_hwm():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"): return int(line.split()[1]) * 1024

def maxrss(): return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

def med(xs): return statistics.median(xs) if xs else float("nan")

def smollm2_safetensors():
    "SmolLM2-135M-Instruct as fp32 safetensors: the bundled GGUF, converted once into Nexus' cache by `teacher_source`."
    from nexus.loader import teacher_source
    return Path(teacher_source("smollm2"))

def quiet():
    import transformers
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    warnings.filterwarnings("ignore")

def load_pair(a):
    "(teacher, tokenizer, student): the same weights in every process."
    import torch
    from nexus.loader import OmniModelLoader
    from nexus.trainer import make_student
    torch.manual_seed(0)
    teacher, tok = OmniModelLoader(str(smollm2_safetensors())).load(device_map=a.device)
    student = make_student(teacher, a.student_layers, method="every_k").to(a.device)
    return teacher, tok, student

def rows(tok, a, n_rows, source="coder", expert=None, seed=0):
    "`n_rows` packed items of exactly --seq-len tokens (input_ids, labels, expert)."
    from nexus.data import builtin_examples, build_dataset
    n = 8
    while True:
        ds = build_dataset(builtin_examples(expert or source, n, seed=seed, source=source), tok, a.seq_len, packing=True)
        full = [it for it in ds.items if len(it["input_ids"]) == a.seq_len]
        if len(full) >= n_rows: return full[:n_rows]
        n *= 2

def train_args(a, out, steps, **kw):
    "The TrainingArguments/GKDConfig fields both sides share: fp32 unless --bf16, no gradient checkpointing (GKDConfig's defaults turn both on)."
    return dict(output_dir=out, per_device_train_batch_size=a.batch, gradient_accumulation_steps=1, max_steps=steps,
                learning_rate=1e-5, weight_decay=0.0, warmup_steps=0, lr_scheduler_type="linear", seed=0, data_seed=0,
                logging_steps=1, save_strategy="no", report_to=[], disable_tqdm=True, remove_unused_columns=False,
                dataloader_num_workers=0, use_cpu=a.device == "cpu", bf16=getattr(a, "bf16", False), fp16=False,
                gradient_checkpointing=False, **kw)

def distill_loss(student, teachers, **cfg):
    from nexus.losses import DistillationLoss, DistillConfig
    return DistillationLoss(DistillConfig(**cfg), student=student, teachers=teachers)

def machine():
    import torch, transformers
    try: import trl; trl_v = trl.__version__
    except ImportError: trl_v = None
    return {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "platform": platform.platform(),
            "python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__, "trl": trl_v,
            "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30, 1),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}

def load_snapshot():
    "How busy the shared machine was: load averages and the kernel's CPU pressure (share of time tasks waited for a CPU)."
    out = {"loadavg": open("/proc/loadavg").read().split()[:3]}
    with contextlib.suppress(OSError): out["cpu_pressure"] = open("/proc/pressure/cpu").readline().strip()
    return out

def sync(device):
    import torch
    if device.startswith("cuda"): torch.cuda.synchronize()


# ---------------------------------------------------------------------------------------------------- part 1: overhead
def clocks(): return time.perf_counter(), time.process_time()

def minflt(): return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

class Stopwatch:
    "Forward pre/post hooks on a module: the summed (wall, process CPU) time of its forward calls since the last `take()`."
    def __init__(self, module, device):
        self.wall = self.cpu = 0.0
        self.faults, self.t0, self.device = 0, None, device
        module.register_forward_pre_hook(self._pre)
        module.register_forward_hook(self._post)
    def _pre(self, m, args): sync(self.device); self.t0 = (*clocks(), minflt())
    def _post(self, m, args, out):
        sync(self.device); w, c = clocks()
        self.wall += w - self.t0[0]; self.cpu += c - self.t0[1]; self.faults += minflt() - self.t0[2]
    def take(self): t = (self.wall, self.cpu, self.faults); self.wall = self.cpu = 0.0; self.faults = 0; return t

def overhead_part(a):
    "Per-step time of the real DistillationTrainer.training_step (logits only; with the hidden term) vs the bare step."
    import torch, torch.nn.functional as F
    from transformers import Trainer, TrainingArguments
    from nexus.trainer import DistillationTrainer
    from nexus.data import DistillCollator
    teacher, tok, student = load_pair(a)
    n_rounds = a.warmup + a.steps
    items = rows(tok, a, a.batch * n_rounds)
    collator = DistillCollator(tok)
    batches = [collator(items[i * a.batch:(i + 1) * a.batch]) for i in range(n_rounds)]
    tmp = tempfile.mkdtemp(prefix="nexus-trainer-bench-")
    args = TrainingArguments(**train_args(a, tmp, n_rounds))
    tw = Stopwatch(teacher, a.device)

    class BareTrainer(Trainer):
        "Teacher forward under no_grad (its logits are thrown away), student forward + plain next-token cross-entropy."
        loss_is_scaled_for_ga = True
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            ids, mask, labels = inputs["input_ids"], inputs.get("attention_mask"), inputs["labels"]
            with torch.no_grad(): teacher(input_ids=ids, attention_mask=mask, use_cache=False)
            logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
            sync(a.device); w0, c0 = clocks(); f0 = minflt()
            # as transformers' ForCausalLMLoss does it: labels shifted by padding, so the logits are not copied
            loss = F.cross_entropy(logits.float().view(-1, logits.shape[-1]), F.pad(labels[:, 1:], (0, 1), value=-100).reshape(-1), ignore_index=-100)
            sync(a.device); w1, c1 = clocks()
            self.loss_t = (w1 - w0, c1 - c0, minflt() - f0)
            return loss

    sides = {"bare": BareTrainer(model=student, args=args, train_dataset=items, data_collator=collator)}
    losses = {}
    for name, cfg in (("nexus_logits", dict(hidden_weight=0.0)), ("nexus_logits_hidden", dict(hidden_weight=1.0, critical_layers=None))):
        loss = distill_loss(student, {"teacher": teacher}, **cfg)
        sides[name] = DistillationTrainer(student=student, teachers={"teacher": teacher}, distill_loss=loss, args=args,
                                          train_dataset=items, data_collator=collator)
        losses[name] = Stopwatch(loss, a.device)
    for tr in sides.values(): tr.current_gradient_accumulation_steps = 1
    parts = ("total", "teacher", "student", "loss")
    res = {k: {**{f"{p}_{c}": [] for p in parts for c in ("s", "cpu_s")}, "step_page_faults": [], "loss_page_faults": [], "loss": []} for k in sides}
    order = list(sides)
    for r in range(n_rounds):
        for name in order[r % len(order):] + order[:r % len(order)]:  # the order rotates every round
            tr = sides[name]
            bs, n = tr.get_batch_samples(iter([batches[r]]), 1, tr.args.device)
            tw.take(); lw = losses.get(name)
            if lw: lw.take()
            sync(a.device); w0, c0 = clocks(); f0 = minflt()
            value = tr.training_step(tr.model, bs[0], n)
            sync(a.device); w1, c1 = clocks(); f1 = minflt()
            tr.model.zero_grad(set_to_none=True)
            if r < a.warmup: continue
            total, teach = (w1 - w0, c1 - c0), tw.take()
            loss_t = lw.take() if lw else tr.loss_t
            d = res[name]
            for i, c in enumerate(("s", "cpu_s")):
                d[f"total_{c}"].append(total[i]); d[f"teacher_{c}"].append(teach[i]); d[f"loss_{c}"].append(loss_t[i])
                d[f"student_{c}"].append(total[i] - teach[i] - loss_t[i])
            d["loss"].append(float(value)); d["step_page_faults"].append(f1 - f0); d["loss_page_faults"].append(loss_t[2])
    bare = res["bare"]
    out = {"config": {"batch": a.batch, "seq_len": a.seq_len, "tokens_per_step": a.batch * a.seq_len, "timed_rounds": a.steps,
                      "warmup_rounds": a.warmup, "student_layers": a.student_layers},
           "raw": res, "summary": {}}
    for name, d in res.items():
        s = {k: med(v) for k, v in d.items() if k != "loss"}
        s.update({f"min_{k}": min(v) for k, v in d.items() if k.endswith("_s")})
        if name != "bare":
            for c in ("s", "cpu_s"):
                s[f"overhead_{c}"] = s[f"total_{c}"] / med(bare[f"total_{c}"]) - 1  # ratio of the medians
                s[f"overhead_min_{c}"] = min(d[f"total_{c}"]) / min(bare[f"total_{c}"]) - 1  # ratio of the minima
                s[f"overhead_{c}_per_round"] = med([x / y - 1 for x, y in zip(d[f"total_{c}"], bare[f"total_{c}"])])
        s["first_loss"] = d["loss"][0] if d["loss"] else None
        out["summary"][name] = s
    return out


# ---------------------------------------------------------------------------------------------------- part 2: vs TRL
class StepTimer:
    "A TrainerCallback that records the wall time of every optimisation step (on_step_begin .. on_step_end)."
    def __new__(cls, device):
        from transformers import TrainerCallback
        class _T(TrainerCallback):
            def __init__(self): self.times, self.cpu, self.faults, self.t0, self.losses = [], [], [], None, []
            def on_step_begin(self, args, state, control, **kw): sync(device); self.t0 = (*clocks(), minflt())
            def on_step_end(self, args, state, control, **kw):
                sync(device); w, c = clocks()
                self.times.append(w - self.t0[0]); self.cpu.append(c - self.t0[1]); self.faults.append(minflt() - self.t0[2])
            def on_log(self, args, state, control, logs=None, **kw):
                if logs and "loss" in logs: self.losses.append(logs["loss"])
        return _T()

def trl_case(a, side, divergence):
    "One side of the TRL comparison in this (fresh) process: per-step times, losses, memory."
    import torch
    from nexus.data import DistillCollator
    teacher, tok, student = load_pair(a)
    n_steps = a.warmup + a.steps
    items = rows(tok, a, a.batch * n_steps)
    collator = DistillCollator(tok)  # input_ids, attention_mask, labels: both sides get the same tensors
    timer = StepTimer(a.device)
    tmp = tempfile.mkdtemp(prefix=f"nexus-trainer-bench-{side}-")
    beta = {"forward_kl": 0.0, "jsd": 0.5, "reverse_kl": 1.0}[divergence]
    if side == "nexus":
        from transformers import TrainingArguments
        from nexus.trainer import DistillationTrainer
        # TRL's GKD divergence runs at temperature 1 (GKDConfig.temperature is only the sampling temperature) with no T² factor.
        loss = distill_loss(student, {"teacher": teacher}, hidden_weight=0.0, ce_weight=0.0, divergence="jsd" if divergence == "jsd" else divergence,
                            jsd_beta=beta if divergence == "jsd" else 0.5, temperature=1.0)
        trainer = DistillationTrainer(student=student, teachers={"teacher": teacher}, distill_loss=loss,
                                      args=TrainingArguments(**train_args(a, tmp, n_steps)), train_dataset=items,
                                      data_collator=collator, callbacks=[timer])
    else:
        import datasets
        from trl.experimental.gkd import GKDTrainer, GKDConfig
        cfg = GKDConfig(**train_args(a, tmp, n_steps), lmbda=0.0, seq_kd=False, beta=beta, max_length=a.seq_len,
                        disable_dropout=True)
        ds = datasets.Dataset.from_list([{"input_ids": it["input_ids"], "labels": it["labels"]} for it in items])
        trainer = GKDTrainer(model=student, teacher_model=teacher, args=cfg, train_dataset=ds, data_collator=collator,
                             processing_class=tok, callbacks=[timer])
        # Read the data in order, as DistillationTrainer does, so both sides see the same batches (the cost doesn't depend on it).
        trainer._get_train_sampler = lambda *args, **kw: torch.utils.data.SequentialSampler(ds)
    base = rss_bytes(); peak_before = maxrss()
    hwm = reset_hwm()
    if a.device.startswith("cuda"): torch.cuda.reset_peak_memory_stats(); cuda_base = torch.cuda.memory_allocated()
    t0 = time.perf_counter()
    trainer.train()
    wall = time.perf_counter() - t0
    out = {"side": side, "divergence": divergence, "step_s": timer.times, "step_cpu_s": timer.cpu, "step_page_faults": timer.faults, "losses": timer.losses, "train_wall_s": wall,
           "rss_before_train": base, "maxrss_before_train": peak_before, "maxrss": maxrss(),
           "train_peak_rss": vm_hwm() if hwm else None, "tokens_per_step": a.batch * a.seq_len}
    if a.device.startswith("cuda"): out.update(cuda_peak=torch.cuda.max_memory_allocated(), cuda_base=cuda_base)
    return out


# ---------------------------------------------------------------------------------------------------- part 3: offload
def offload_case(a, offload):
    "Two teachers (SmolLM2 and a copy), dataset routing, with or without teacher_offload: the pool's accounting and the RSS."
    import torch
    from transformers import TrainingArguments
    from nexus.trainer import DistillationTrainer, TeacherPool, TeacherRouter
    from nexus.data import DistillCollator, pack_examples
    teacher, tok, student = load_pair(a)
    teachers = {"general": teacher, "coder": copy.deepcopy(teacher)}
    n_steps = 1 + a.offload_steps
    half = a.batch * n_steps
    items = [x for pair in zip(rows(tok, a, half, "general", "general"), rows(tok, a, half, "coder", "coder")) for x in pair]
    collator = DistillCollator(tok, experts=list(teachers))
    timer = StepTimer(a.device)
    args = TrainingArguments(**train_args(a, tempfile.mkdtemp(prefix="nexus-trainer-bench-offload-"), n_steps))
    rss0 = rss_bytes()
    pool = TeacherPool(teachers, args.device, offload=offload)
    # after the pool has placed the teachers (with offload: on the host), so the peak is training's, not loading's
    if a.device.startswith("cuda"): torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats(); cuda_base = torch.cuda.memory_allocated()
    trainer = DistillationTrainer(student=student, teachers=pool, distill_loss=distill_loss(student, teachers, hidden_weight=0.0),
                                  router=TeacherRouter("dataset", list(teachers)), args=args, train_dataset=items,
                                  data_collator=collator, callbacks=[timer])
    hwm = reset_hwm(); base = rss_bytes()
    trainer.train()
    out = {"offload": offload, "teacher_bytes": {n: pool.nbytes(n) for n in pool.names}, "pool_peak_resident_bytes": pool.peak_resident_bytes,
           "rss_after_load": rss0, "rss_before_train": base, "maxrss": maxrss(), "train_peak_rss": vm_hwm() if hwm else None,
           "step_s": timer.times, "losses": timer.losses}
    if a.device.startswith("cuda"): out.update(cuda_peak=torch.cuda.max_memory_allocated(), cuda_base=cuda_base)
    return out


# ---------------------------------------------------------------------------------------------------- driver
def subprocess_case(a, *what):
    cmd = [sys.executable, os.path.abspath(__file__), "--one", *what, "--steps", str(a.steps), "--warmup", str(a.warmup),
           "--seq-len", str(a.seq_len), "--batch", str(a.batch), "--workdir", a.workdir, "--device", a.device,
           "--student-layers", str(a.student_layers), "--offload-steps", str(a.offload_steps), "--threads", str(a.threads),
           *(["--bf16"] if a.bf16 else [])]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode: raise SystemExit(f"{' '.join(what)} failed:\n{r.stderr[-4000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])

def trl_summary(runs, a):
    out = {}
    for div in sorted({r["divergence"] for r in runs}):
        s = {}
        for side in ("nexus", "trl"):
            rs = [r for r in runs if r["divergence"] == div and r["side"] == side]
            steps = [t for r in rs for t in r["step_s"][a.warmup:]]
            cpu = [t for r in rs for t in r["step_cpu_s"][a.warmup:]]
            s[side] = {"median_step_s": med(steps), "tokens_per_s": rs[0]["tokens_per_step"] / med(steps),
                       "median_step_cpu_s": med(cpu), "tokens_per_cpu_s": rs[0]["tokens_per_step"] / med(cpu),
                       "page_faults_per_step": med([f for r in rs for f in r["step_page_faults"][a.warmup:]]),
                       "maxrss": med([r["maxrss"] for r in rs]), "train_peak_rss": med([r["train_peak_rss"] or float("nan") for r in rs]),
                       "train_added": med([(r["train_peak_rss"] or float("nan")) - r["rss_before_train"] for r in rs]),
                       "rss_before_train": med([r["rss_before_train"] for r in rs]), "first_loss": rs[0]["losses"][0] if rs[0]["losses"] else None}
            if a.device.startswith("cuda"): s[side]["cuda_peak"] = med([r["cuda_peak"] for r in rs])
        s["tokens_per_s_ratio"] = s["nexus"]["tokens_per_s"] / s["trl"]["tokens_per_s"]
        s["tokens_per_cpu_s_ratio"] = s["nexus"]["tokens_per_cpu_s"] / s["trl"]["tokens_per_cpu_s"]
        # per repeat: each nexus run against the trl run that followed it
        pairs = list(zip([r for r in runs if r["divergence"] == div and r["side"] == "nexus"], [r for r in runs if r["divergence"] == div and r["side"] == "trl"]))
        s["tokens_per_s_ratio_per_pair"] = [med(t["step_s"][a.warmup:]) / med(n["step_s"][a.warmup:]) for n, t in pairs]
        s["maxrss_ratio"] = s["nexus"]["maxrss"] / s["trl"]["maxrss"]
        s["train_peak_rss_ratio"] = s["nexus"]["train_peak_rss"] / s["trl"]["train_peak_rss"]
        s["train_added_ratio"] = s["nexus"]["train_added"] / s["trl"]["train_added"]
        if a.device.startswith("cuda"): s["cuda_peak_ratio"] = s["nexus"]["cuda_peak"] / s["trl"]["cuda_peak"]
        out[div] = s
    return out

def print_summary(res):
    g = lambda b: f"{b / MiB:,.0f} MiB"
    if "overhead" in res:
        o = res["overhead"]["summary"]
        print(f"\n== overhead ({res['overhead']['config']['tokens_per_step']} tokens/step, medians) ==")
        for c, label in (("s", "wall"), ("cpu_s", "process CPU")):
            print(f"{label:22} {'total s':>8} {'teacher':>8} {'student':>8} {'loss':>8} {'overhead':>9} {'per-round':>9} {'min-based':>9} {'faults/step':>11} {'in loss':>8}")
            for k, s in o.items():
                print(f"{k:22} {s['total_' + c]:8.3f} {s['teacher_' + c]:8.3f} {s['student_' + c]:8.3f} {s['loss_' + c]:8.3f} "
                      f"{s.get('overhead_' + c, 0):9.1%} {s.get('overhead_' + c + '_per_round', 0):9.1%} {s.get('overhead_min_' + c, 0):9.1%} "
                      f"{s['step_page_faults']:11,.0f} {s['loss_page_faults']:8,.0f}")
    if "trl" in res:
        for div, s in res["trl"]["summary"].items():
            print(f"\n== vs TRL GKDTrainer, {div} ==")
            for side in ("nexus", "trl"):
                x = s[side]
                print(f"{side:6} step {x['median_step_s']:.3f} s (CPU {x['median_step_cpu_s']:.3f} s)  {x['tokens_per_s']:.0f} tok/s  maxrss {g(x['maxrss'])}  "
                      f"train peak {g(x['train_peak_rss'])} (+{g(x['train_added'])})  first loss {x['first_loss']}")
            print(f"tokens/s ratio {s['tokens_per_s_ratio']:.3f} (per pair {[round(r, 3) for r in s['tokens_per_s_ratio_per_pair']]}; "
                  f"per CPU second {s['tokens_per_cpu_s_ratio']:.3f}), "
                  f"maxrss ratio {s['maxrss_ratio']:.3f}, train-peak ratio {s['train_peak_rss_ratio']:.3f}, added ratio {s['train_added_ratio']:.3f}")
    if "offload" in res:
        print("\n== teacher offload (two SmolLM2 teachers) ==")
        for r in res["offload"]:
            print(f"offload={r['offload']!s:5} pool peak resident {g(r['pool_peak_resident_bytes'])}  maxrss {g(r['maxrss'])}  "
                  f"train peak {g(r['train_peak_rss'] or 0)}  median step {med(r['step_s'][1:]):.2f} s")

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=5, help="timed steps per side (overhead: rounds; trl: steps per subprocess)")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    p.add_argument("--seq-len", type=int, default=256)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3, help="fresh subprocesses per side for the TRL comparison, alternating")
    p.add_argument("--divergences", nargs="+", default=["forward_kl", "jsd"], choices=["forward_kl", "jsd", "reverse_kl"],
                   help="TRL comparison at these divergences (forward_kl = GKD beta 0, jsd = beta 0.5, reverse_kl = beta 1)")
    p.add_argument("--jsd-repeats", type=int, default=1, help="repeats for divergences other than the first")
    p.add_argument("--offload-steps", type=int, default=2)
    p.add_argument("--student-layers", type=int, default=6)
    p.add_argument("--parts", nargs="+", default=["overhead", "trl", "offload"], choices=["overhead", "trl", "offload"])
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads in every process (0: torch's default, one per core); "
                   "1 by default: on a shared machine a 2-thread OpenMP region stalls whenever one of its threads is preempted")
    p.add_argument("--device", default="cpu")
    p.add_argument("--bf16", action="store_true", help="bf16 mixed precision on both sides (TrainingArguments/GKDConfig bf16=True)")
    p.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "nexus-trainer-bench"))
    p.add_argument("--output", help="write the JSON results here")
    p.add_argument("--one", nargs="+", help=argparse.SUPPRESS)
    a = p.parse_args()
    quiet()
    if a.threads:
        import torch
        torch.set_num_threads(a.threads)
    if a.one:
        what = a.one
        if what[0] == "overhead": r = overhead_part(a)
        elif what[0] == "trl": r = trl_case(a, what[1], what[2])
        else: r = offload_case(a, what[1] == "on")
        print(json.dumps(r))
        return
    os.makedirs(a.workdir, exist_ok=True)
    smollm2_safetensors()
    t0 = time.time()
    res = {"command": " ".join(["python", "benchmarks/trainer_bench.py"] + sys.argv[1:]), "machine": machine(), "args": vars(a),
           "load_before": load_snapshot()}
    if "overhead" in a.parts:
        res["overhead"] = subprocess_case(a, "overhead")
    if "trl" in a.parts:
        runs = []
        for i, div in enumerate(a.divergences):
            for rep in range(a.repeats if i == 0 else a.jsd_repeats):
                for side in (("nexus", "trl") if rep % 2 == 0 else ("trl", "nexus")):
                    runs.append(subprocess_case(a, "trl", side, div))
                    print(f"  trl comparison: {div} {side} repeat {rep}: median step {med(runs[-1]['step_s'][a.warmup:]):.2f} s", file=sys.stderr)
        res["trl"] = {"runs": runs, "summary": trl_summary(runs, a)}
    if "offload" in a.parts:
        res["offload"] = [subprocess_case(a, "offload", mode) for mode in ("off", "on")]
    res["wall_s"] = time.time() - t0
    res["load_after"] = load_snapshot()
    print_summary(res)
    if a.output:
        with open(a.output, "w") as f: json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
