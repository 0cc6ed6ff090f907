"""Effectiveness of distillation: which student, learning rate, schedule and objective make the best student.

    python benchmarks/effectiveness_bench.py --output effectiveness.json --plot effectiveness.png
    python benchmarks/effectiveness_bench.py --quick                       # a few steps, two variants: minutes
    python benchmarks/effectiveness_bench.py --parts objective --layers importance --lr 1e-3   # one part alone
    python benchmarks/effectiveness_bench.py ... --reuse old.json --output new.json  # go on after an interrupted run

Teacher: SmolLM2-135M-Instruct (fp32 safetensors converted once from the bundled GGUF by `teacher_source`). Student:
6 of its 30 layers, copied by `make_student`. Data: the built-in examples `nexus distill` uses (Python from the
standard library and the shipped prose: half each as far as the prose's 94 paragraphs go, code fills the rest), seed
42. A held-out split (--heldout-rows packed rows of 256 tokens, half code, half prose) is set aside first; no variant
ever trains on it. The standard rung trains on 500 of the remaining examples, the debug rung on 50 drawn from those
500. The examples are tokenised and packed into full rows of 256 tokens (shuffled, as `nexus distill` packs them),
batches of 4, and every variant of a rung gets the very same batches in the same order for --steps steps: EQUAL
TOKENS for all (a rung whose rows run out starts over from its first row, so the debug rung repeats its data).

Measured: KL(teacher || student) per token at T=1 and the student's perplexity on the held-out rows, with
`nexus.pipeline.heldout_metrics`, before training and every --eval-every steps (the KL-against-tokens curves), and at
the end also on the rung's first training rows (the training side of the generalisation gap); the teacher's own
perplexity on the same text. The teacher's logits on those fixed rows are computed once and replayed from files in
--workdir (checked equal to the live teacher's metrics at the start), so an evaluation costs only the student's pass.

Variants, each in a fresh subprocess (its own memory), one at a time, with --threads torch threads (2):

* layers: which teacher layers the student keeps, by `nexus.trainer.choose_layers` on the first 4 training batches:
  every k-th, the 6 of highest Block Influence (1 - cos(layer input, layer output)), or iterative (drop the least
  influential layer, measure again, ...); forward KL at T=1, logits only, lr --lr (1e-3), linear decay.
* lr: 1e-4, 3e-4, 1e-3, 3e-3 with linear decay (no warm-up), then the best one with cosine decay after a warm-up of a
  tenth of the steps; on the best layer choice.
* objective: on the best layers, lr and schedule, through `DistillationLoss` / `DistillationTrainer`: forward KL at
  T=1; forward KL at T=2 (x T^2); reverse KL; JSD (beta 0.5); then on top of the best of those four the hidden-state
  term (nmse, weight 1, student layer i matched to the teacher layer it was copied from, --layer-map); + critical
  layers x10 (auto, 2 layers); + protected-subspace anchoring (weight 1, rank 16, the critical layers). Every setting
  is spelled out below (OBJECTIVES), so changing the project's defaults doesn't change what this measures.
* baselines: the best Nexus distillation beside plain fine-tuning (a bare `transformers.Trainer`, the model's own
  cross-entropy, no teacher) and TRL's off-policy `GKDTrainer` (lmbda=0, seq_kd=False, beta --trl-beta: 0 is forward
  KL at T=1), on the same student, lr, schedule, batches and tokens. GKD at beta 0 and Nexus's forward KL at T=1 are
  the same objective: with the same settings their held-out numbers agree to 6 digits (a check of the harness).
* rungs: debug (50 samples) against standard (500 samples) at equal tokens, for the best distillation setting and for
  plain fine-tuning; the training-rows KL and perplexity and the logged training loss are reported beside the held-out
  ones, so "more samples: higher training loss, better generalisation" is measured, whatever it shows.

"Best" is the lowest held-out KL at the end; a part run alone takes --layers, --lr, --schedule and --objective
instead. A variant that two parts share (the lr part's 1e-3 is the layers part's winner again, ...) runs once.

How to read it: the markdown table printed at the end (and kept in the JSON) gives per variant the held-out KL before
and after, the perplexity after, the teacher's perplexity and the training seconds (evaluations excluded); a second
table puts the rungs side by side with their training-rows numbers. The plot (--plot) draws held-out KL against
training tokens, one panel per part. Lower KL is a student closer to its teacher; a perplexity near the teacher's is
a student that predicts the text about as well. Everything is deterministic (a rerun gives the same numbers), but one
run is one seed and one data order: differences of a few percent may not survive another.

Time: on the development box (2 cores) with no other load a step of 4 x 256 tokens took 5.4-5.7 s with Nexus (TRL:
6.1-6.3 s, plain fine-tuning about half), an evaluation about 2.3 s per 4 rows, a subprocess's start about 8 s, so
the default run (17 distinct variants of 24 steps, 12 held-out rows, the iterative layer choice about 2 minutes)
comes to about 50 minutes; `--steps 40 --eval-every 10 --heldout-rows 16`, about the horizon of the 5-minute main
job, to about 80. With other work on the machine, steps took 20-35 s. `--quick` took 2 minutes (8 when loaded).
Memory: under 4 GiB per subprocess; the replayed logits take 0.2 GB of disk per 4 rows while it runs.
"""
import argparse, hashlib, json, math, os, random, subprocess, sys, tempfile, time
from pathlib import Path

