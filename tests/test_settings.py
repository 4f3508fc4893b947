from pathlib import Path

import pytest

from qa.errors import SettingsError
from qa.settings import Settings


def test_environment_overrides_defaults_and_flags_override_environment():
    env = {"QA_TOP_K": "6", "QA_INDEX_DIR": "/tmp/x", "QA_LLM": "some/model"}
    s = Settings.from_env(env=env)
    assert (s.top_k, s.index_dir, s.llm) == (6, Path("/tmp/x"), "some/model")
    assert Settings.from_env(env=env, top_k=2).top_k == 2


def test_cache_dir_follows_qa_cache_dir(tmp_path):
    assert Settings.from_env(env={"QA_CACHE_DIR": str(tmp_path)}).cache_dir == tmp_path


@pytest.mark.parametrize(
    "changes,message",
    [
        ({"chunk_overlap": 300, "chunk_size": 200}, "chunk_overlap must be .* smaller than chunk_size, got 300 >= 200"),
        ({"top_k": 0}, "top_k must be a positive integer, got 0"),
        ({"top_k": 50}, "top_k must be at most 20"),
        ({"chunk_size": 10}, "chunk_size must be at least 100"),
    ],
)
def test_bad_values_name_the_value_and_the_fix(changes, message):
    with pytest.raises(SettingsError, match=message):
        Settings(**changes)


def test_non_integer_environment_value_is_reported():
    with pytest.raises(SettingsError, match="QA_TOP_K must be an integer, got 'many'"):
        Settings.from_env(env={"QA_TOP_K": "many"})


def test_the_default_answer_is_the_1_5b_reader_s_direct_answer_on_llama_cpp():
    settings = Settings.from_env(env={})
    assert (settings.answer_style, settings.llm, settings.engine) == ("direct", "qwen2.5-coder-1.5b", "llama.cpp")


def test_an_unknown_engine_is_refused_with_the_choices():
    with pytest.raises(SettingsError, match="engine must be one of llama.cpp, transformers, got 'vllm'"):
        Settings.from_env(env={"QA_ENGINE": "vllm"})


def test_the_evidence_embedder_has_its_own_variable_and_defaults_to_the_one_thresholds_were_set_on():
    default = Settings.from_env(env={})
    assert (default.embedder, default.evidence_embedder) == ("multilingual-e5-small", "use-multilingual")
    env = {"QA_EMBEDDER": "multilingual-e5-small", "QA_EVIDENCE_EMBEDDER": "minilm"}
    s = Settings.from_env(env=env)
    assert (s.embedder, s.evidence_embedder) == ("multilingual-e5-small", "minilm")
    assert Settings.from_env(env=env, evidence_embedder="use").evidence_embedder == "use"


def test_an_empty_evidence_embedder_is_refused():
    with pytest.raises(SettingsError, match="evidence_embedder and llm names must not be empty"):
        Settings(evidence_embedder=" ")
