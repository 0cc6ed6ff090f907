"""The loss with −∞ logits: a masked vocabulary, a logit processor or an fp16 overflow, on the student's side or both.

0 · log 0 = 0 on both sides: identical distributions have divergence 0; values and gradients are finite wherever the
mathematics is, for every divergence, in the chunked kernel and in plain autograd alike (and the two agree). Where
only one side rules a token out, reverse KL (or forward KL, mirrored) is +∞ as the notebook says: astronomically large
per token, inf once summed. A cross-entropy that is only logged may be infinite without making the total nan. The
logged cross-entropy of a student whose head is wider than the teacher's is the one over the shared vocabulary, as
documented."""
import math
import pytest, torch
import torch.nn.functional as F
from nexus.divergences import DIVERGENCES, LOG_ZERO, check_divergence
from nexus.losses import DistillationLoss, logit_loss, token_divergence, token_mask

NEG = -float("inf")
CHUNKS = [0, 1, 3, None]  # plain autograd, and the kernel with chunks of 1, 3 and its default


def batch(seed=0, B=2, L=7, V=23, masked=(18, 23), dtype=torch.float32):
    "Student logits masking the token ids in `range(*masked)` at every position, labels that avoid them, a mask."
    g = torch.Generator().manual_seed(seed)
    S = torch.randn(B, L, V, generator=g) * 2
    S[..., masked[0]:masked[1]] = NEG
    labels = torch.randint(0, masked[0], (B, L), generator=g)
    labels[0, :2] = -100
    am = torch.ones(B, L, dtype=torch.long)
    am[1, -2:] = 0
    return S.to(dtype), labels, am


@pytest.mark.parametrize("chunk", CHUNKS)
@pytest.mark.parametrize("kind", list(DIVERGENCES))
def test_identical_masked_distributions_give_zero_and_finite_gradients(kind, chunk):
    S, labels, am = batch()
    x = S.clone().requires_grad_()
    total, parts = logit_loss(x, S, labels, am, divergence=kind, chunk_size=chunk, temperature=2.0)
    grad, = torch.autograd.grad(total, x)
    assert abs(total.item()) < 1e-5 and math.isfinite(float(parts["ce"]))
    assert bool(grad.isfinite().all()) and float(grad.abs().max()) < 1e-5


@pytest.mark.parametrize("kind", list(DIVERGENCES))
@pytest.mark.parametrize("beta", [0.0, 0.3, 1.0])
@pytest.mark.parametrize("tau", [1.0, 2.0])
def test_chunked_equals_plain_with_masked_logits(kind, beta, tau):
    "The student masks some tokens everywhere and others here and there, as a logit processor would; so does the teacher."
    S, labels, am = batch(seed=1)
    g = torch.Generator().manual_seed(2)
    S[torch.rand(S.shape, generator=g) < 0.1] = NEG  # scattered masks
    S[..., 0] = torch.randn(S.shape[:2], generator=g)  # every row keeps a token
    T = torch.randn(S.shape, generator=g) * 2
    T[S == NEG] = NEG
    labels = labels.masked_fill((torch.gather(S, 2, labels.clamp(min=0)[..., None])[..., 0] == NEG), 0)
    results = []
    for chunk in CHUNKS:
        x = S.clone().requires_grad_()
        total, parts = logit_loss(x, T, labels, am, divergence=kind, jsd_beta=beta, temperature=tau,
                                  ce_weight=0.5, chunk_size=chunk)
        grad, = torch.autograd.grad(total, x)
        assert math.isfinite(float(total.detach())) and bool(grad.isfinite().all())
        assert float(grad[S == NEG].abs().max()) == 0.0  # a masked token's logit gets no gradient
        results.append((total.detach(), parts["logits"], parts["ce"], grad))
    for r in results[1:]:
        for a, b in zip(r, results[0]): assert torch.allclose(a, b, rtol=1e-5, atol=1e-6), (a, b)