from trainer_bench import load_snapshot, machine, maxrss, quiet, smollm2_safetensors

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

EXPERT = "smollm2"  # the teacher's name when `nexus distill` runs with no arguments
SEED = 42  # `nexus distill`'s default seed
RUNGS = {"debug": 50, "standard": 500}
LR_GRID = (1e-4, 3e-4, 1e-3, 3e-3)
LAYER_METHODS = ("every_k", "importance", "iterative")
LAYER_NAMES = {"every_k": "every k-th", "importance": "highest Block Influence",
               "iterative": "iterative Block Influence"}

# Every loss setting spelled out: what a variant measures doesn't move when the project's defaults do.
LOGITS_ONLY = dict(logits_weight=1.0, ce_weight=0.0, hidden_weight=0.0, critical_layers=None, anchor_weight=0.0,
                   t2_scaling=True, jsd_beta=0.5)
OBJECTIVES = {
    "fkl_t1": ("forward KL, T=1", dict(divergence="forward_kl", temperature=1.0)),
    "fkl_t2": ("forward KL, T=2, x T^2", dict(divergence="forward_kl", temperature=2.0)),
    "rkl": ("reverse KL, T=1", dict(divergence="reverse_kl", temperature=1.0)),
    "jsd": ("JSD beta=0.5, T=1", dict(divergence="jsd", jsd_beta=0.5, temperature=1.0)),
}
HIDDEN = dict(hidden_weight=1.0, hidden_loss="nmse", layer_reduction="mean", include_embeddings=False)
TERMS = {  # added on top of the best logit objective, one after the other
    "hidden": ("+ hidden (nmse)", dict(HIDDEN)),
    "critical": ("+ hidden + critical x10", dict(HIDDEN, critical_layers="auto", critical_multiplier=10.0,
                                                 num_critical=2)),
    "anchor": ("+ hidden + critical x10 + anchoring", dict(HIDDEN, critical_layers="auto", critical_multiplier=10.0,
                                                           num_critical=2, anchor_weight=1.0, anchor_layers="critical",
                                                           anchor_rank=16, anchor_importance="block_influence")),
}
BASELINES = {"finetune": "plain fine-tuning (cross-entropy)", "trl": "TRL GKDTrainer (off-policy)"}


def objective_settings(objective) -> dict:
    "The `DistillConfig` settings of an objective name: 'fkl_t1', 'rkl', ..., or one of them + a term ('jsd+hidden')."
    base, _, term = objective.partition("+")
    return {**LOGITS_ONLY, **OBJECTIVES[base][1], **(TERMS[term][1] if term else {})}

def objective_label(spec) -> str:
    if spec["trainer"] == "finetune": return "cross-entropy only"
    if spec["trainer"] == "trl": return f"GKD beta={spec['beta']:g} (T=1)"
    base, _, term = spec["objective"].partition("+")
    return OBJECTIVES[base][0] + (f" {TERMS[term][0]}" if term else "")

def schedule_label(spec) -> str:
    return f"{spec['lr']:g}, " + ("linear" if spec["schedule"] == "linear" else "cosine + warm-up")

def spec_key(spec) -> str: return json.dumps(spec, sort_keys=True)


# ---------------------------------------------------------------------------------------------------- data
def _packed_rows(examples, tok, seq_len, seed=None) -> list[dict]:
    "The full rows of `seq_len` tokens `nexus distill` would pack from `examples` (the last, short row left out)."
    from nexus.data import build_dataset
    ds = build_dataset(examples, tok, seq_len, packing=True, seed=seed)
    return [{"input_ids": it["input_ids"], "labels": it["labels"]}
            for it in ds.items if len(it["input_ids"]) == seq_len]

