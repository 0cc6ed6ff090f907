"""Memory and time of the logit term's forward + backward from hidden states: fused (`nexus.fused`) vs full tensors.

    python benchmarks/fused_bench.py --output fused_bench.json

Both sides start from the same inputs, the student's final hidden states (1, tokens, H) and output head (V, H), leaves
that require grad, and the teacher's final hidden states and head (no grad), all fp32:

- **full**: the student's logits `hidden @ W.T` and the teacher's are made in full, then `nexus.losses.logit_loss`
  (the chunked kernel, default chunk); backward goes through the matmul by autograd. This is the trainer's path without
  the fused loss: the model makes its logits, the loss reads them.
- **fused**: `nexus.fused.fused_logit_loss(hidden, W, LogitHead(teacher_hidden, teacher_W))`: each chunk's logits on
  both sides, the divergence and both gradients, a chunk at a time.

Forward KL at T = 2 with T² scaling. Every measurement runs in a fresh subprocess, so its peak resident memory
(`ru_maxrss`) is its own; full and fused alternate, so both see the same machine load; read the ratios (fused / full).
`added` is the peak minus the resident memory just after the inputs were made. On CUDA (`--device cuda`) the peak is
`torch.cuda.max_memory_allocated`. `--teacher sparse` gives the teacher as top-64 `SparseLogprobs` (a teacher cache)
and `--teacher dense` as its logits, the same inputs to both sides.

From other code (a GPU check): `measure(vocab, tokens, hidden=None, device="cuda", repeats=1, calls=2,
teacher="head")` returns the runs and a summary with the ratios.
"""
import argparse, json, os, platform, statistics, subprocess, sys

HIDDEN = {49152: 576, 151936: 896}  # SmolLM2-135M's and Qwen2.5-0.5B's widths at their vocabularies


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from losses_bench import rss_bytes, timed_backward  # one way to time a loss and read its peak, for both benchmarks


def run_case(case, tokens, vocab, hidden=None, calls=2, device="cpu", teacher="head", temperature=2.0, seed=0):
    "One case ('full' or 'fused') in this process: baseline and peak memory, per-call times, the loss."
    import torch
    from nexus.losses import LogitHead, SparseLogprobs, logit_loss
    from nexus.fused import fused_logit_loss
    H = hidden or HIDDEN.get(vocab, 1024)
    g = torch.Generator().manual_seed(seed)
    h = (torch.randn(1, tokens, H, generator=g)).to(device).requires_grad_()
    W = (torch.randn(vocab, H, generator=g) / H ** 0.5).to(device).requires_grad_()
    th = torch.randn(1, tokens, H, generator=g).to(device)
    tW = (torch.randn(vocab, H, generator=g) * 2 / H ** 0.5).to(device)
    t_in = LogitHead(th, tW)
    if teacher != "head":
        with torch.no_grad(): T = th @ tW.T  # (1, tokens, V)
        t_in = SparseLogprobs.from_logits(T, 64) if teacher == "sparse" else T
        del T, th, tW
    cuda = device.startswith("cuda")
    if cuda: torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats(); base = torch.cuda.memory_allocated()
    else: base = rss_bytes()

    def full():
        T = t_in.logits() if isinstance(t_in, LogitHead) else t_in  # (1, tokens, V)
        return logit_loss(h @ W.T, T, temperature=temperature)[0]

    def fused(): return fused_logit_loss(h, W, t_in, temperature=temperature)[0]

    times, value, peak = timed_backward({"full": full, "fused": fused}[case], [h, W], calls, cuda)
    return {"case": case, "tokens": tokens, "vocab": vocab, "hidden": H, "teacher": teacher, "device": device,
            "inputs_bytes": base, "peak_bytes": peak, "added_bytes": peak - base, "times_s": times, "loss": value,
            "threads": torch.get_num_threads()}


