"""Data module checks a notebook cell can't hold well: import cost (subprocess), memory while sampling a big file,
Parquet row groups, symlink layouts, long csv fields, and the batches as `transformers.Trainer` delivers them."""
import json, os, subprocess, sys, tracemalloc
from collections import Counter
import pytest
from nexus.data import (DataFormatError, DatasetFile, DistillCollator, DistillDataset, Example, EmptyDatasetError, build_dataset,
                        count_records, discover_datasets, read_records, sample_examples, split_heldout, builtin_examples,
                        tokenize_examples)

def test_import_is_light():
    "Discovery and sampling are usable without torch, transformers or pyarrow: importing the module imports none of them."
    code = "import sys, nexus.data; print(sorted(m for m in ('torch', 'transformers', 'pyarrow') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"

def test_sampling_a_big_jsonl_reads_it_in_constant_memory(tmp_path):
    "Sampling 20 records of a ~30 MB JSON Lines file: counted and read line by line, only the chosen lines parsed."
    p = tmp_path / "big.jsonl"
    line = json.dumps({"text": "x" * 290}) + "\n"
    with open(p, "w") as f:
        for i in range(100_000): f.write(line)
    assert p.stat().st_size > 29_000_000
    tracemalloc.start()
    try: s = sample_examples([p], 20, seed=0)
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert len(s) == 20 and len({e.source for e in s}) == 20
    assert peak < 2_000_000, f"peak {peak} bytes: the file was held in memory"

def test_only_the_chosen_records_are_parsed(tmp_path):
    "A malformed line is reported when it is read, so a sample that doesn't pick it goes through; reading everything finds it."
    p = tmp_path / "a.jsonl"
    p.write_text("".join(json.dumps({"text": f"doc {i}"}) + "\n" for i in range(50)) + "{broken\n")
    s = sample_examples([p], 10, seed=1)
    assert len(s) == 10 and all(e.completion.startswith("doc ") for e in s)  # line 51 (index 50) is not among the 10
    with pytest.raises(DataFormatError, match=r"a\.jsonl, line 51: not valid JSON"): sample_examples([p], None)
    with pytest.raises(DataFormatError, match=r"line 51"): sample_examples([p], 10, seed=0)  # seed 0 picks it

def test_parquet_rows_across_row_groups(tmp_path):
    pa, pq = pytest.importorskip("pyarrow"), pytest.importorskip("pyarrow.parquet")
    p = tmp_path / "t.parquet"
    pq.write_table(pa.Table.from_pylist([{"question": f"q{i}", "answer": f"a{i}"} for i in range(100)]), p, row_group_size=7)
    assert pq.ParquetFile(p).metadata.num_row_groups == 15
    assert count_records(p) == 100
    assert [(n, r["question"]) for n, r in read_records(p, [99, 0, 36, 35, 6, 7])] == [(1, "q0"), (7, "q6"), (8, "q7"), (36, "q35"), (37, "q36"), (100, "q99")]
    assert len(list(read_records(p))) == 100
    pq.write_table(pa.Table.from_pylist([], schema=pa.schema([("text", pa.string())])), tmp_path / "none.parquet")
    with pytest.raises(EmptyDatasetError, match="none.parquet holds no records"): count_records(tmp_path / "none.parquet")

def test_symlinks(tmp_path):
    "Links to folders are followed once; a link up the tree is not followed; a linked file counts once; a broken link is skipped."
    (tmp_path / "d/coder").mkdir(parents=True)
    (tmp_path / "d/coder/a.jsonl").write_text('{"text": "a"}\n')
    (tmp_path / "elsewhere/general").mkdir(parents=True)
    (tmp_path / "elsewhere/general/b.txt").write_text("b\n")
    (tmp_path / "d/general").symlink_to(tmp_path / "elsewhere/general")
    (tmp_path / "d/general-again").symlink_to(tmp_path / "elsewhere/general")
    (tmp_path / "d/coder/up").symlink_to(tmp_path)
    (tmp_path / "d/coder/deep").mkdir()
    (tmp_path / "d/coder/deep/loop").symlink_to(tmp_path / "d/coder")
    (tmp_path / "d/coder/same.jsonl").symlink_to(tmp_path / "d/coder/a.jsonl")
    (tmp_path / "d/coder/dangling.jsonl").symlink_to(tmp_path / "nowhere.jsonl")
    found = discover_datasets(tmp_path / "d", experts=["coder", "general"])
    assert [(f.shown, f.expert) for f in found] == [("coder/a.jsonl", "coder"), ("general/b.txt", "general")]

