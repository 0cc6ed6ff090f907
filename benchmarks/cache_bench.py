"""Teacher caches (`nexus.cache`): bytes per token, the student they train against online distillation, training
speed from a cache, and what building one costs over a plain teacher forward.

    python benchmarks/cache_bench.py --output cache_bench.json                  # defaults below; about 15 minutes
    python benchmarks/cache_bench.py --steps 300 --ks 8 16 32 64 --output ...   # the full sweep (longer)
    python benchmarks/cache_bench.py --online-from skip --ks 16 --sampled ...   # variants in processes of their own

Teacher: SmolLM2-135M-Instruct (fp32 safetensors converted once from the bundled GGUF by `teacher_source`), the
teacher `nexus distill` uses by default. Student: `make_student(teacher, 6, method="every_k")`. Data: what a default
`nexus distill` run trains on (the debug rung: 50 built-in examples, half Python, half prose, seed 42, packed into
rows of --seq-len tokens) and its held-out split, made by `nexus.pipeline.build_training_data`; batches of --batch.

Parts, all in this one process, torch with --threads threads (1: a shared 2-core machine makes 2-thread timings swing):

* build: the training rows' plain teacher forward (batches of --batch, no_grad) against `build_cache` (k=--build-k,
  --build-samples tail draws, uint8) on the same batches, alternated --repeats times; the cost over the plain
  forward is the ratio of medians.
* quality: one teacher pass writes a cache per variant (k in --ks, uint8 and fp16; K:S in --sampled: the top K and S
  tail draws, `tail_samples`) with the library's own encoder (`sparse_rows`, `sample_tail`, `encode_sample`,
  `shard_bytes`), bytes per token measured on disk (everything included); then a
  student trains --steps steps from each cache, and once online (the dense teacher, the run's default), same start,
  same batches, same lr (--lr, cosine); at the end its held-out KL(teacher || student) at T=1 against the real
  teacher (`heldout_metrics`).
* speed: tokens per second of those training runs (medians of the step times, the first steps skipped).
"""
import argparse, json, math, os, statistics, sys, tempfile, time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from trainer_bench import machine, load_snapshot, quiet, smollm2_safetensors

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
EXPERT = "smollm2"


def parse():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--output", help="write the results as JSON here")
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--steps", type=int, default=120)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--ks", type=int, nargs="*", default=[8, 16, 32])
    p.add_argument("--fp16-ks", type=int, nargs="*", default=[32], help="the k of the fp16 variants")
    p.add_argument("--sampled", nargs="*", default=["16:16", "20:16"],
                   help="K:S: uint8 variants with the top K and S tokens drawn from the tail (`tail_samples`)")
    p.add_argument("--build-k", type=int, default=16, help="the build part's k (default: the setting's default)")
    p.add_argument("--build-samples", type=int, default=16, help="the build part's tail draws per token")
    p.add_argument("--repeats", type=int, default=3, help="build rounds (0: skip the build part)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--workdir", default=None)
    p.add_argument("--online-from", default=None,
                   help="take the online run's results from this earlier --output JSON (same arguments) instead of "
                        "training it again, or 'skip' it: lets variants run in separate processes")
    return p.parse_args()


def data(a, tok, workdir):
    "The default run's training dataset, collator and held-out batches, at --seq-len."
    from nexus.pipeline import build_training_data, builtin_datasets, heldout_count
    from nexus.state import resolve_state, apply_flags
    st = resolve_state(None, {"teachers": {EXPERT: EXPERT}, "max_seq_length": a.seq_len, "batch_size": a.batch})
    n = st.hyper.sample_size + heldout_count(st.hyper.sample_size)
    st = apply_flags(st, {"datasets": builtin_datasets(workdir, [EXPERT], n, st.hyper.seed)})
    return (*build_training_data(st, tok, [EXPERT]), st)


def batches(ds, coll, batch):
    return [coll([ds[i] for i in range(j, min(j + batch, len(ds)))]) for j in range(0, len(ds), batch)]


