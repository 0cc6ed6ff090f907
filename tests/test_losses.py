"""nexus.losses against plain float64 references, on random shapes, settings and masks (Hypothesis).

The notebook (nbs/08_losses.ipynb) shows each term on one example; these tests sweep the settings: every divergence,
temperature, β, T² on or off, cross-entropy weight, chunk size (dividing the token count or not), bf16 inputs, vocabulary
padding, masks, several teachers, hidden-state and anchor terms, calibration statistics."""
import math, os
import pytest, torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st, HealthCheck

from nexus.losses import (DIVERGENCES, DistillConfig, DistillationLoss, LossInputError, LossConfigError, logit_loss,
                          token_mask, teacher_statistics, resolve_layer_map)

# Deterministic examples by default, so CI can't flake; NEXUS_HYPOTHESIS_EXAMPLES=2000 NEXUS_HYPOTHESIS_RANDOM=1 explores further.
EXAMPLES, RANDOM = int(os.environ.get("NEXUS_HYPOTHESIS_EXAMPLES", 60)), bool(os.environ.get("NEXUS_HYPOTHESIS_RANDOM"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=not RANDOM, suppress_health_check=[HealthCheck.too_slow])
FEW = settings(SETTINGS, max_examples=max(EXAMPLES // 2, 10))


def close(a, b, rtol=1e-5, atol=0.0):
    "`a` equals `b` within `rtol` of b's largest magnitude (plus `atol`)."
    a, b = torch.as_tensor(a).detach().double(), torch.as_tensor(b).detach().double()
    assert a.shape == b.shape, (a.shape, b.shape)
    err, scale = float((a - b).abs().max()) if a.numel() else 0.0, float(b.abs().max()) if b.numel() else 0.0
    assert err <= rtol * scale + atol, f"error {err:.3g} > {rtol} × {scale:.3g} + {atol:.3g}"


def grad_atol(cfg, labels, am, shape):
    "fp32's resolution of a logit gradient entry: gradients are (weight / counted tokens) × O(1/T) combinations of probabilities."
    n = max(int(token_mask(labels, am, shape, cfg.shift_labels)[0].sum()), 1)
    return 1e-6 * (cfg.logits_weight * (cfg.temperature ** 2 if cfg.t2_scaling else 1) + cfg.ce_weight) / (n * cfg.temperature)


def ref_divergence(s, t, kind, beta, tau):
    "Per-position divergence, float64, straight from the definitions (p: teacher, q: student)."
    ls, lt = F.log_softmax(s.double() / tau, -1), F.log_softmax(t.double() / tau, -1)
    p, q = lt.exp(), ls.exp()
    if kind == "jsd" and beta in (0, 1): kind = "forward_kl" if beta == 0 else "reverse_kl"
    if kind == "forward_kl": return (p * (lt - ls)).sum(-1)
    if kind == "reverse_kl": return (q * (ls - lt)).sum(-1)
    m = beta * p + (1 - beta) * q
    return beta * (p * (lt - m.log())).sum(-1) + (1 - beta) * (q * (ls - m.log())).sum(-1)


def ref_logit_loss(S, T, labels, am, cfg, V):
    "The logit term by hand: full tensors, float64, masked mean over counted positions."
    mask, targets = token_mask(labels, am, tuple(S.shape[:2]), cfg.shift_labels)
    s = S.double()[..., :V]
    d = ref_divergence(s, T[..., :V], cfg.divergence, cfg.jsd_beta, cfg.temperature)
    n = mask.sum().clamp_min(1)
    div = (d * mask).sum() / n * (cfg.temperature ** 2 if cfg.t2_scaling else 1)
    if labels is None: return cfg.logits_weight * div, div, None
    ce = (F.cross_entropy(s.reshape(-1, V), targets.reshape(-1), reduction="none").reshape(mask.shape) * mask).sum() / n
    return cfg.logits_weight * div + cfg.ce_weight * ce, div, ce


@st.composite
def logit_case(draw):
    B, L, V = draw(st.integers(1, 3)), draw(st.integers(1, 9)), draw(st.integers(2, 40))
    pad_s, pad_t = draw(st.integers(0, 8)), draw(st.integers(0, 8))
    seed = draw(st.integers(0, 2 ** 16))
    g = torch.Generator().manual_seed(seed)
    scale = draw(st.sampled_from([0.5, 1.0, 3.0]))
    S = torch.randn(B, L, V + pad_s, generator=g) * scale
    T = torch.randn(B, L, V + pad_t, generator=g) * scale
    am = (torch.rand(B, L, generator=g) > draw(st.sampled_from([0.0, 0.3]))).long()
    labels = None
    if draw(st.booleans()):
        labels = torch.randint(0, V, (B, L), generator=g)
        labels[torch.rand(B, L, generator=g) < 0.2] = -100
    cfg = DistillConfig(divergence=draw(st.sampled_from(list(DIVERGENCES))), jsd_beta=draw(st.sampled_from([0.0, 0.1, 0.5, 0.9, 1.0])),
                        temperature=draw(st.sampled_from([0.5, 1.0, 2.0, 3.7])), t2_scaling=draw(st.booleans()),
                        logits_weight=draw(st.sampled_from([1.0, 0.3])), ce_weight=draw(st.sampled_from([0.0, 0.5])),
                        chunk_size=draw(st.sampled_from([0, 1, 2, 3, 7, 1000])), shift_labels=draw(st.booleans()),
                        vocab_size=V if draw(st.booleans()) else None)
    return S, T, labels, am, cfg, V, draw(st.sampled_from([torch.float32, torch.bfloat16]))


@SETTINGS
@given(logit_case())
def test_logit_term_matches_float64_reference(case):
    S, T, labels, am, cfg, V, dtype = case
    S = S.to(dtype).requires_grad_()
    T = T.to(dtype)
    if cfg.vocab_size is None: V = min(S.shape[-1], T.shape[-1])
    total, parts = logit_loss(S, T, labels, am, config=cfg)
    ref_total, ref_div, ref_ce = ref_logit_loss(S.detach().float(), T.float(), labels, am, cfg, V)
    atol = 1e-6 * (cfg.temperature ** 2 if cfg.t2_scaling else 1)
    close(total, ref_total, atol=atol)
    close(parts["logits"], ref_div, atol=atol)
    if labels is not None: close(parts["ce"], ref_ce, atol=1e-6)
    S_ref = S.detach().double().requires_grad_()
    ref = ref_logit_loss(S_ref, T.double(), labels, am, cfg, V)[0]
    if not ref.requires_grad: return
    grad, = torch.autograd.grad(total, S)
    ref_grad, = torch.autograd.grad(ref, S_ref)
    assert grad.dtype == dtype
    close(grad.float(), ref_grad, rtol=1e-5 if dtype == torch.float32 else 1e-2, atol=grad_atol(cfg, labels, am, tuple(S.shape[:2])))


@SETTINGS
@given(logit_case(), st.integers(1, 12))
def test_chunked_equals_unchunked(case, chunk):
    S, T, labels, am, cfg, _, _ = case
    S = S.requires_grad_()
    plain = DistillConfig(**{**cfg.__dict__, "chunk_size": 0})
    chunked = DistillConfig(**{**cfg.__dict__, "chunk_size": chunk})
    a, pa = logit_loss(S, T, labels, am, config=plain)
    b, pb = logit_loss(S, T, labels, am, config=chunked)
    close(b, a, 1e-5, 1e-7)
    if a.requires_grad:
        close(torch.autograd.grad(b, S)[0], torch.autograd.grad(a, S)[0], 1e-5, grad_atol(cfg, labels, am, tuple(S.shape[:2])))


@SETTINGS
@given(logit_case())
def test_masked_positions_are_never_read(case):
    S, T, labels, am, cfg, _, _ = case
    mask = token_mask(labels, am, tuple(S.shape[:2]), cfg.shift_labels)[0]
    S = S.requires_grad_()
    S_bad, T_bad = S.detach().clone(), T.clone()
    S_bad[~mask], T_bad[~mask] = float("nan"), float("inf")
    S_bad.requires_grad_()
    a, _ = logit_loss(S, T, labels, am, config=cfg)
    b, _ = logit_loss(S_bad, T_bad, labels, am, config=cfg)
    assert torch.equal(a.detach(), b.detach())
    if a.requires_grad:
        ga, gb = torch.autograd.grad(a, S)[0], torch.autograd.grad(b, S_bad)[0]
        assert torch.equal(ga, gb) and float(ga[~mask].abs().sum()) == 0


@FEW
@given(st.integers(0, 2 ** 16), st.sampled_from(list(DIVERGENCES)), st.sampled_from([1.0, 2.0]), st.booleans())
def test_several_teachers(seed, kind, tau, compact):
    g = torch.Generator().manual_seed(seed)
    B, L, V, K = 4, 5, 12, 3
    S = torch.randn(B, L, V, generator=g, requires_grad=True)
    Ts = [torch.randn(B, L, V, generator=g) * 2 for _ in range(K)]
    am = torch.ones(B, L, dtype=torch.long); am[0, 3:] = 0
    cfg = DistillConfig(divergence=kind, temperature=tau, chunk_size=3)
    route = torch.randint(0, K, (B,), generator=g)
    given_ = [T[route == k] for k, T in enumerate(Ts)] if compact else Ts
    choice, _ = logit_loss(S, given_, None, am, teacher_weights=route, config=cfg)
    assembled = torch.stack([Ts[int(k)][b] for b, k in enumerate(route)])
    close(choice, ref_logit_loss(S.detach(), assembled, None, am, cfg, V)[0])
    close(torch.autograd.grad(choice, S)[0], torch.autograd.grad(ref_logit_loss(S, assembled, None, am, cfg, V)[0], S)[0], 1e-5, 1e-9)
    w = torch.rand(B, K, generator=g); w[0, 1] = 0; w = w / w.sum(1, keepdim=True)
    mix, _ = logit_loss(S, Ts, None, am, teacher_weights=w, config=cfg)
    p = sum(w[:, k, None, None] * F.softmax(Ts[k].double() / tau, -1) for k in range(K))
    ls, mask = F.log_softmax(S.double() / tau, -1), am.bool()
    q = ls.exp()
    if kind == "forward_kl": d = (p * (p.log() - ls)).sum(-1)
    elif kind == "reverse_kl": d = (q * (ls - p.log())).sum(-1)
    else:
        m = 0.5 * p + 0.5 * q
        d = 0.5 * (p * (p.log() - m.log())).sum(-1) + 0.5 * (q * (ls - m.log())).sum(-1)
    ref = d[mask].mean() * tau ** 2
    close(mix, ref)
    close(torch.autograd.grad(mix, S)[0], torch.autograd.grad(ref, S)[0], 1e-5, 1e-9)


def test_teacher_that_requires_grad_takes_the_autograd_path():
    S, T = torch.randn(2, 4, 10, requires_grad=True), torch.randn(2, 4, 10, requires_grad=True)
    loss, _ = logit_loss(S, T, divergence="jsd", jsd_beta=0.3)
    ref = ref_logit_loss(S, T, None, None, DistillConfig(divergence="jsd", jsd_beta=0.3), 10)[0]
    for a, b in zip(torch.autograd.grad(loss, [S, T]), torch.autograd.grad(ref, [S, T])): close(a, b)


def test_normalisers():
    S, T = torch.randn(2, 4, 10, requires_grad=True), torch.randn(2, 4, 10)
    own, _ = logit_loss(S, T)
    close(logit_loss(S, T, num_tokens=16)[0], own / 2)
    close(logit_loss(S, T, num_tokens={"logits": 4, "hidden": 99})[0], own * 2)
    with pytest.raises(LossInputError, match="num_tokens has no 'logits' count"): logit_loss(S, T, num_tokens={"hidden": 3})
    with pytest.raises(LossInputError, match="must be a finite count"): logit_loss(S, T, num_tokens=-1)
    empty, _ = logit_loss(S, T, attention_mask=torch.zeros(2, 4, dtype=torch.long))
    assert float(empty) == 0.0


# --- hidden states, projections, surge, anchors: tiny random "models" given as hidden-state tuples --------------

def hidden_case(seed, B=3, L=6, Ls=2, Lt=4, ds=8, dt=12, V=20):
    g = torch.Generator().manual_seed(seed)
    s_hs = [torch.randn(B, L, ds, generator=g, dtype=torch.float64).float().requires_grad_() for _ in range(Ls + 1)]
    t_hs = [torch.randn(B, L, dt, generator=g) * (1 + i) for i in range(Lt + 1)]
    S, T = torch.randn(B, L, V, generator=g, requires_grad=True), torch.randn(B, L, V, generator=g)
    am = torch.ones(B, L, dtype=torch.long); am[1, 4:] = 0; am[2, :2] = 0
    return s_hs, t_hs, S, T, am


def ref_hidden_layers(s_hs, t_hs, am, pairs, W, kind):
    "Each (student, teacher) hidden-state pair's loss: project, keep the real tokens, average (float64)."
    out, real = [], am.bool()
    for k, (si, ti) in enumerate(pairs):
        s = s_hs[si].double() @ W[k].double().T if W is not None else s_hs[si].double()
        s, t = s[real], t_hs[ti].double()[real]
        out.append(((s - t) ** 2).mean() if kind == "mse" else (((s - t) ** 2).sum(-1) / (t ** 2).sum(-1)).mean())
    return torch.stack(out)


@FEW
@given(st.integers(0, 2 ** 16), st.sampled_from(["mse", "nmse"]), st.sampled_from(["mean", "sum"]), st.booleans(),
       st.sampled_from([None, [3, 2], [(0, 0), (1, 3), (1, 1)]]), st.sampled_from([None, [3], [1, 3]]))
def test_hidden_term_matches_reference(seed, kind, reduction, emb, layer_map, critical):
    s_hs, t_hs, S, T, am = hidden_case(seed)
    if critical and layer_map == [3, 2] and 1 in critical: critical = [3]
    loss = DistillationLoss(hidden_weight=1.0, student=(2, 8), teachers=(4, 12), logits_weight=0, hidden_loss=kind, layer_reduction=reduction,
                            include_embeddings=emb, layer_map=layer_map, critical_layers=critical, critical_multiplier=7.0)
    pairs = resolve_layer_map(layer_map, 2, 4, emb)
    W = list(loss.parameters())
    assert len(W) == len(pairs)
    out = loss(S, T, attention_mask=am, student_hidden_states=s_hs, teacher_hidden_states=t_hs)
    layers = ref_hidden_layers(s_hs, t_hs, am, pairs, W, kind)
    mult = torch.tensor([7.0 if t - 1 in (critical or []) else 1.0 for _, t in pairs], dtype=torch.float64)
    ref = (mult * layers).sum() / (len(pairs) if reduction == "mean" else 1)
    close(out.loss, ref)
    used = sorted({s for s, _ in pairs})
    inputs = [s_hs[i] for i in used] + W
    for a, b in zip(torch.autograd.grad(out.loss, inputs), torch.autograd.grad(ref, inputs)): close(a, b)


@FEW
@given(st.integers(0, 2 ** 16), st.booleans())
def test_hidden_term_with_routing(seed, compact):
    "Two teachers of different widths: each sample's hidden-state loss comes from its own teacher (or the mixture's weights)."
    s_hs, t_a, S, T, am = hidden_case(seed, dt=12)
    _, t_b, _, _, _ = hidden_case(seed + 1, Lt=3, dt=6)
    loss = DistillationLoss(hidden_weight=1.0, student=(2, 8), teachers={"a": (4, 12), "b": (3, 6)}, logits_weight=0, critical_layers=None)
    route = torch.tensor([1, 0, 1])
    given_b = [h[route == 1] for h in t_b] if compact else t_b
    given_a = [h[route == 0] for h in t_a] if compact else t_a
    out = loss(S, {"a": T, "b": T}, attention_mask=am, student_hidden_states=s_hs, teacher_hidden_states={"b": given_b, "a": given_a},
               teacher_weights=route)
    n = am.sum()
    def part(name, t_hs, rows, w=None):
        pairs, projs = loss.pairs[name], list(loss.projections[name].values())
        m = am.clone(); m[[i for i in range(3) if i not in rows]] = 0
        if w is not None: m = m * w[:, None]
        vals = []
        for k, (si, ti) in enumerate(pairs):
            s, t = s_hs[si].double() @ projs[k].weight.double().T, t_hs[ti].double()
            vals.append(((((s - t) ** 2).sum(-1) / (t ** 2).sum(-1)) * m).sum() / n)
        return torch.stack(vals).mean()
    ref = part("a", t_a, [1]) + part("b", t_b, [0, 2])
    close(out.loss, ref)
    assert set(out.components) == {"total", "hidden", "hidden/a/0->1", "hidden/a/1->3", "hidden/b/0->0", "hidden/b/1->2"}
    inputs = s_hs[1:] + list(loss.parameters())
    for a, b in zip(torch.autograd.grad(out.loss, inputs), torch.autograd.grad(ref, inputs)): close(a, b)
    w = torch.tensor([[0.3, 0.7], [1.0, 0.0], [0.5, 0.5]])
    mix = loss(S, [T, T], attention_mask=am, student_hidden_states=s_hs, teacher_hidden_states=[t_a, t_b], teacher_weights=w)
    close(mix.loss, part("a", t_a, [0, 1, 2], w[:, 0]) + part("b", t_b, [0, 1, 2], w[:, 1]))


def test_anchor_term_matches_reference():
    from nexus.fixtures import tiny_model
    teacher = tiny_model("llama", seed=1, num_hidden_layers=4, hidden_size=64, intermediate_size=128)
    student = tiny_model("llama", seed=2)
    calib = [torch.randint(4, 320, (4, 16), generator=torch.Generator().manual_seed(i)) for i in range(2)]
    loss = DistillationLoss(student=student, teachers=teacher, logits_weight=0, hidden_weight=0, anchor_weight=1.0,
                            critical_layers=None, anchor_layers=[1, 3], anchor_rank=5)
    loss.calibrate(teacher, calib)
    ids = torch.randint(4, 320, (3, 10)); am = torch.ones_like(ids); am[0, 7:] = 0
    with torch.no_grad(): t_out = teacher(ids, attention_mask=am, output_hidden_states=True)
    s_hs = [h.detach().requires_grad_() for h in student(ids, attention_mask=am, output_hidden_states=True).hidden_states]
    out = loss(t_out.logits, t_out, attention_mask=am, student_hidden_states=s_hs)
    c, W = loss.calibration["teacher"], list(loss.parameters())
    real, ref = am.bool(), 0
    for i, (si, ti) in enumerate([(1, 2), (2, 4)]):
        e = (s_hs[si].double() @ W[i].double().T - t_out.hidden_states[ti].double())[real]
        a = ((e @ c.anchor_basis[i].double()) ** 2).sum(-1).mean() / c.anchor_variance[i].double()
        close(out.components[f"anchor/{ti - 1}"], a)
        ref = ref + c.anchor_importance[i].double() * a
    close(out.loss, ref)  # hidden_weight=0: the hidden term is computed (for logging, and so the projections get gradients) but not added
    inputs = s_hs[1:] + W
    for a, b in zip(torch.autograd.grad(out.loss, inputs), torch.autograd.grad(ref, inputs)): close(a, b)


def test_calibration_statistics_match_plain_computation():
    "Block Influence from hooks equals 1 − cos of consecutive hidden states (all but the last, normed, one); subspaces equal PCA."
    from nexus.fixtures import tiny_model
    model = tiny_model("qwen3", seed=3, num_hidden_layers=3)
    ids = torch.randint(4, 320, (3, 9)); am = torch.ones_like(ids); am[1, 6:] = 0
    stats = teacher_statistics(model, [{"input_ids": ids, "attention_mask": am}], layers=[0, 2], rank=3)
    with torch.no_grad(): hs = model(ids, attention_mask=am, output_hidden_states=True).hidden_states
    real = am.bool()
    for i in range(2):
        close(stats.block_influence[i], 1 - F.cosine_similarity(hs[i][real], hs[i + 1][real], dim=-1).mean(), 1e-5)
    for l in (0, 2):
        x = hs[l + 1][real].double()
        vals, vecs = torch.linalg.eigh(torch.cov(x.T, correction=0))
        U = vecs[:, -3:]
        close(stats.subspaces[l] @ stats.subspaces[l].T, U @ U.T, 1e-4)
        close(stats.variances[l], vals[-3:].flip(0), 1e-4)


def test_sample_logit_loss():
    S, T = torch.randn(3, 6, 15), torch.randn(3, 6, 15)
    am = torch.ones(3, 6, dtype=torch.long); am[2, 2:] = 0
    loss = DistillationLoss(hidden_weight=0, divergence="reverse_kl", temperature=2.0, chunk_size=4)
    d = ref_divergence(S, T, "reverse_kl", 0.5, 2.0) * 4
    ref = torch.stack([d[b][am[b].bool()].mean() for b in range(3)])
    close(loss.sample_logit_loss(S, T, attention_mask=am), ref)


def test_errors():
    s_hs, t_hs, S, T, am = hidden_case(0)
    loss = DistillationLoss(hidden_weight=1.0, student=(2, 8), teachers={"a": (4, 12), "b": (4, 12)}, critical_layers=None)
    with pytest.raises(LossInputError, match=r"teacher outputs has no entry for teacher\(s\) \['b'\]"):
        loss(S, {"a": T}, student_hidden_states=s_hs, teacher_hidden_states={"a": t_hs}, teacher_weights=torch.tensor([0, 0, 0]))
    with pytest.raises(LossInputError, match="holds 3 teacher"): loss(S, [T, T, T], teacher_weights=torch.tensor([0, 0, 0]))
    with pytest.raises(LossInputError, match=r"hidden states cover 2 samples; expected 3 or the samples routed to it"):
        loss(S, [T, T], student_hidden_states=s_hs, teacher_hidden_states=[[h[:2] for h in t_hs], t_hs], teacher_weights=torch.tensor([0, 1, 1]))
    with pytest.raises(LossConfigError, match="say which one with teacher="): loss.calibrate(stats=None)
    with pytest.raises(LossConfigError, match="names teacher"): DistillationLoss(hidden_weight=1.0, student=(2, 8), teachers={"a": (4, 12)}, critical_layers={"z": [1]})
    with pytest.raises(LossConfigError, match="must be a non-empty string without dots"): DistillationLoss(hidden_weight=1.0, student=(2, 8), teachers={"a.b": (4, 12)})
    with pytest.raises(LossInputError, match=r"student logits have shape \(6, 20\); expected \(batch, seq, vocab\)"): logit_loss(S[0], T[0])
    with pytest.raises(LossInputError, match="labels must hold integer token ids"): logit_loss(S, T, torch.zeros(3, 6))


def test_calibration_errors():
    from nexus.fixtures import tiny_model
    from nexus.losses import decoder_layers
    teacher = tiny_model("llama", seed=1, num_hidden_layers=4, hidden_size=64, intermediate_size=128)
    calib = [torch.randint(4, 320, (2, 8))]
    loss = DistillationLoss(hidden_weight=1.0, student=(2, 32), teachers=teacher, critical_layers=None, anchor_weight=1.0, anchor_layers=[3],
                            anchor_rank=4)
    with pytest.raises(LossInputError, match=r"stats lack the subspaces of anchored layers \[3\]"): loss.calibrate(stats=teacher_statistics(teacher, calib))
    with pytest.raises(LossInputError, match="fewer than anchor_rank=4 directions"): loss.calibrate(stats=teacher_statistics(teacher, calib, layers=[3], rank=2))
    with pytest.raises(LossConfigError, match="anchor_rank=99 exceeds"):
        DistillationLoss(hidden_weight=1.0, student=(2, 32), teachers=teacher, critical_layers=None, anchor_weight=1.0, anchor_layers=[3],
                         anchor_rank=99).calibrate(teacher, calib)
    with pytest.raises(LossConfigError, match="calibration serves"): DistillationLoss(student=(2, 32), teachers=teacher, hidden_weight=0).calibrate(teacher, calib)
    with pytest.raises(LossInputError, match="held no tokens"):
        teacher_statistics(teacher, [{"input_ids": torch.ones(1, 4, dtype=torch.long), "attention_mask": torch.zeros(1, 4, dtype=torch.long)}])
    with pytest.raises(LossInputError, match="Linear has no config.num_hidden_layers"): decoder_layers(torch.nn.Linear(2, 2))
    with pytest.raises(LossInputError, match="a calibration batch must be a tensor of token ids or a dict"): teacher_statistics(teacher, ["some text"])
    hooks = lambda: [(len(b._forward_hooks), len(b._forward_pre_hooks)) for b in decoder_layers(teacher)]
    before = hooks()  # (transformers installs its own output-recording hooks; ours must be gone afterwards)
    stats = loss.calibrate(teacher, calib)
    assert hooks() == before
    assert loss.calibration["teacher"].anchor_basis.shape == (1, 64, 4) and stats.tokens == 16


def test_teacher_without_samples():
    "A routed teacher that teaches no sample of the batch may hand over zero-row outputs (a trainer runs it on nothing)."
    s_hs, t_a, S, T, am = hidden_case(3)
    _, t_b, _, _, _ = hidden_case(4, Lt=3, dt=6)
    loss = DistillationLoss(hidden_weight=1.0, student=(2, 8), teachers={"a": (4, 12), "b": (3, 6)}, critical_layers=None)
    route = torch.tensor([0, 0, 0])
    out = loss(S, {"a": T, "b": T[:0]}, attention_mask=am, student_hidden_states=s_hs,
               teacher_hidden_states={"a": t_a, "b": [h[:0] for h in t_b]}, teacher_weights=route)
    solo = DistillationLoss(hidden_weight=1.0, student=(2, 8), teachers=(4, 12), critical_layers=None)
    solo.projections["teacher"].load_state_dict(loss.projections["a"].state_dict())
    ref = solo(S, T, attention_mask=am, student_hidden_states=s_hs, teacher_hidden_states=t_a)
    close(out.loss, ref.loss)
    assert float(out.components["hidden/b/0->0"]) == 0.0