def test_long_csv_fields_and_multiline_quotes(tmp_path):
    p = tmp_path / "long.csv"
    big = "word " * 60_000  # 300 KB in one field: above csv's default 128 KiB limit
    p.write_text('code,note\n"def f():\n    return 1",x\n"' + big + '",y\n')
    assert [(n, len(r["code"])) for n, r in read_records(p)] == [(2, 21), (4, len(big))]

def test_sampling_is_fair_and_reproducible_in_a_fresh_process(tmp_path):
    "The same seed gives the same sample in another interpreter (str seeds of random.Random don't depend on PYTHONHASHSEED)."
    for name, n in (("big", 5000), ("small", 20)):
        (tmp_path / "coder" / name).mkdir(parents=True)
        (tmp_path / "coder" / name / "x.jsonl").write_text("".join(json.dumps({"text": f"{name} {i}"}) + "\n" for i in range(n)))
    code = (f"from nexus.data import *; fs = discover_datasets({str(tmp_path)!r}, experts=['coder']); "
            "print([e.completion for e in sample_examples(fs, 30, seed=7)])")
    runs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": str(h)}).stdout for h in (1, 2)}
    assert len(runs) == 1
    sample = eval(runs.pop())
    assert Counter(s.split()[0] for s in sample) == {"big": 15, "small": 15}

def test_trainer_delivers_teacher_index(tmp_path, llama_dir):
    "transformers.Trainer takes the dataset and collator as they are (with remove_unused_columns=False) and batches carry teacher_index."
    from transformers import AutoModelForCausalLM, Trainer, TrainingArguments
    from nexus.fixtures import tiny_tokenizer
    tok = tiny_tokenizer()
    exs = [Example("", f"def f{i}(x): return x", "coder") for i in range(6)] + [Example("", f"Fact {i}.", "general") for i in range(6)]
    dset = build_dataset(exs, tok, 16, packing=True, seed=0)
    args = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=4, remove_unused_columns=False, report_to=[], use_cpu=True)
    trainer = Trainer(model=AutoModelForCausalLM.from_pretrained(llama_dir), args=args, train_dataset=dset,
                      data_collator=DistillCollator(tok, experts=["coder", "general"]))
    batches = list(trainer.get_train_dataloader())
    assert sum(len(b["teacher_index"]) for b in batches) == len(dset)
    idx = sorted(i for b in batches for i in b["teacher_index"].tolist())
    assert idx == sorted(["coder", "general"].index(it["expert"]) for it in dset)
    b = batches[0]
    out = trainer.model(**{k: b[k] for k in ("input_ids", "attention_mask", "labels")})
    assert out.loss.isfinite()

def test_builtin_data_for_the_main_job():
    "The debug rung's built-in data: 50 training and a few held-out examples per expert, disjoint, reproducible."
    for expert in ("coder", "general"):
        exs = builtin_examples(expert, 60, seed=42)
        assert len(exs) == 60 and len(set(exs)) == 60
        train, held = split_heldout(exs, 10, seed=42)
        assert (len(train), len(held)) == (50, 10) and not set(train) & set(held)
        assert (train, held) == split_heldout(builtin_examples(expert, 60, seed=42), 10, seed=42)

def test_chat_with_a_tokenizer_that_pads_with_eos(tmp_path):
    "A SmolLM2-like set-up (pad = EOS = the end-of-turn marker): the completion ends with one EOS, which keeps its label."
    from nexus.fixtures import tiny_tokenizer
    tok = tiny_tokenizer()
    tok.pad_token = tok.eos_token
    p = tmp_path / "chat.jsonl"
    p.write_text(json.dumps({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello there"}]}) + "\n")
    items = tokenize_examples(sample_examples([p], 1, tokenizer=tok), tok, 64, completion_only=True)
    ids, labels = items[0]["input_ids"], items[0]["labels"]
    assert ids.count(tok.eos_token_id) == 2 and ids[-1] == tok.eos_token_id  # one after the user turn, one ending the answer
    batch = DistillCollator(tok)([items[0], {"input_ids": [5], "labels": [5], "expert": None}])
    assert batch["labels"][0].tolist() == labels and batch["labels"][0, -1].item() == tok.eos_token_id
    assert batch["labels"][1, 1:].tolist() == [-100] * (len(ids) - 1)