def _hold_out(examples, n_rows, tok, seq_len, seed):
    "(training examples, held-out rows): the fewest seed-shuffled examples whose packing fills `n_rows` rows."
    order = list(examples)
    random.Random(f"{seed}/heldout").shuffle(order)
    for k in range(1, len(order)):
        rows = _packed_rows(order[:k], tok, seq_len)
        if len(rows) >= n_rows: return order[k:], rows[:n_rows]
    raise SystemExit(f"the built-in data can't fill {n_rows} held-out rows of {seq_len} tokens: ask for fewer.")

def prepare_data(a, tok) -> dict:
    """Held-out rows (half code, half prose), and per rung its training rows, repeated to --steps x --batch rows, and
    its first rows as the training side of the generalisation gap."""
    from nexus.data import builtin_examples
    n = RUNGS["standard"] + 4 * a.heldout_rows  # room for the held-out split
    prose = builtin_examples(EXPERT, n // 2, seed=SEED, source="general")  # the shipped prose has fewer than 300
    code = builtin_examples(EXPERT, n - len(prose), seed=SEED, source="coder")
    code_train, code_held = _hold_out(code, a.heldout_rows - a.heldout_rows // 2, tok, a.seq_len, SEED)
    prose_train, prose_held = _hold_out(prose, a.heldout_rows // 2, tok, a.seq_len, SEED)
    pool = code_train + prose_train
    random.Random(f"{SEED}/pool").shuffle(pool)
    samples = {"standard": pool[:RUNGS["standard"]]}
    samples["debug"] = random.Random(f"{SEED}/debug").sample(samples["standard"], RUNGS["debug"])
    need = a.steps * a.batch
    out = {"heldout": code_held + prose_held, "rungs": {}}
    for rung, ex in samples.items():
        rows = _packed_rows(ex, tok, a.seq_len, seed=SEED)
        out["rungs"][rung] = {"samples": len(ex), "code_samples": sum(e.dataset == "python-stdlib" for e in ex),
                              "unique_rows": len(rows), "epochs": need / len(rows),
                              "train": [rows[i % len(rows)] for i in range(need)], "probe": rows[:a.heldout_rows],
                              "calib": rows[:4 * a.batch]}  # what a run calibrates on: its first 4 batches
    return out

def batches(rows, batch, collator) -> list[dict]:
    return [collator(rows[i:i + batch]) for i in range(0, len(rows), batch)]


# ---------------------------------------------------------------------------------------------- the teacher, replayed
def _ids_key(ids) -> str: return hashlib.sha1(ids.cpu().numpy().tobytes()).hexdigest()

def cache_teacher_logits(teacher, sets: dict, folder) -> dict:
    "The teacher's logits on every batch of `sets` ({name: batches}), one .npy file a batch: {ids key: file}."
    import numpy as np, torch
    index, dev = {}, next(teacher.parameters()).device
    with torch.no_grad():
        for name, bs in sets.items():
            for i, b in enumerate(bs):  # the very call heldout_metrics makes
                path = os.path.join(folder, f"teacher-logits-{name}-{i}.npy")
                logits = teacher(input_ids=b["input_ids"].to(dev), attention_mask=b["attention_mask"].to(dev)).logits
                np.save(path, logits.float().cpu().numpy())
                index[_ids_key(b["input_ids"])] = path
    return index

def replay_teacher(index):
    "A stand-in for the teacher in `heldout_metrics`: returns its logits on the cached batches, read from the files."
    import numpy as np, torch
    from types import SimpleNamespace

    class ReplayTeacher(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.here = torch.nn.Parameter(torch.zeros(()), requires_grad=False)  # heldout_metrics reads the device
        def forward(self, input_ids, attention_mask=None, **kw):
            return SimpleNamespace(logits=torch.from_numpy(np.load(index[_ids_key(input_ids)])))
    return ReplayTeacher()


# ------------------------------------------------------------------------------------------- layer choice, start points
def prep_case(a) -> dict:
    """In a fresh process: the teacher's Block Influence, each needed layer choice, the teacher's logits on the fixed
    rows (cached), each layer choice's student measured before training, the teacher's perplexity."""
    from nexus.data import DistillCollator
    from nexus.losses import teacher_statistics
    from nexus.pipeline import heldout_metrics
    from nexus.trainer import choose_layers, make_student
    teacher, tok = load_teacher(a)
    data, coll = json.load(open(os.path.join(a.workdir, "data.json"))), DistillCollator(tok)
    held = batches(data["heldout"], a.batch, coll)
    probes = {r: batches(d["probe"], a.batch, coll) for r, d in data["rungs"].items()}
    calib = batches(data["rungs"]["standard"]["calib"], a.batch, coll)
    t0 = time.perf_counter()
    stats = teacher_statistics(teacher, calib)  # measured once, for every choice
    out = {"block_influence": stats.block_influence.tolist(), "layers": {}}
    for m in a.methods:
        t = time.perf_counter()
        idx = choose_layers(teacher, a.student_layers, m, calib, stats=stats)
        out["layers"][m] = {"layers": [int(i) for i in idx], "seconds": time.perf_counter() - t}
    index = cache_teacher_logits(teacher, {"heldout": held, **{f"probe-{r}": b for r, b in probes.items()}},
                                 a.workdir)
    json.dump(index, open(os.path.join(a.workdir, "teacher-index.json"), "w"))
    replay = replay_teacher(index)
    for m, d in out["layers"].items():
        student = make_student(teacher, a.student_layers, d["layers"]).eval()
        d["start"] = heldout_metrics(student, replay, held)
        if m == a.methods[0]:  # the replayed teacher must give what the live one gives
            out["replay_check"] = {"live": heldout_metrics(student, teacher, held), "replayed": d["start"]}
    # the teacher measured against its replayed self: its perplexity, and a KL that must be 0
    out["teacher"] = {"heldout": heldout_metrics(teacher, replay, held),
                      **{f"probe_{r}": heldout_metrics(teacher, replay, b) for r, b in probes.items()}}
    out["seconds"] = time.perf_counter() - t0
    return out


# ---------------------------------------------------------------------------------------------------- one variant
def load_teacher(a):
    import torch
    from nexus.loader import OmniModelLoader
    torch.manual_seed(SEED)
    return OmniModelLoader(str(smollm2_safetensors())).load(device_map=a.device)

def train_args(a, spec, out, **kw) -> dict:
    "The Trainer settings every side shares (fp32, no checkpointing: GKDConfig's defaults turn both on)."
    warm = max(1, a.steps // 10) if spec["schedule"] == "cosine" else 0
    return dict(output_dir=out, per_device_train_batch_size=a.batch, gradient_accumulation_steps=1,
                max_steps=a.steps, learning_rate=spec["lr"], lr_scheduler_type=spec["schedule"], warmup_steps=warm,
                weight_decay=0.0, max_grad_norm=1.0, optim="adamw_torch", seed=SEED, data_seed=SEED,
                logging_steps=1, save_strategy="no", report_to=[], disable_tqdm=True, remove_unused_columns=False,
                dataloader_num_workers=0, use_cpu=a.device == "cpu", bf16=False, fp16=False,
                gradient_checkpointing=False, activation_checkpointing=False, **kw)

def curve_callback(student, replay, held, a):
    "A TrainerCallback: held-out metrics every --eval-every steps and at the last, the logged losses, eval time."
    from transformers import TrainerCallback
    from nexus.pipeline import heldout_metrics

    class Curve(TrainerCallback):
        def __init__(self): self.points, self.losses, self.step_s, self.eval_s, self.t0 = [], [], [], 0.0, None
        def on_step_begin(self, args, state, control, **kw): self.t0 = time.perf_counter()
        def on_step_end(self, args, state, control, **kw):
            self.step_s.append(time.perf_counter() - self.t0)
            if state.global_step % a.eval_every and state.global_step != a.steps: return
            t = time.perf_counter()
            student.eval()
            m = heldout_metrics(student, replay, held)
            student.train()
            self.eval_s += time.perf_counter() - t
            trained = state.global_step * a.batch * a.seq_len
            self.points.append({**m, "step": state.global_step, "trained_tokens": trained})
        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "loss" in logs: self.losses.append(float(logs["loss"]))
    return Curve()

def sequential(trainer, ds):
    "Read the training rows in order, as `DistillationTrainer` does: every side sees the same batches."
    import torch
    trainer._get_train_sampler = lambda *args, **kw: torch.utils.data.SequentialSampler(ds)

def build_trainer(a, spec, teacher, tok, student, rows, coll, calib, curve, out):
    "The Trainer of a variant: `DistillationTrainer`, a bare `transformers.Trainer`, or TRL's `GKDTrainer`."
    from transformers import Trainer, TrainingArguments
    if spec["trainer"] == "finetune":
        tr = Trainer(model=student, args=TrainingArguments(**train_args(a, spec, out)), train_dataset=rows,
                     data_collator=coll, callbacks=[curve])
        sequential(tr, rows)
        return tr
    if spec["trainer"] == "trl":
        import datasets
        from trl.experimental.gkd import GKDConfig, GKDTrainer
        cfg = GKDConfig(**train_args(a, spec, out), lmbda=0.0, seq_kd=False, beta=spec["beta"], max_length=a.seq_len,
                        disable_dropout=True)
        ds = datasets.Dataset.from_list(rows)
        tr = GKDTrainer(model=student, teacher_model=teacher, args=cfg, train_dataset=ds, data_collator=coll,
                        processing_class=tok, callbacks=[curve])
        sequential(tr, ds)
        return tr
    from nexus.losses import DistillationLoss, DistillConfig
    from nexus.trainer import DistillationTrainer
    settings = objective_settings(spec["objective"])
    if settings["hidden_weight"] and a.layer_map == "copied": settings["layer_map"] = spec["layer_list"]
    loss = DistillationLoss(DistillConfig(**settings), student=student, teachers={EXPERT: teacher})
    if loss.pairs and (settings["critical_layers"] == "auto" or settings["anchor_weight"] > 0):
        loss.calibrate(teacher, calib, teacher=EXPERT)  # as a run does: on its first 4 training batches
    return DistillationTrainer(student=student, teachers={EXPERT: teacher}, distill_loss=loss,
                               args=TrainingArguments(**train_args(a, spec, out)), train_dataset=rows,
                               data_collator=coll, callbacks=[curve])

def variant_case(a, spec) -> dict:
    "One variant in this (fresh) process: train --steps steps, the held-out curve, the training-rows numbers."
    import shutil
    from nexus.data import DistillCollator
    from nexus.pipeline import heldout_metrics
    from nexus.trainer import make_student
    teacher, tok = load_teacher(a)
    for p in teacher.parameters(): p.requires_grad_(False)
    student = make_student(teacher, a.student_layers, spec["layer_list"]).to(a.device)
    if spec["trainer"] == "finetune": teacher = None  # plain fine-tuning never asks it (the replay stands in)
    data, coll = json.load(open(os.path.join(a.workdir, "data.json"))), DistillCollator(tok)
    rung = data["rungs"][spec["rung"]]
    index = json.load(open(os.path.join(a.workdir, "teacher-index.json")))
    replay, held = replay_teacher(index), batches(data["heldout"], a.batch, coll)
    calib = batches(rung["calib"], a.batch, coll)
    curve = curve_callback(student, replay, held, a)
    out = tempfile.mkdtemp(prefix="nexus-effectiveness-", dir=a.workdir)
    trainer = build_trainer(a, spec, teacher, tok, student, rung["train"], coll, calib, curve, out)
    t0 = time.perf_counter()
    trainer.train()
    wall = time.perf_counter() - t0
    student.eval()
    probe = heldout_metrics(student, replay, batches(rung["probe"], a.batch, coll))
    shutil.rmtree(out, ignore_errors=True)
    last = curve.losses[-a.eval_every:]
    return {"curve": curve.points, "train_s": wall - curve.eval_s, "eval_s": curve.eval_s, "step_s": curve.step_s,
            "losses": curve.losses, "final_logged_loss": sum(last) / len(last) if last else None, "probe": probe,
            "maxrss": maxrss(), "tokens": a.steps * a.batch * a.seq_len}


# ---------------------------------------------------------------------------------------------------- the plan
class Runner:
    "Runs each distinct variant once, in a fresh subprocess, and keeps every result (written out after each one)."
    def __init__(self, a, prep, res, reused=None):
        self.a, self.prep, self.res, self.done, self.reused = a, prep, res, {}, reused or {}

    def run(self, part, name, **spec):
        a = self.a
        spec = {"layers": a.layers, "lr": a.lr, "schedule": a.schedule, "objective": a.objective,
                "trainer": "nexus", "rung": "standard", **spec}
        if spec["trainer"] != "nexus": spec.pop("objective")
        if spec["trainer"] == "trl": spec["beta"] = a.trl_beta
        spec["layer_list"] = self.prep["layers"][spec["layers"]]["layers"]
        key = spec_key(spec)
        if key not in self.done and key in self.reused:  # measured by an earlier run of the same command (--reuse)
            self.done[key] = {**self.reused[key], "reused": True}
            self.res["variants"].append(self.done[key])
        if key not in self.done:
            t = time.perf_counter()
            r = subprocess_case(a, "variant", key)
            r.update(spec=spec, wall_s=time.perf_counter() - t)
            if "curve" in r:  # the start: the same student for every variant of a layer choice, measured once
                r["curve"].insert(0, {**self.prep["layers"][spec["layers"]]["start"], "step": 0, "trained_tokens": 0})
            self.done[key] = r
            self.res["variants"].append(r)
            fin = r["curve"][-1] if "curve" in r else {}
            print(f"  {part:9} {name:38} KL {fin.get('kl', float('nan')):6.3f}  perplexity "
                  f"{fin.get('perplexity', float('nan')):10.1f}  ({r['wall_s']:.0f} s)", file=sys.stderr, flush=True)
        self.res["rows"].append({"part": part, "name": name, "key": key})
        if a.output: write_json(a.output, self.res)
        return self.done[key]

    def best(self, part, field):
        "The `field` of the part's variant with the lowest final held-out KL."
        rows = [r for r in self.res["rows"] if r["part"] == part and "curve" in self.done[r["key"]]]
        if not rows: raise SystemExit(f"every variant of part {part!r} failed; see the JSON output.")
        win = min(rows, key=lambda r: self.done[r["key"]]["curve"][-1]["kl"])
        return self.done[win["key"]]["spec"][field]

def plan(a, run: Runner):
    "Run the parts in order; each later part starts from the earlier parts' winners (or the flags, when run alone)."
    if a.quick:
        run.run("quick", "distil: highest Block Influence, fwd KL")
        run.run("quick", BASELINES["trl"], trainer="trl")
        return
    if "layers" in a.parts:
        for m in LAYER_METHODS: run.run("layers", LAYER_NAMES[m], layers=m)
        a.layers = run.best("layers", "layers")
    if "lr" in a.parts:
        for lr in LR_GRID: run.run("lr", f"lr {lr:g}, linear", lr=lr, schedule="linear")
        a.lr = run.best("lr", "lr")
        run.run("lr", f"lr {a.lr:g}, cosine + warm-up", lr=a.lr, schedule="cosine")
        a.schedule = run.best("lr", "schedule")
    if "objective" in a.parts:
        for k, (label, _) in OBJECTIVES.items(): run.run("objective", label, objective=k)
        base = run.best("objective", "objective")
        for k, (label, _) in TERMS.items():
            run.run("objective", f"{OBJECTIVES[base][0]} {label}", objective=f"{base}+{k}")
        a.objective = run.best("objective", "objective")
    if "baselines" in a.parts:
        run.run("baselines", "Nexus distillation (the best setting)")  # the reference, run once
        run.run("baselines", BASELINES["finetune"], trainer="finetune")
        run.run("baselines", BASELINES["trl"], trainer="trl")
    if "rungs" in a.parts:
        for rung in RUNGS:
            run.run("rungs", f"{rung} ({RUNGS[rung]} samples): distillation", rung=rung)
            run.run("rungs", f"{rung} ({RUNGS[rung]} samples): plain fine-tuning", rung=rung, trainer="finetune")


# ---------------------------------------------------------------------------------------------------- report
def tables(res) -> str:
    "The results as markdown: every variant by part, then the rungs side by side."
    done, teacher = {spec_key(v["spec"]): v for v in res["variants"]}, res["prep"]["teacher"]
    t_ppl = teacher["heldout"]["perplexity"]
    lines = ["| part | variant | layers | lr, schedule | objective | KL before | KL after | perplexity after | "
             "teacher perplexity | train s |", "|---|---|---|---|---|---:|---:|---:|---:|---:|"]
    for row in res["rows"]:
        v = done[row["key"]]; s = v["spec"]
        if "curve" not in v:
            lines.append(f"| {row['part']} | {row['name']} | failed: see the JSON | | | | | | | |"); continue
        c0, c1 = v["curve"][0], v["curve"][-1]
        lines.append(f"| {row['part']} | {row['name']} | {s['layers']} {s['layer_list']} | {schedule_label(s)} | "
                     f"{objective_label(s)} | {c0['kl']:.3f} | {c1['kl']:.3f} | {c1['perplexity']:,.1f} | "
                     f"{t_ppl:,.1f} | {v['train_s']:.0f} |")
    rung_rows = [r for r in res["rows"] if r["part"] in ("rungs", "quick")]
    if rung_rows:
        lines += ["", "| variant | samples | unique rows | epochs | training loss (its objective, last steps) | "
                  "training-rows KL | training-rows perplexity (teacher) | held-out KL | held-out perplexity |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for row in rung_rows:
            v = done[row["key"]]
            if "curve" not in v: continue
            d, rung = res["data"][v["spec"]["rung"]], v["spec"]["rung"]
            p, c1 = v["probe"], v["curve"][-1]
            t = teacher["probe_" + rung]["perplexity"]
            lines.append(f"| {row['name']} | {d['samples']} | {d['unique_rows']} | {d['epochs']:.2f} | "
                         f"{v['final_logged_loss']:.3f} | {p['kl']:.3f} | {p['perplexity']:,.1f} ({t:,.1f}) | "
                         f"{c1['kl']:.3f} | {c1['perplexity']:,.1f} |")
    return "\n".join(lines)

def plot(res, path):
    "Held-out KL against training tokens, one panel per part, one line per variant."
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FormatStrFormatter
    done = {spec_key(v["spec"]): v for v in res["variants"]}
    parts = list(dict.fromkeys(r["part"] for r in res["rows"]))
    cols = min(3, len(parts))
    rows = math.ceil(len(parts) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.6 * cols, 4.4 * rows), squeeze=False)
    for ax, part in zip(axes.flat, parts):
        for row in (r for r in res["rows"] if r["part"] == part):
            pts = done[row["key"]].get("curve")
            if pts:
                x, y = [p["trained_tokens"] / 1000 for p in pts], [p["kl"] for p in pts]
                ax.plot(x, y, marker=".", label=row["name"])
        ax.set(title=part, xlabel="training tokens (thousands)", ylabel="held-out KL (nats/token)", yscale="log")
        for axis in (ax.yaxis.set_major_formatter, ax.yaxis.set_minor_formatter): axis(FormatStrFormatter("%g"))
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize="x-small")
    for ax in axes.flat[len(parts):]: ax.set_visible(False)
    fig.suptitle("held-out KL(teacher || student) at T=1\nSmolLM2-135M-Instruct -> 6-layer student", fontsize="medium")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------------- driver
COMMON = ("steps", "eval_every", "heldout_rows", "batch", "seq_len", "threads", "device", "workdir", "student_layers",
          "layer_map")

def subprocess_case(a, *what) -> dict:
    "One measurement in a fresh process; a failure is recorded (the run goes on) rather than raised."
    cmd = [sys.executable, os.path.abspath(__file__), "--one", *what, "--methods", *a.methods]
    for k in COMMON: cmd += [f"--{k.replace('_', '-')}", str(getattr(a, k))]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode:
        print(f"{' '.join(what[:1])} failed:\n{r.stderr[-3000:]}", file=sys.stderr)
        return {"error": r.stderr[-6000:]}
    return json.loads(r.stdout.strip().splitlines()[-1])

def _prep_reusable(old, workdir) -> bool:
    "Whether an earlier run's preparation can stand: it succeeded and its cached teacher logits are all still there."
    index = os.path.join(workdir, "teacher-index.json")
    if "layers" not in old.get("prep", {}) or not os.path.exists(index): return False
    return all(os.path.exists(f) for f in json.load(open(index)).values())

def write_json(path, obj):
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f: json.dump(obj, f, indent=1)
    os.replace(tmp, path)

def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--parts", nargs="+", default=["layers", "lr", "objective", "baselines", "rungs"],
                   choices=["layers", "lr", "objective", "baselines", "rungs"])
    p.add_argument("--quick", action="store_true", help="4 steps, 4 held-out rows, two variants (a distillation and "
                   "TRL's GKDTrainer): proves the whole path in minutes")
    p.add_argument("--steps", type=int, help="optimiser steps per variant (24; --quick: 4)")
    p.add_argument("--eval-every", type=int, help="held-out evaluation every this many steps (8; --quick: 2)")
    p.add_argument("--heldout-rows", type=int, help="held-out rows of --seq-len tokens, half code, half prose "
                   "(12; --quick: 4)")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--seq-len", type=int, default=256)
    p.add_argument("--student-layers", type=int, default=6)
    p.add_argument("--layers", default="importance", choices=LAYER_METHODS,
                   help="layer choice when the layers part doesn't run")
    p.add_argument("--lr", type=float, default=1e-3, help="learning rate of the layers part, and when the lr part "
                   "doesn't run")
    p.add_argument("--schedule", default="linear", choices=["linear", "cosine"])
    p.add_argument("--objective", default="fkl_t1", help="objective when the objective part doesn't run: "
                   f"{', '.join(OBJECTIVES)}, optionally +{'/+'.join(TERMS)}")
    p.add_argument("--trl-beta", type=float, default=0.0, help="GKD's beta: 0 forward KL, 0.5 JSD, 1 reverse KL")
    p.add_argument("--layer-map", default="copied", choices=["copied", "uniform"], help="hidden term: student layer i "
                   "matched to the teacher layer it was copied from, or the loss's uniform map")
    p.add_argument("--threads", type=int, default=2, help="torch threads in every process (0: torch's default)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "nexus-effectiveness-bench"),
                   help="data, the teacher's cached logits (1.8 GB at 12 rows; removed at the end), scratch")
    p.add_argument("--output", help="write the JSON results here (also after every variant)")
    p.add_argument("--plot", help="save the KL-against-tokens plot here (PNG)")
    p.add_argument("--reuse", metavar="JSON", help="an earlier --output of the same settings: its preparation (when "
                   "the workdir still holds its cached logits) and finished variants are reused, not measured again")
    p.add_argument("--one", nargs="+", help=argparse.SUPPRESS)
    p.add_argument("--methods", nargs="+", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    quick = dict(steps=4, eval_every=2, heldout_rows=4) if a.quick else dict(steps=24, eval_every=8, heldout_rows=12)
    for k, v in quick.items():
        if getattr(a, k) is None: setattr(a, k, v)
    base = a.objective.partition("+")
    if base[0] not in OBJECTIVES or (base[2] and base[2] not in TERMS): p.error(f"unknown objective {a.objective!r}")
    if a.methods is None:
        a.methods = list(LAYER_METHODS) if "layers" in a.parts and not a.quick else [a.layers]
    return a

def main():
    a = parse_args()
    quiet()
    if a.threads:
        import torch
        torch.set_num_threads(a.threads)
    if a.one:
        r = prep_case(a) if a.one[0] == "prep" else variant_case(a, json.loads(a.one[1]))
        print(json.dumps(r))
        return
    from transformers import AutoTokenizer
    os.makedirs(a.workdir, exist_ok=True)
    t0 = time.time()
    tok = AutoTokenizer.from_pretrained(str(smollm2_safetensors()))
    data = prepare_data(a, tok)
    write_json(os.path.join(a.workdir, "data.json"), data)
    res = {"command": " ".join(["python", "benchmarks/effectiveness_bench.py"] + sys.argv[1:]), "machine": machine(),
           "args": vars(a).copy(), "load_before": load_snapshot(),
           "data": {r: {k: v for k, v in d.items() if k not in ("train", "probe", "calib")}
                    for r, d in data["rungs"].items()},
           "variants": [], "rows": []}
    old = json.load(open(a.reuse)) if a.reuse else {}
    reused = {spec_key(v["spec"]): v for v in old.get("variants", []) if "curve" in v}
    if _prep_reusable(old, a.workdir):
        print(f"reusing the preparation of {a.reuse}", file=sys.stderr)
        res["prep"] = prep = old["prep"]
    else:
        print(f"preparing: Block Influence, layer choice ({', '.join(a.methods)}), the teacher's logits", file=sys.stderr)
        res["prep"] = prep = subprocess_case(a, "prep")
    if "error" in prep: raise SystemExit("the preparation failed")
    chk = prep["replay_check"]
    if abs(chk["live"]["kl"] - chk["replayed"]["kl"]) > 1e-6 * max(1.0, chk["live"]["kl"]):
        print(f"warning: the replayed teacher differs from the live one: {chk}", file=sys.stderr)
    try: plan(a, Runner(a, prep, res, reused))
    finally:
        for f in Path(a.workdir).glob("teacher-logits-*.npy"): f.unlink()
    res["choices"] = {k: getattr(a, k) for k in ("layers", "lr", "schedule", "objective")}
    res["wall_s"], res["load_after"] = time.time() - t0, load_snapshot()
    res["table"] = tables(res)
    bi = prep["block_influence"]
    print(f"\nteacher perplexity on the held-out rows: {prep['teacher']['heldout']['perplexity']:.2f}; "
          f"layers by Block Influence: {sorted(range(len(bi)), key=lambda i: -bi[i])[:10]} ...")
    print(res["table"])
    print(f"\nwinners: {res['choices']}; wall {res['wall_s'] / 60:.1f} min")
    if a.output: write_json(a.output, res)
    if a.plot: plot(res, a.plot)
    if any("error" in v for v in res["variants"]): sys.exit(1)


if __name__ == "__main__":
    main()
