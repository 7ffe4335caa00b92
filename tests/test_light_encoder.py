"""The NumPy encoder reproduces sentence-transformers for every option it accepts, declines
every model folder it would not reproduce (without raising), and says so once.

The models are tiny random BERTs built here (hidden size 32, 2 layers, a WordPiece vocabulary
of letters) and saved with the installed sentence-transformers; nothing is downloaded."""

import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from paperscope import embedding
from paperscope.embedding import (
    DEFAULT_MODEL,
    LightEncoder,
    SentenceTransformerEncoder,
    load_encoder,
    resolve_model_dir,
)

os.environ.setdefault("HF_HUB_OFFLINE", "1")

TEXTS = [
    "lora",
    "Low Rank Adaptation of LoRA",
    "Élan café naïve résumé",
    "注意力机制 and Ünïcödé",
    "the model " * 40,  # beyond the 64 positions: truncated
]
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
LETTERS = "abcdefghijklmnopqrstuvwxyzé"
VOCAB = SPECIAL + list(LETTERS) + [f"##{c}" for c in LETTERS] + ["the", "model", "lo", "##ra", "Lo"]


def build_model(folder: Path, *, pooling="mean", normalize=True, dtype="float32",
                file_lowercase=False, config_lowercase=False, st_lowercase=False,
                prompts=None, default_prompt_name=None, include_prompt=True) -> Path:
    """A random BERT sentence-transformers model saved in `folder`.

    `file_lowercase` is the lowercase flag of tokenizer.json's normaliser, `config_lowercase`
    the do_lower_case of tokenizer_config.json, `st_lowercase` sentence-transformers' own, set
    in sentence_bert_config.json as sentence-transformers < 6 wrote it (6.x saving a
    do_lower_case module bakes a Lowercase step into tokenizer.json instead, which transformers
    5 drops on loading: such a model is declined, see BROKEN)."""
    import torch
    from sentence_transformers import SentenceTransformer
    try:
        from sentence_transformers.base.modules import Normalize, Transformer
        from sentence_transformers.sentence_transformer.modules import Pooling
    except ImportError:  # sentence-transformers < 6
        from sentence_transformers.models import Normalize, Pooling, Transformer
    from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordPiece
    from transformers import BertConfig, BertModel

    bare = folder.with_name(folder.name + "-bare")
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=64)
    model = BertModel(config).eval()
    with torch.no_grad():  # a random LayerNorm gain and bias, so that none of them is trivial
        for name, parameter in model.named_parameters():
            if "LayerNorm" in name:
                parameter.add_(torch.randn_like(parameter) * 0.1)
    model.to(getattr(torch, dtype)).save_pretrained(bare)

    tokenizer = Tokenizer(WordPiece({token: i for i, token in enumerate(VOCAB)}, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=False)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    tokenizer.decoder = decoders.WordPiece()
    tokenizer.save(str(bare / "tokenizer.json"))
    (bare / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "BertTokenizer", "do_lower_case": False,
        "model_max_length": 64, **{f"{t[1:-1].lower()}_token": t for t in SPECIAL}}))

    modules = [Transformer(str(bare)),
               Pooling(32, pooling, include_prompt=include_prompt)]
    if normalize:
        modules.append(Normalize())
    SentenceTransformer(modules=modules, prompts=prompts,
                        default_prompt_name=default_prompt_name).save(str(folder))
    shutil.rmtree(bare)
    # Saving writes the tokenizer as transformers loaded it; the two lowercase flags are set
    # afterwards so that they can disagree, as they may in a folder a user points at.
    saved = json.loads((folder / "tokenizer.json").read_text())
    saved["normalizer"]["lowercase"] = file_lowercase
    (folder / "tokenizer.json").write_text(json.dumps(saved))
    edit_json(folder / "tokenizer_config.json", do_lower_case=config_lowercase)
    if st_lowercase:
        edit_json(folder / "sentence_bert_config.json", do_lower_case=True)
    return folder


def assert_reproduced(model_dir: Path) -> None:
    """The light encoder's vectors are the reference encoder's (both L2-normalise, with or
    without a Normalize module)."""
    light = load_encoder(str(model_dir))
    assert isinstance(light, LightEncoder)
    expected = SentenceTransformerEncoder(str(model_dir)).encode(TEXTS)
    assert np.abs(light.encode(TEXTS) - expected).max() <= 1e-5


@pytest.fixture(scope="module")
def base_model(tmp_path_factory) -> Path:
    return build_model(tmp_path_factory.mktemp("models") / "base")


def variant(base_model: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(base_model, tmp_path / "variant"))


def edit_json(path: Path, **changes) -> None:
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


