import pytest

from qa.errors import ModelError
from qa.generation import TransformersGenerator, make_generator


def test_a_folder_without_config_is_refused(tmp_path):
    with pytest.raises(ModelError, match="not a transformers model folder"):
        make_generator(str(tmp_path), tmp_path)


def test_a_bare_unknown_name_is_refused_with_the_choices(tmp_path):
    with pytest.raises(ModelError, match="unknown language model 'gpt-7'.*qwen2.5-coder-0.5b"):
        make_generator("gpt-7", tmp_path)


@pytest.mark.slow
def test_the_prepared_default_model_streams_through_the_folder_code_path(real_settings):
    generator = make_generator("qwen2.5-coder-0.5b", real_settings.cache_dir, threads=2)
    assert isinstance(generator, TransformersGenerator)
    # a hub id or any folder goes through this same class; here, by folder path
    by_folder = make_generator(generator.model_ref, real_settings.cache_dir, threads=2)
    pieces = list(by_folder.stream([{"role": "user", "content": "Say OK."}], max_new_tokens=8,
                                   prefix=""))
    assert pieces and "".join(pieces).strip()
