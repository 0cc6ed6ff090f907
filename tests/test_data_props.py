"""Property tests of the data module: fair shares, sampling, held-out splits, tokenising, packing and collating keep
their promises for any input; csv, txt and jsonl files read back what was written."""
import csv, io, json, tempfile
from collections import Counter
from pathlib import Path
from hypothesis import given, settings, strategies as st, HealthCheck
from nexus.data import (DistillCollator, Example, fair_shares, pack_examples, read_records, sample_examples, split_heldout,
                        tokenize_examples)
from nexus.fixtures import tiny_tokenizer

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
EXPERTS = st.sampled_from(["coder", "general", "translation", None])
TOK = tiny_tokenizer()

@SETTINGS
@given(st.dictionaries(st.text(min_size=1, max_size=5), st.integers(0, 60), max_size=6), st.integers(0, 400), st.integers(0, 2**32 - 1))
def test_fair_shares(sizes, n, seed):
    s = fair_shares(sizes, n, seed)
    assert s == fair_shares(sizes, n, seed)
    assert sum(s.values()) == min(n, sum(sizes.values()))
    assert all(0 <= s[k] <= sizes[k] for k in sizes)
    for a in sizes:  # a group below its size has at least as many as any other, less one
        if s[a] < sizes[a]: assert all(s[b] <= s[a] + 1 for b in sizes)

examples = st.lists(st.builds(Example, st.just(""), st.text(max_size=8), EXPERTS, st.just(""), st.sampled_from(["d1", "d2", "d3", None])),
                    max_size=60).map(lambda xs: [Example(x.prompt, f"{i}:{x.completion}", x.expert, x.source, x.dataset) for i, x in enumerate(xs)])

@SETTINGS
@given(examples, st.integers(0, 80), st.integers(0, 10**6), st.randoms())
def test_sample_examples(exs, n, seed, rnd):
    s = sample_examples(exs, n, seed)
    assert len(s) == min(n, len(exs)) and len(set(s)) == len(s) and set(s) <= set(exs)
    shuffled = list(exs)
    rnd.shuffle(shuffled)
    assert s == sample_examples(shuffled, n, seed)  # the order of the input doesn't matter
    have, got = Counter(e.expert for e in exs), Counter(e.expert for e in s)
    for a in have:  # fair across experts: an expert left short has at least as many as any other, less one
        if got[a] < have[a]: assert all(got[b] <= got[a] + 1 for b in have)

@SETTINGS
@given(examples.filter(lambda xs: len(xs) >= 2), st.data())
def test_split_heldout(exs, data):
    k = data.draw(st.one_of(st.integers(1, len(exs) - 1), st.floats(0.01, 0.99)))
    train, held = split_heldout(exs, k, seed=3)
    assert sorted(map(repr, train + held)) == sorted(map(repr, exs)) and not set(train) & set(held)
    assert len(held) == (k if isinstance(k, int) else min(max(round(k * len(exs)), 1), len(exs) - 1))
    assert [e for e in exs if e in set(train)] == train  # input order kept

texts = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)

@SETTINGS
@given(st.lists(st.tuples(texts, texts, EXPERTS), min_size=1, max_size=8), st.integers(2, 48), st.booleans())
def test_tokenize_examples(pairs, L, completion_only):
    exs = [Example(p, c, e) for p, c, e in pairs]
    expected = []
    for ex in exs:
        p, c = TOK(ex.prompt, add_special_tokens=False)["input_ids"], TOK(ex.completion, add_special_tokens=False)["input_ids"]
        if not c or c[-1] != TOK.eos_token_id: c = c + [TOK.eos_token_id]  # EOS ends each document, once
        if completion_only and len(p) >= L: continue  # nothing left to learn: dropped (with a warning)
        ids = (p + c)[:L]
        expected.append({"input_ids": ids, "labels": ([-100] * len(p) + c)[:L] if completion_only else ids, "expert": ex.expert})
    assert tokenize_examples(exs, TOK, L, completion_only) == expected  # labels -100 exactly on the prompt, cut at L

