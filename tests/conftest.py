"Shared fixtures: tiny model folders built once per test session (nothing is downloaded)."
import os, pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

@pytest.fixture(scope="session")
def registry(tmp_path_factory):
    "Tiny folders shaped like the seed's fourteen teacher-registry models."
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