def build_part(a, teacher, tok, ds, coll, workdir) -> dict:
    "Plain teacher forward vs `build_cache` over the same batches, alternated."
    import shutil, torch
    from nexus.cache import build_cache
    bs = batches(ds, coll, a.batch)
    plain, build = [], []
    for r in range(a.repeats):
        t = time.perf_counter()
        with torch.no_grad():
            for b in bs: teacher(input_ids=b["input_ids"], attention_mask=b["attention_mask"], use_cache=False)
        plain.append(time.perf_counter() - t)
        folder = os.path.join(workdir, f"build-{r}")
        t = time.perf_counter()
        c = build_cache(teacher, tok, ds, folder, k=a.build_k, tail_samples=a.build_samples, logprobs="uint8",
                        batch_size=a.batch, name=EXPERT, max_length=a.seq_len)
        build.append(time.perf_counter() - t)
        bpt = c.bytes_per_token()
        shutil.rmtree(folder)
        print(f"  build round {r}: plain forward {plain[-1]:.2f} s, build_cache {build[-1]:.2f} s", file=sys.stderr)
    tokens = sum(len(ds[i]["input_ids"]) for i in range(len(ds)))
    return {"plain_s": plain, "build_s": build, "tokens": tokens, "overhead": statistics.median(build) /
            statistics.median(plain) - 1, "bytes_per_token": bpt}


def write_variants(a, teacher, tok, ds, coll, workdir) -> dict:
    "One teacher pass; a cache per variant, written with the library's encoder: {variant: folder}."
    import torch
    from nexus.cache import (cache_identity, identity_key, write_index, sparse_rows, encode_sample, shard_bytes,
                             _shard_name, sample_tail, tail_seed)
    from nexus.formats import atomic_write
    variants = ([(k, 0, "uint8") for k in a.ks] + [(k, 0, "float16") for k in a.fp16_ks]
                + [(*map(int, v.split(":")), "uint8") for v in a.sampled])
    meta = {}
    for k, n, fmt in variants:
        ident = cache_identity(teacher, tok, ds, k=k, logprobs=fmt, max_length=a.seq_len, name=EXPERT, tail_samples=n)
        folder = os.path.join(workdir, f"k{k}" + (f"+s{n}" if n else "") + f"-{fmt}")
        os.makedirs(folder, exist_ok=True)
        write_index(folder, ident, complete=True)
        meta[(k, n, fmt)] = (folder, ident, identity_key(ident))
    order = list(range(len(ds)))
    with torch.no_grad():
        for j in range(0, len(order), a.batch):
            g = order[j:j + a.batch]
            b = coll([ds[i] for i in g])
            logits = teacher(input_ids=b["input_ids"], attention_mask=b["attention_mask"], use_cache=False).logits
            keep, lengths = b["attention_mask"].bool(), b["attention_mask"].sum(1).tolist()
            for (k, n, fmt), (folder, ident, key) in meta.items():
                x = logits[keep]  # a copy: `sparse_rows` leaves the tail's weights in it
                s = sparse_rows(x, k)
                rows = [type(s)(*parts, s.vocab) for parts in zip(*(t.split(lengths) for t in s[:3]))]
                drawn = ([sample_tail(w, n, tail_seed(i)) for w, i in zip(x.split(lengths), g)] if n else
                         [None] * len(g))
                enc = [encode_sample(r, fmt, ident["id_bits"], d) for r, d in zip(rows, drawn)]
                atomic_write(os.path.join(folder, _shard_name(g[0])), shard_bytes(g, enc, key))
    return {os.path.basename(v[0]): v[0] for v in meta.values()}


