"""Known models: where their GGUF comes from (explicit path, env var, part packages concatenated in order),
and a random-weight Qwen2 model going through the same load path as the converted ones."""

import json

import pytest

from blockattn.errors import UserError
from blockattn.models import convert, registry
from blockattn.models.loader import ALIASES, load, resolve


def test_every_known_model_works_by_name():
    assert {"smollm2-135m-instruct", "qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-1.5b-instruct"} <= set(ALIASES)
    assert registry.known("qwen2.5-coder-0.5b-instruct").env_var == "BLOCKATTN_GGUF_QWEN2_5_CODER_0_5B_INSTRUCT"


def test_unknown_model_is_a_user_error():
    with pytest.raises(UserError, match="unknown model"):
        registry.known("gpt-17")


def test_explicit_path_wins_and_a_missing_file_is_a_user_error(tmp_path, monkeypatch):
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    assert registry.find_gguf("qwen2.5-coder-1.5b-instruct", gguf) == gguf
    monkeypatch.setenv("BLOCKATTN_GGUF_QWEN2_5_CODER_1_5B_INSTRUCT", str(gguf))
    assert registry.find_gguf("qwen2.5-coder-1.5b-instruct") == gguf
    monkeypatch.setenv("BLOCKATTN_GGUF_QWEN2_5_CODER_1_5B_INSTRUCT", str(tmp_path / "nope.gguf"))
    with pytest.raises(UserError, match="not a file"):
        registry.find_gguf("qwen2.5-coder-1.5b-instruct")


def test_part_packages_are_concatenated_in_package_order(tmp_path, monkeypatch):
    """Parts 1..3 on sys.path as packages with data/partNN.bin: the GGUF is their bytes in order, built once."""
    model = registry.KnownModel("toy", ("toy_part1", "toy_part2", "toy_part3"), "pip install toy", "e", "p")
    for i, chunk in enumerate([b"AAA", b"BB", b"C"], start=1):
        (tmp_path / "site" / f"toy_part{i}" / "data").mkdir(parents=True)
        (tmp_path / "site" / f"toy_part{i}" / "__init__.py").write_text("")
        (tmp_path / "site" / f"toy_part{i}" / "data" / f"part{i:02d}.bin").write_bytes(chunk)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setitem(registry.KNOWN, "toy", model)
    monkeypatch.setenv("BLOCKATTN_HOME", str(tmp_path / "home"))
    path = registry.find_gguf("toy")
    assert path.read_bytes() == b"AAABBC" and path.parent == tmp_path / "home" / "gguf"
    assert registry.find_gguf("toy") == path  # the second call reuses it


def test_a_missing_part_package_names_the_way_out(monkeypatch):
    monkeypatch.delenv("BLOCKATTN_GGUF_QWEN2_5_CODER_1_5B_INSTRUCT", raising=False)
    monkeypatch.setattr(registry, "_package_dir", lambda package: None)
    with pytest.raises(UserError, match="BLOCKATTN_GGUF_QWEN2_5_CODER_1_5B_INSTRUCT"):
        registry.find_gguf("qwen2.5-coder-1.5b-instruct")


def test_a_prepared_qwen2_directory_loads_by_name(tmp_path, monkeypatch):
    """What `models prepare` leaves behind (a random-weight qwen2 here) loads by the model's name."""
    from blockattn.models.tiny import tiny_model

    monkeypatch.setenv("BLOCKATTN_HOME", str(tmp_path))
    target = convert.model_dir("qwen2.5-coder-0.5b-instruct")
    tiny_model("qwen2").save_pretrained(target)
    from blockattn.models import load_tokenizer

    load_tokenizer("smollm2-135m-instruct").save_pretrained(target)
    (target / convert.MARKER).write_text(json.dumps({"name": "q", "source": "q.gguf", "source_sha256": "ab" * 32}))
    assert resolve("qwen2.5-coder-0.5b-instruct") == target
    loaded = load("qwen2.5-coder-0.5b-instruct")
    assert loaded.model.config.model_type == "qwen2"
    assert loaded.identity == "qwen2.5-coder-0.5b-instruct@" + "ab" * 8
