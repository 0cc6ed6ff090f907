"""Placement over CPU and disk with the checkpoint formats the notebook doesn't show, and the detection promise the
loader's extension points lean on (`is_model_supported` never raises, whatever a `MODEL_TYPE_MAPPINGS` entry holds)."""
import json, shutil
from unittest import mock
import pytest

torch = pytest.importorskip("torch")


def _outputs(model, ids):
    with torch.no_grad(): return model(input_ids=ids).logits


def test_offloaded_safetensors_are_read_in_place(llama_dir, tmp_path):
    "A safetensors checkpoint offloaded to disk is read where it is: the offload folder stays empty."
    from nexus.loader import OmniModelLoader
    loader = OmniModelLoader(llama_dir)
    model, _ = loader.load(max_memory={"cpu": "100KB"}, offload_folder=tmp_path / "offload")
    full, _ = OmniModelLoader(llama_dir).load()
    ids = torch.tensor([[1, 5, 9, 42]])
    torch.testing.assert_close(_outputs(model, ids), _outputs(full, ids))
    assert set(loader.last_load.placement) == {"cpu", "disk"}
    offload = tmp_path / "offload"
    assert not offload.exists() or not any(offload.iterdir())
    assert "placement   cpu" in loader.last_load.summary()


@pytest.fixture
def pickle_llama(llama_dir, tmp_path):
    "The tiny llama as a pytorch_model.bin checkpoint (no safetensors file to read weights from in place)."
    from safetensors.torch import load_file
    binary = tmp_path / "llama-bin"
    shutil.copytree(llama_dir, binary)
    torch.save(load_file(binary / "model.safetensors"), binary / "pytorch_model.bin")
    (binary / "model.safetensors").unlink()
    return binary


def test_offloaded_pickle_checkpoint_is_written_to_the_offload_folder(llama_dir, pickle_llama, tmp_path):
    "A pytorch_model.bin checkpoint has no file to read in place: offloaded weights are written to the folder."
    from nexus.loader import OmniModelLoader
    binary = pickle_llama
    loader = OmniModelLoader(binary)
    model, _ = loader.load(max_memory={"cpu": "100KB"}, offload_folder=tmp_path / "offload")
    full, _ = OmniModelLoader(llama_dir).load()
    ids = torch.tensor([[3, 1, 4, 1, 5]])
    torch.testing.assert_close(_outputs(model, ids), _outputs(full, ids))
    assert loader.last_load.placement["disk"] > 0
    assert any((tmp_path / "offload").iterdir())


def test_offload_folder_on_a_full_disk_is_refused(pickle_llama, tmp_path):
    "A pickle checkpoint whose offloaded part is bigger than the disk's free room is refused before loading."
    from nexus.loader import OmniModelLoader, InsufficientMemoryError
    binary = pickle_llama
    full_disk = shutil._ntuple_diskusage(10**9, 10**9, 1024)
    with mock.patch("shutil.disk_usage", return_value=full_disk), pytest.raises(InsufficientMemoryError) as e:
        OmniModelLoader(binary).load(max_memory={"cpu": "100KB"}, offload_folder=tmp_path / "offload")
    assert "only 1.0 KiB is free there" in str(e.value)


@pytest.mark.parametrize("entry", [{}, {"category": None}, {"architecture": None}, "Qwen3ForCausalLM", None, 3,
                                   {"architecture": "NoSuchForCausalLM"}, {"architecture": ["Qwen3ForCausalLM"]}])
def test_is_model_supported_never_raises_on_odd_mappings(llama_dir, tmp_path, entry):
    "Whatever a MODEL_TYPE_MAPPINGS entry holds, the support check answers (an error string), never raises."
    from nexus.detect import MODEL_TYPE_MAPPINGS, is_model_supported
    folder = tmp_path / "odd"
    shutil.copytree(llama_dir, folder)
    cfg = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**cfg, "architectures": ["OddForCausalLM"], "model_type": "odd"}))
    with mock.patch.dict(MODEL_TYPE_MAPPINGS, odd=entry):
        r = is_model_supported(folder)
    assert set(r) >= {"supported", "category", "error"}
    assert r["supported"] is False or r["error"] is None