def train(a, teacher, tok, ds, coll, held, cache_folder=None) -> dict:
    "A student trained --steps steps online (cache_folder None) or from a cache; held-out metrics and step times."
    import torch
    from transformers import TrainingArguments, TrainerCallback
    from nexus.losses import DistillationLoss, DistillConfig
    from nexus.pipeline import heldout_metrics
    from nexus.trainer import DistillationTrainer, make_student
    torch.manual_seed(0)
    student = make_student(teacher, 6, method="every_k")
    loss = DistillationLoss(DistillConfig(critical_layers=None), student=student, teachers={EXPERT: teacher})
    times = []

    class Clock(TrainerCallback):
        def on_step_begin(self, *args, **kw): self.t = time.perf_counter()
        def on_step_end(self, *args, **kw):
            times.append(time.perf_counter() - self.t)
            if len(times) % 10 == 0: print(f"    step {len(times)}: {times[-1]:.1f} s", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(output_dir=out, per_device_train_batch_size=a.batch, max_steps=a.steps,
                                 learning_rate=a.lr, lr_scheduler_type="cosine", warmup_steps=max(1, a.steps // 10),
                                 logging_steps=10, save_strategy="no", report_to=[], disable_tqdm=True, use_cpu=True,
                                 remove_unused_columns=False, seed=42, dataloader_num_workers=0)
        src = dict(teacher_cache={EXPERT: cache_folder}) if cache_folder else dict(teachers={EXPERT: teacher})
        tr = DistillationTrainer(student=student, distill_loss=loss, args=args, train_dataset=ds, data_collator=coll,
                                 callbacks=[Clock()], **src)
        from transformers.trainer_callback import PrinterCallback
        tr.remove_callback(PrinterCallback)
        tr.train()
    student.eval()
    m = heldout_metrics(student, teacher, held)
    step = statistics.median(times[3:])
    return {**m, "step_s": step, "tokens_per_s": a.batch * a.seq_len / step, "steps": len(times)}


def main():
    a = parse()
    quiet()
    import torch
    if a.threads: torch.set_num_threads(a.threads)
    from nexus.loader import OmniModelLoader
    teacher, tok = OmniModelLoader(str(smollm2_safetensors())).load(device_map="cpu")
    teacher.eval().requires_grad_(False)
    workdir = a.workdir or tempfile.mkdtemp(prefix="nexus-cache-bench-")
    ds, coll, held, st = data(a, tok, workdir)
    res = {"machine": machine(), "load_start": load_snapshot(), "args": vars(a), "rows": len(ds)}
    print(f"{len(ds)} training rows of up to {a.seq_len} tokens, {len(held)} held-out batches", file=sys.stderr)
    res["build"] = build_part(a, teacher, tok, ds, coll, workdir) if a.repeats else None
    folders = write_variants(a, teacher, tok, ds, coll, workdir)
    from nexus.cache import TeacherCache
    res["variants"] = {}
    res["online"] = (None if a.online_from == "skip" else json.load(open(a.online_from))["online"] if a.online_from
                     else train(a, teacher, tok, ds, coll, held))
    o = res["online"] or {"kl": math.nan, "tokens_per_s": math.nan}
    if res["online"]: print(f"  online: KL {o['kl']:.4f}, {o['tokens_per_s']:.0f} tok/s", file=sys.stderr)
    for name, folder in folders.items():
        r = train(a, teacher, tok, ds, coll, held, folder)
        r["bytes_per_token"] = TeacherCache(folder).bytes_per_token()
        r["kl_vs_online"] = r["kl"] / o["kl"] - 1
        r["speedup"] = r["tokens_per_s"] / o["tokens_per_s"]
        res["variants"][name] = r
        print(f"  {name}: KL {r['kl']:.4f} ({r['kl_vs_online']:+.1%} vs online), {r['bytes_per_token']:.1f} B/token, "
              f"{r['tokens_per_s']:.0f} tok/s ({r['speedup']:.2f}x)", file=sys.stderr)
        if a.output: json.dump(res, open(a.output, "w"), indent=1)
    res["load_end"] = load_snapshot()
    if a.output: json.dump(res, open(a.output, "w"), indent=1)
    b = res["build"]
    if b: print(f"build: +{b['overhead']:.1%} over a plain teacher forward ({b['tokens']} tokens)")
    print("| variant | bytes/token | held-out KL | vs online | tokens/s | vs online |\n|---|---:|---:|---:|---:|---:|")
    print(f"| online (dense teacher) | - | {o['kl']:.4f} | - | {o['tokens_per_s']:.0f} | 1.00x |")
    for n, r in res["variants"].items():
        print(f"| {n} | {r['bytes_per_token']:.1f} | {r['kl']:.4f} | {r['kl_vs_online']:+.1%} | "
              f"{r['tokens_per_s']:.0f} | {r['speedup']:.2f}x |")


if __name__ == "__main__": main()
