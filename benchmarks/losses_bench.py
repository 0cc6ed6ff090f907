"""Memory and time of the logit term's forward + backward: Nexus's chunked kernel vs the textbook full-tensor KL.

    python benchmarks/losses_bench.py --output benchmarks/losses_bench.json

Every measurement runs in a fresh subprocess, so each one's peak resident memory (`ru_maxrss`, the high-water mark of
the whole process) belongs to that case alone; naive and chunked runs alternate, so both sides see the same machine
load, and the ratios (chunked / naive) are what to read. Inputs: student logits (a leaf that requires grad) and teacher
logits, both (1, tokens, vocab) fp32, so `peak - inputs` is what the loss itself adds. On a CUDA device
(`--device cuda`) the peak is `torch.cuda.max_memory_allocated` instead.

Naive: `kl_div(log_softmax(S / T), log_softmax(T / T), log_target=True, reduction="batchmean") * T²`, the way most
distillation code (TRL's GKD among it) writes the forward KL. Chunked: `nexus.losses.logit_loss` with its default chunk.
"""
import argparse, json, os, platform, resource, statistics, subprocess, sys, time


def rss_bytes():
    with open("/proc/self/statm") as f: return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def timed_backward(fn, leaves, calls, cuda):
    "`fn()` and its backward pass `calls` times (gradients of `leaves` cleared first): times, last loss, peak bytes."
    import torch
    times, value = [], None
    for _ in range(calls):
        for x in leaves: x.grad = None
        t0 = time.perf_counter()
        loss = fn(); loss.backward()
        if cuda: torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
        value = float(loss.detach())
    peak = torch.cuda.max_memory_allocated() if cuda else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return times, value, peak


def run_case(case, tokens, vocab, temperature, calls, device, seed=0):
    "One case in this process: returns baseline, peak, per-call times and the loss value."
    import torch, torch.nn.functional as F
    from nexus.losses import logit_loss
    torch.manual_seed(seed)
    S = torch.randn(1, tokens, vocab, device=device, requires_grad=True)
    T = torch.randn(1, tokens, vocab, device=device) * 2
    cuda = device.startswith("cuda")
    if cuda: torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats(); base = torch.cuda.memory_allocated()
    else: base = rss_bytes()

    def naive():
        s, t = F.log_softmax(S / temperature, -1), F.log_softmax(T / temperature, -1)
        return F.kl_div(s.view(-1, vocab), t.view(-1, vocab), log_target=True, reduction="batchmean") * temperature ** 2

    def chunked(): return logit_loss(S, T, temperature=temperature)[0]

    times, value, peak = timed_backward({"naive": naive, "chunked": chunked}[case], [S], calls, cuda)
    return {"case": case, "tokens": tokens, "vocab": vocab, "device": device, "inputs_bytes": base, "peak_bytes": peak,
            "added_bytes": peak - base, "times_s": times, "loss": value, "threads": torch.get_num_threads()}


def subprocess_case(args, case, tokens):
    cmd = [sys.executable, os.path.abspath(__file__), "--one", case, "--tokens", str(tokens), "--vocab", str(args.vocab),
           "--temperature", str(args.temperature), "--calls", str(args.calls), "--device", args.device]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode: raise SystemExit(f"{case} at {tokens} tokens failed:\n{r.stderr}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tokens", type=int, nargs="+", default=[4096, 8192])
    p.add_argument("--vocab", type=int, default=49152)
    p.add_argument("--temperature", type=float, default=2.0)
    p.add_argument("--repeats", type=int, default=3, help="fresh subprocesses per case and size, naive and chunked alternating")
    p.add_argument("--calls", type=int, default=2, help="forward+backward calls per subprocess (all timed; the first pays the page faults)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--output", help="write the JSON results here")
    p.add_argument("--one", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        print(json.dumps(run_case(args.one, args.tokens[0], args.vocab, args.temperature, args.calls, args.device)))
        return
    import torch
    GB = 2 ** 30
    results = {"command": " ".join([os.path.basename(sys.executable)] + sys.argv), "machine": {"cpus": os.cpu_count(),
               "platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
               "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GB, 1)},
               "method": ("peak: " + ("torch.cuda.max_memory_allocated" if args.device.startswith("cuda") else
                          "ru_maxrss of a fresh subprocess per run") + "; time: wall clock of forward+backward, every call"),
               "runs": [], "summary": []}
    if not args.device.startswith("cuda"): results["cuda"] = "not measured" + ("" if torch.cuda.is_available() else ": no CUDA device on this machine")
    for tokens in args.tokens:
        runs = {"naive": [], "chunked": []}
        for r in range(args.repeats):
            for case in (("naive", "chunked") if r % 2 == 0 else ("chunked", "naive")):
                out = subprocess_case(args, case, tokens)
                runs[case].append(out); results["runs"].append(out)
                print(f"{tokens:>6} tokens {case:>8}: peak {out['peak_bytes'] / GB:6.2f} GiB (inputs {out['inputs_bytes'] / GB:5.2f}, "
                      f"added {out['added_bytes'] / GB:5.2f}), times {', '.join(f'{t:.2f}' for t in out['times_s'])} s, loss {out['loss']:.6f}", flush=True)
        med = lambda case, key: statistics.median(x[key] for x in runs[case])
        t_med = lambda case: statistics.median(t for x in runs[case] for t in x["times_s"])
        t_min = lambda case: min(t for x in runs[case] for t in x["times_s"])
        s = {"tokens": tokens, "vocab": args.vocab, "device": args.device,
             "naive_peak_gib": med("naive", "peak_bytes") / GB, "chunked_peak_gib": med("chunked", "peak_bytes") / GB,
             "naive_added_gib": med("naive", "added_bytes") / GB, "chunked_added_gib": med("chunked", "added_bytes") / GB,
             "naive_time_s_median": t_med("naive"), "chunked_time_s_median": t_med("chunked"),
             "naive_time_s_min": t_min("naive"), "chunked_time_s_min": t_min("chunked"),
             "loss_naive": runs["naive"][0]["loss"], "loss_chunked": runs["chunked"][0]["loss"]}
        s["peak_ratio"] = s["chunked_peak_gib"] / s["naive_peak_gib"]
        s["added_ratio"] = s["chunked_added_gib"] / s["naive_added_gib"]
        s["time_ratio_median"] = s["chunked_time_s_median"] / s["naive_time_s_median"]
        s["time_ratio_min"] = s["chunked_time_s_min"] / s["naive_time_s_min"]
        results["summary"].append(s)
        print(f"{tokens:>6} tokens: peak ratio {s['peak_ratio']:.3f} (added-memory ratio {s['added_ratio']:.3f}), "
              f"time ratio {s['time_ratio_median']:.3f} median / {s['time_ratio_min']:.3f} best", flush=True)
    if args.output:
        with open(args.output, "w") as f: json.dump(results, f, indent=1)


if __name__ == "__main__": main()