@pytest.mark.slow
@pytest.mark.parametrize("options", [
    {"pooling": "mean"},
    {"pooling": "cls"},
    {"pooling": "max"},
    {"pooling": "mean", "normalize": False},
    {"pooling": "cls", "normalize": False},
    {"pooling": "max", "normalize": False},
    {"dtype": "float16"},
    {"dtype": "bfloat16"},
    {"file_lowercase": True, "config_lowercase": True},
    {"file_lowercase": False, "config_lowercase": True},
    {"file_lowercase": True, "config_lowercase": False},
    {"st_lowercase": True},
    {"prompts": {"query": "query: ", "document": ""}, "default_prompt_name": "query"},
    {"prompts": {"query": "query: "}, "default_prompt_name": "query", "pooling": "cls"},
], ids=lambda options: ",".join(f"{k}={v}" for k, v in options.items() if k != "prompts"))
def test_light_encoder_reproduces_sentence_transformers(tmp_path, options):
    assert_reproduced(build_model(tmp_path / "model", **options))


@pytest.mark.slow
def test_configs_of_older_and_newer_writers_are_reproduced(base_model, tmp_path):
    """sentence-transformers < 6 wrote pooling flags; transformers 5 may write
    position_embedding_type null; tokenizer_config.json may be absent (do_lower_case then
    defaults to true)."""
    model = variant(base_model, tmp_path)
    pooling = model / "1_Pooling" / "config.json"
    pooling.write_text(json.dumps({"word_embedding_dimension": 32, "pooling_mode_cls_token": False,
                                   "pooling_mode_mean_tokens": True, "pooling_mode_max_tokens": False}))
    edit_json(model / "config.json", position_embedding_type=None)
    (model / "tokenizer_config.json").unlink()
    assert_reproduced(model)


def test_the_packaged_model_is_light():
    assert LightEncoder.supports(resolve_model_dir(DEFAULT_MODEL))


@pytest.mark.slow
def test_light_encoder_matches_sentence_transformers_on_the_packaged_model():
    texts = ["parameter-efficient finetuning", "RLHF",
             "We propose Low-Rank Adaptation, or LoRA, which freezes the weights. " * 30,
             "注意力机制 and Ünïcödé"]
    light = load_encoder(DEFAULT_MODEL)
    assert isinstance(light, LightEncoder)
    a, b = light.encode(texts), load_encoder(DEFAULT_MODEL, kinds=("sentence-transformers",)).encode(texts)
    assert a.shape == b.shape == (4, 384)
    assert np.abs(a - b).max() <= 1e-5
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)


def truncate(path: Path, keep: int) -> None:
    path.write_bytes(path.read_bytes()[:keep])


def retype_weights(path: Path, dtype: str) -> None:
    raw = path.read_bytes()
    length = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + length])
    for name, info in header.items():
        if name != "__metadata__":
            info["dtype"] = dtype
    encoded = json.dumps(header, separators=(",", ":")).encode().ljust(length)
    assert len(encoded) == length
    path.write_bytes(raw[:8] + encoded + raw[8 + length:])


