"Fuzzing detection: random bytes and random JSON in config.json, safetensors and GGUF headers, and .npz files."
import json, os, struct, tempfile, zipfile
from pathlib import Path
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from nexus.detect import NexusError, get_model_info, read_gguf_header, read_safetensors_header, bundled_model_path

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                           lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=10), kids, max_size=4), max_leaves=20)
config_keys = st.sampled_from(["architectures", "model_type", "quantization_config", "text_config", "thinker_config",
                               "talker_config", "auto_map", "vision_config", "num_hidden_layers", "vocab_size", "_class_name",
                               "_diffusers_version", "d_in", "d_sae", "model_name", "hidden_size"])

def _check(fn, *args):
    "The only acceptable outcomes: a valid result, or a NexusError with a message."
    try: return fn(*args)
    except NexusError as e: assert str(e)

@pytest.fixture(scope="module")
def folder():
    return Path(tempfile.mkdtemp())

@FUZZ
@given(data=st.binary(max_size=2048))
def test_config_random_bytes(folder, data):
    (folder / "config.json").write_bytes(data)
    _check(get_model_info, folder)

@FUZZ
@given(cfg=st.dictionaries(config_keys, json_values, max_size=8) | json_values)
def test_config_random_json(folder, cfg):
    (folder / "config.json").write_text(json.dumps(cfg))
    _check(get_model_info, folder)

@FUZZ
@given(data=st.binary(max_size=4096))
def test_safetensors_random_bytes(folder, data):
    p = folder / "model.safetensors"
    p.write_bytes(data)
    _check(read_safetensors_header, p)

@FUZZ
@given(header=st.dictionaries(st.text(max_size=8), st.dictionaries(st.sampled_from(["dtype", "shape", "data_offsets"]), json_values, max_size=3) | json_values, max_size=4),
       tail=st.binary(max_size=256), lie=st.integers(-8, 8))
def test_safetensors_random_header(folder, header, tail, lie):
    raw = json.dumps(header).encode()
    p = folder / "model.safetensors"
    p.write_bytes(struct.pack("<Q", max(0, len(raw) + lie)) + raw + tail)
    _check(read_safetensors_header, p)

@FUZZ
@given(data=st.binary(max_size=4096))
def test_gguf_random_bytes(folder, data):
    p = folder / "m.gguf"
    p.write_bytes(b"GGUF" + data)
    _check(read_gguf_header, p)
    _check(get_model_info, p)

with open(bundled_model_path("smollm2"), "rb") as f: GGUF_HEAD = f.read(1 << 16)  # the real file's first 64 KiB

@FUZZ
@given(pos=st.integers(0, (1 << 16) - 8), value=st.binary(min_size=1, max_size=8), cut=st.integers(24, 1 << 16))
def test_gguf_mutated_real_header(folder, pos, value, cut):
    data = bytearray(GGUF_HEAD)
    data[pos:pos + len(value)] = value
    p = folder / "m.gguf"
    p.write_bytes(bytes(data[:cut]))
    _check(read_gguf_header, p)

@FUZZ
@given(data=st.binary(max_size=2048))
def test_npz_random_bytes(folder, data):
    sae = folder / "sae"
    sae.mkdir(exist_ok=True)
    (sae / "params.npz").write_bytes(data)
    _check(get_model_info, sae)

@FUZZ
@given(header=st.binary(max_size=200))
def test_npz_random_member_header(folder, header):
    sae = folder / "sae2"
    sae.mkdir(exist_ok=True)
    with zipfile.ZipFile(sae / "params.npz", "w") as z: z.writestr("W_enc.npy", b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header)
    _check(get_model_info, sae)