def one_subprocess(case, tokens, vocab, hidden=None, calls=2, device="cpu", teacher="head"):
    "`run_case` in a fresh process of its own (its peak memory is its alone)."
    cmd = [sys.executable, os.path.abspath(__file__), "--one", case, "--tokens", str(tokens), "--vocab", str(vocab),
           "--calls", str(calls), "--device", device, "--teacher", teacher]
    if hidden: cmd += ["--hidden", str(hidden)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode: raise RuntimeError(f"{case} at {tokens} tokens, vocabulary {vocab} failed:\n{r.stderr}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def measure(vocab, tokens, hidden=None, device="cpu", repeats=1, calls=2, teacher="head", log=print):
    """Full and fused, alternating, each in its own subprocess, `repeats` times: `{'runs': [...], 'summary': {...}}`,
    the summary's ratios fused / full of the median peaks (also minus the inputs) and of the median and best times."""
    runs = {"full": [], "fused": []}
    for r in range(repeats):
        for case in (("full", "fused") if r % 2 == 0 else ("fused", "full")):
            out = one_subprocess(case, tokens, vocab, hidden, calls, device, teacher)
            runs[case].append(out)
            if log: log(f"V={vocab:>6} {tokens:>5} tokens {case:>5}: peak {out['peak_bytes'] / 2**30:6.2f} GiB (added "
                        f"{out['added_bytes'] / 2**30:5.2f}), times {', '.join(f'{t:.2f}' for t in out['times_s'])} s, "
                        f"loss {out['loss']:.6f}")
    med = lambda case, key: statistics.median(x[key] for x in runs[case])
    times = lambda case: [t for x in runs[case] for t in x["times_s"]]
    GB = 2 ** 30
    s = {"vocab": vocab, "tokens": tokens, "hidden": runs["full"][0]["hidden"], "teacher": teacher, "device": device}
    for case in runs:
        s[f"{case}_peak_gib"], s[f"{case}_added_gib"] = med(case, "peak_bytes") / GB, med(case, "added_bytes") / GB
        s[f"{case}_time_s_median"], s[f"{case}_time_s_min"] = statistics.median(times(case)), min(times(case))
        s[f"loss_{case}"] = runs[case][0]["loss"]
    s["peak_ratio"] = s["fused_peak_gib"] / s["full_peak_gib"]
    s["added_ratio"] = s["fused_added_gib"] / s["full_added_gib"]
    s["time_ratio_median"] = s["fused_time_s_median"] / s["full_time_s_median"]
    s["time_ratio_min"] = s["fused_time_s_min"] / s["full_time_s_min"]
    if log: log(f"V={vocab:>6} {tokens:>5} tokens: peak ratio {s['peak_ratio']:.3f} (added {s['added_ratio']:.3f}), "
                f"time ratio {s['time_ratio_median']:.3f} median / {s['time_ratio_min']:.3f} best")
    return {"runs": runs["full"] + runs["fused"], "summary": s}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--vocab", type=int, nargs="+", default=[49152, 151936])
    p.add_argument("--tokens", type=int, nargs="+", default=[8192])
    p.add_argument("--hidden", type=int, help="H of student and teacher; default 576 at 49,152, 896 at 151,936")
    p.add_argument("--teacher", choices=["head", "sparse", "dense"], default="head")
    p.add_argument("--repeats", type=int, default=1, help="fresh subprocesses per case and size, alternating")
    p.add_argument("--calls", type=int, default=2, help="forward+backward calls per subprocess (all timed)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--output", help="write the JSON results here")
    p.add_argument("--one", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        print(json.dumps(run_case(args.one, args.tokens[0], args.vocab[0], args.hidden, args.calls, args.device,
                                  args.teacher)))
        return
    import torch
    results = {"command": " ".join([os.path.basename(sys.executable)] + sys.argv), "machine": {
               "cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
               "torch": torch.__version__,
               "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30, 1)},
               "runs": [], "summary": []}
    for vocab in args.vocab:
        for tokens in args.tokens:
            m = measure(vocab, tokens, args.hidden, args.device, args.repeats, args.calls, args.teacher)
            results["runs"] += m["runs"]; results["summary"].append(m["summary"])
            if args.output:
                with open(args.output, "w") as f: json.dump(results, f, indent=1)


if __name__ == "__main__": main()