@pytest.mark.parametrize("kind", list(DIVERGENCES))
def test_a_student_that_rules_out_what_the_teacher_allows(kind):
    """The mirror case: forward KL is +∞ there (astronomically large computed), the others finite; no path gives nan,
    value or gradient."""
    S, labels, am = batch(seed=3)
    T = torch.randn(S.shape, generator=torch.Generator().manual_seed(4))  # the teacher allows every token
    for chunk in CHUNKS:
        x = S.clone().requires_grad_()
        total, parts = logit_loss(x, T, labels, am, divergence=kind, chunk_size=chunk)
        grad, = torch.autograd.grad(total, x)
        assert not math.isnan(float(total.detach())) and bool(grad.isfinite().all())
        assert (float(total.detach()) > 1e30) == (kind == "forward_kl"), (kind, float(total.detach()))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_overflow_to_minus_inf(dtype):
    "fp16/bf16 logits that overflowed to -inf: the loss is computed in fp32 and stays finite, its gradient too."
    S, labels, am = batch(dtype=dtype)
    T = S.float().clone()
    T[..., :18] += torch.randn(T[..., :18].shape, generator=torch.Generator().manual_seed(3))
    for kind in DIVERGENCES:
        x = S.clone().requires_grad_()
        total, _ = logit_loss(x, T, labels, am, divergence=kind)
        grad, = torch.autograd.grad(total, x)
        assert math.isfinite(float(total.detach())) and grad.dtype == dtype and bool(grad.isfinite().all())


def test_token_divergence_with_student_infinities():
    s = torch.randn(5, 9)
    s[:, 6:] = NEG
    t = s.clone()
    t[:, :6] += 0.5 * torch.randn(5, 6)
    for kind in DIVERGENCES:
        d = token_divergence(s, t, kind)
        assert bool(d.isfinite().all()) and bool((d >= -1e-6).all())
        assert float(token_divergence(s, s, kind).abs().max()) < 1e-5


def test_reverse_kl_against_a_masked_teacher_is_infinite():
    "As the notebook says: +∞ where the teacher rules out a token the student gives mass; the JSD stays finite."
    S, labels, am = batch(masked=(23, 23))  # the student masks nothing
    T = torch.randn(S.shape)
    T[..., 18:] = NEG
    per_token = token_divergence(S.reshape(-1, 23), T.reshape(-1, 23), "reverse_kl")
    assert bool((per_token > 1e30).all())
    for chunk in (0, None):
        assert float(logit_loss(S, T, labels, am, divergence="reverse_kl", chunk_size=chunk)[0]) == math.inf
        assert math.isfinite(float(logit_loss(S, T, labels, am, divergence="jsd", chunk_size=chunk)[0]))
        assert math.isfinite(float(logit_loss(S, T, labels, am, divergence="forward_kl", chunk_size=chunk)[0]))


@pytest.mark.parametrize("chunk", [0, None])
def test_a_label_the_student_rules_out(chunk):
    "Its cross-entropy is +∞: logged as such, and the total stays finite while ce_weight is 0 (no 0 · ∞ = nan)."
    S, labels, am = batch()
    labels[0, 4] = 20  # a masked token
    total, parts = logit_loss(S, S, labels, am, chunk_size=chunk)
    assert float(parts["ce"]) == math.inf and math.isfinite(float(total.detach()))
    x = S.clone().requires_grad_()
    total, _ = logit_loss(x, S, labels, am, chunk_size=chunk, ce_weight=0.5)
    assert float(total.detach()) == math.inf
    grad, = torch.autograd.grad(total, x)
    assert bool(grad.isfinite().all())


def test_the_whole_loss_module_with_masked_student_logits():
    S, labels, am = batch()
    loss = DistillationLoss(hidden_weight=0.0, critical_layers=None, ce_weight=0.1, divergence="jsd")
    x = S.clone().requires_grad_()
    out = loss(x, S + 0.0, labels, am)
    out.loss.backward()
    assert all(math.isfinite(float(v)) for v in out.components.values()) and bool(x.grad.isfinite().all())


def test_check_divergence_covers_minus_inf_rows_for_every_entry():
    for name in DIVERGENCES: assert check_divergence(name, rows=8, vocab=13, seed=5)


def test_logged_ce_of_a_wider_student_head_is_over_the_shared_vocabulary():
    """The documented choice: with a student head wider than the teacher's (padding rows) and no vocab_size, `ce` is
    the cross-entropy over the shared vocabulary, which is the student's own (full-head) loss plus the log of the
    probability it keeps on the shared tokens."""
    g = torch.Generator().manual_seed(4)
    B, L, V = 2, 6, 30
    S = torch.randn(B, L, V + 5, generator=g)
    T = torch.randn(B, L, V, generator=g)
    labels = torch.randint(0, V, (B, L), generator=g)
    mask, targets = token_mask(labels)
    for chunk in (0, None):
        ce = logit_loss(S, T, labels, chunk_size=chunk)[1]["ce"]
        shared = F.cross_entropy(S[mask][:, :V], targets[mask])
        own = F.cross_entropy(S[mask], targets[mask])
        kept = (torch.logsumexp(S[mask][:, :V], -1) - torch.logsumexp(S[mask], -1)).mean()
        assert torch.allclose(ce, shared, atol=1e-6) and torch.allclose(ce, own + kept, atol=1e-5)
        assert float(ce) < float(own)
