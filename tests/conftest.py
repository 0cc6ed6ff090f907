"Shared fixtures: tiny model folders built once per test session (nothing is downloaded)."
import os, pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

@pytest.fixture(scope="session")
def registry(tmp_path_factory):
    "Tiny folders shaped like the fourteen models of the teacher registry (`nexus.fixtures.REGISTRY`)."
    import transformers
    from nexus.fixtures import REGISTRY_MODELS, save_registry_model
    transformers.utils.logging.disable_progress_bar()
    root = tmp_path_factory.mktemp("registry")
    for name in REGISTRY_MODELS: save_registry_model(name, root)
    return root

@pytest.fixture(scope="session")
def llama_dir(tmp_path_factory):
    from nexus.fixtures import save_tiny_model
    return save_tiny_model("llama", tmp_path_factory.mktemp("tiny") / "llama")

@pytest.fixture(scope="session")
def distill_setup(tmp_path_factory):
    "A tiny teacher with a sharpened head, and two small jsonl datasets tagged with experts (for trainer tests)."
    import json, torch
    from nexus.fixtures import tiny_model, save_tiny_tokenizer
    from nexus.data import builtin_examples
    root = tmp_path_factory.mktemp("distill")
    for name, seed in (("general", 0), ("coder", 1)):
        t = tiny_model("llama", seed=seed, num_hidden_layers=4)
        with torch.no_grad(): t.lm_head.weight.mul_(20.0)
        t.save_pretrained(root / name); save_tiny_tokenizer(root / name)
        (root / "data" / name).mkdir(parents=True)
        with open(root / "data" / name / "train.jsonl", "w") as f:
            for e in builtin_examples(name, 60, seed=seed): f.write(json.dumps({"text": e.text[:300]}) + "\n")
    return root

def distill_flags(root, **extra):
    "Flags of a one-teacher tiny run on the 'general' data."
    return {"teachers": {"general": str(root / "general")},
            "datasets": {"general": {"path": str(root / "data" / "general"), "expert": "general"}},
            "student_layers": 2, "batch_size": 4, "lr": 3e-3, "max_seq_length": 32, "save_steps": 1000,
            "critical_layers": [1], "hidden_weight": 1.0, "seed": 7, **extra}  # every term of the loss on