BROKEN = {
    "no modules.json": lambda m: (m / "modules.json").unlink(),
    "garbage modules.json": lambda m: (m / "modules.json").write_text("{not json"),
    "modules.json not a list": lambda m: (m / "modules.json").write_text('{"a": 1}'),
    "garbage config.json": lambda m: (m / "config.json").write_text("[1, 2"),
    "binary config.json": lambda m: (m / "config.json").write_bytes(b"\xff\xfe\x00"),
    "hidden_size not a number": lambda m: edit_json(m / "config.json", hidden_size="big"),
    "no weights": lambda m: (m / "model.safetensors").unlink(),
    "empty weights": lambda m: truncate(m / "model.safetensors", 0),
    "truncated header": lambda m: truncate(m / "model.safetensors", 20),
    "truncated weights": lambda m: truncate(m / "model.safetensors",
                                            (m / "model.safetensors").stat().st_size - 100),
    "int8 weights": lambda m: retype_weights(m / "model.safetensors", "I8"),
    "float64 weights": lambda m: retype_weights(m / "model.safetensors", "F64"),
    "no tokenizer.json": lambda m: (m / "tokenizer.json").unlink(),
    "garbage tokenizer.json": lambda m: (m / "tokenizer.json").write_text("{}"),
    "a Lowercase step in tokenizer.json": lambda m: lowercase_step(m / "tokenizer.json"),
    "garbage tokenizer_config.json": lambda m: (m / "tokenizer_config.json").write_text("nope"),
    "garbage pooling config": lambda m: (m / "1_Pooling" / "config.json").write_text(""),
    "garbage prompts": lambda m: (m / "config_sentence_transformers.json").write_text("]"),
    "roberta": lambda m: edit_json(m / "config.json", model_type="roberta"),
    "tanh gelu": lambda m: edit_json(m / "config.json", hidden_act="gelu_new"),
    "relative positions": lambda m: edit_json(m / "config.json", position_embedding_type="relative_key"),
    "more layers than weights": lambda m: edit_json(m / "config.json", num_hidden_layers=3),
    "weighted mean pooling": lambda m: edit_json(m / "1_Pooling" / "config.json",
                                                 pooling_mode="weightedmean"),
    "two poolings": lambda m: edit_json(m / "1_Pooling" / "config.json", pooling_mode=["cls", "mean"]),
    "a Dense module": lambda m: (m / "modules.json").write_text(json.dumps(
        [*json.loads((m / "modules.json").read_text())[:2],
         {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"}])),
    "module outside the folder": lambda m: edit_module(m / "modules.json", 1, path="../.."),
    "positions beyond the model": lambda m: edit_json(m / "sentence_bert_config.json", max_seq_length=512),
    "model kwargs": lambda m: edit_json(m / "sentence_bert_config.json",
                                        model_kwargs={"torch_dtype": "float16"}),
    "another tokenizer class": lambda m: edit_json(m / "tokenizer_config.json",
                                                   tokenizer_class="XLMRobertaTokenizer"),
    "an unknown default prompt": lambda m: edit_json(m / "config_sentence_transformers.json",
                                                     default_prompt_name="missing"),
    "a prompt left out of pooling": lambda m: (
        edit_json(m / "config_sentence_transformers.json", prompts={"query": "query: "},
                  default_prompt_name="query"),
        edit_json(m / "1_Pooling" / "config.json", include_prompt=False)),
}


def lowercase_step(tokenizer_json: Path) -> None:
    saved = json.loads(tokenizer_json.read_text())
    saved["normalizer"] = {"type": "Sequence", "normalizers": [{"type": "Lowercase"}, saved["normalizer"]]}
    tokenizer_json.write_text(json.dumps(saved))


def edit_module(modules_json: Path, index: int, **changes) -> None:
    modules = json.loads(modules_json.read_text())
    modules[index].update(changes)
    modules_json.write_text(json.dumps(modules))


@pytest.mark.slow  # builds a tiny BERT with torch and transformers (a minute on a busy machine)
@pytest.mark.parametrize("breakage", list(BROKEN))
def test_declines_every_folder_it_would_not_reproduce(base_model, tmp_path, breakage):
    model = variant(base_model, tmp_path)
    assert LightEncoder.supports(model)
    BROKEN[breakage](model)
    assert LightEncoder.supports(model) is False
    assert embedding._decline_reason(model)


def test_declines_what_is_no_model_folder(tmp_path):
    assert not LightEncoder.supports(None)
    assert not LightEncoder.supports(tmp_path)
    assert not LightEncoder.supports(tmp_path / "missing")


@pytest.mark.slow
def test_a_declined_model_is_explained_once(base_model, tmp_path, monkeypatch, caplog):
    model = variant(base_model, tmp_path)
    edit_json(model / "config.json", hidden_act="gelu_new")
    monkeypatch.setattr(embedding, "SentenceTransformerEncoder", lambda name: f"torch:{name}")
    with caplog.at_level(logging.WARNING, logger="paperscope.embedding"):
        assert load_encoder(str(model)) == f"torch:{model}"
        assert load_encoder(str(model)) == f"torch:{model}"
        assert load_encoder(str(model), kinds=("sentence-transformers",)) == f"torch:{model}"
    assert len(caplog.records) == 1
    assert "gelu_new" in caplog.text and "using the sentence-transformers encoder instead" in caplog.text


def make_snapshot(repo: Path, revision: str) -> Path:
    snapshot = repo / "snapshots" / revision
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    return snapshot


def test_hub_cache_follows_refs_main(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    repo = tmp_path / "models--org--name"
    named = make_snapshot(repo, "aaaa")
    make_snapshot(repo, "ffff")  # alphabetically last and newest, but not the one refs/main names
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("aaaa\n")
    assert resolve_model_dir("org/name") == named
    (repo / "refs" / "main").write_text("0123")  # a ref to a snapshot that is not there
    assert resolve_model_dir("org/name") is None


def test_hub_cache_without_a_ref_takes_the_newest_snapshot(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    repo = tmp_path / "models--org--name"
    newest = make_snapshot(repo, "aaaa")
    older = make_snapshot(repo, "ffff")
    os.utime(older, (1_000_000, 1_000_000))
    assert resolve_model_dir("org/name") == newest
    assert resolve_model_dir("org/other") is None