items = st.lists(st.tuples(st.lists(st.integers(3, 319), min_size=1, max_size=30), st.lists(st.booleans(), min_size=30, max_size=30), EXPERTS),
                 max_size=12).map(lambda xs: [{"input_ids": ids, "labels": [-100 if m else t for t, m in zip(ids, mask)], "expert": e} for ids, mask, e in xs])

@SETTINGS
@given(items, st.integers(2, 40), st.sampled_from([None, 2]), st.booleans())
def test_pack_examples(its, L, eos, drop):
    blocks = pack_examples(its, L, eos_token_id=eos, drop_remainder=drop)
    for e in {it["expert"] for it in its}:
        ids, labels = [], []
        for it in (x for x in its if x["expert"] == e):
            if ids and eos is not None and ids[-1] != eos: ids, labels = ids + [eos], labels + [-100]
            ids, labels = ids + it["input_ids"], labels + it["labels"]
        mine = [b for b in blocks if b["expert"] == e]  # a block holds one expert's tokens only
        got_ids, got_labels = sum((b["input_ids"] for b in mine), []), sum((b["labels"] for b in mine), [])
        keep = len(ids) - (len(ids) % L if drop else 0)  # nothing lost but the documented remainder
        assert (got_ids, got_labels) == (ids[:keep], labels[:keep])
        assert all(len(b["input_ids"]) == L for b in mine[:-1]) and all(0 < len(b["input_ids"]) <= L for b in mine)
        if drop: assert all(len(b["input_ids"]) == L for b in mine)

@SETTINGS
@given(items.filter(bool), st.sampled_from([None, 8]), st.integers(0, 5))
def test_collator(its, multiple, pad):
    experts = ["coder", "general", "translation"]
    b = DistillCollator(pad_token_id=pad, experts=experts, pad_to_multiple_of=multiple)(its)
    B, T = b["input_ids"].shape
    assert B == len(its) and T >= max(len(it["input_ids"]) for it in its) and (multiple is None or T % multiple == 0)
    for i, it in enumerate(its):
        n = len(it["input_ids"])
        assert b["attention_mask"][i].tolist() == [1] * n + [0] * (T - n)
        assert b["input_ids"][i].tolist() == it["input_ids"] + [pad] * (T - n)
        assert b["labels"][i].tolist() == it["labels"] + [-100] * (T - n)  # -100 exactly on padding and on masked labels
        assert b["teacher_index"][i].item() == (-1 if it["expert"] is None else experts.index(it["expert"]))

cells = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",), exclude_characters="\r\x00"), max_size=20)

@SETTINGS
@given(st.lists(st.tuples(cells, cells), min_size=1, max_size=10))
def test_csv_round_trip(rows):
    rows = [r for r in rows if any(c.strip() for c in r)] or [("x", "y")]
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "t.csv"
        with open(p, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["prompt", "completion"])
            w.writerows(rows)
        got = list(read_records(p))
        assert [(r["prompt"], r["completion"]) for _, r in got] == [tuple(r) for r in rows]
        starts, line = [], 2  # each row is numbered by the line it starts on; a quoted field may span lines
        for r in rows:
            starts.append(line)
            buf = io.StringIO()
            csv.writer(buf).writerow(r)
            line += buf.getvalue().count("\n")
        assert [n for n, _ in got] == starts

@SETTINGS
@given(st.lists(st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Zl", "Zp", "Cc")), min_size=1, max_size=30).filter(str.strip), min_size=1, max_size=8))
def test_txt_and_jsonl_round_trip(paras):
    paras = [p.strip() for p in paras]
    with tempfile.TemporaryDirectory() as d:
        t, j = Path(d) / "t.txt", Path(d) / "t.jsonl"
        t.write_text("\n\n".join(paras) + "\n", encoding="utf-8")
        j.write_text("".join(json.dumps({"text": p}) + "\n\n" for p in paras), encoding="utf-8")
        assert [r["text"] for _, r in read_records(t)] == paras
        assert [n for n, _ in read_records(t)] == list(range(1, 2 * len(paras), 2))
        assert [(n, r["text"]) for n, r in read_records(j)] == [(2 * i + 1, p) for i, p in enumerate(paras)]
