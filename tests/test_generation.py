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



@pytest.mark.slow
def test_reply_likelihoods_are_each_conversations_own_log_probability(real_settings):
    """Batched and right-padded, each score equals the reply's mean log-probability computed
    alone over the full sequence; a sentence that answers the question scores higher."""
    import torch

    from qa.prompting import question_messages

    generator = make_generator("qwen2.5-coder-0.5b", real_settings.cache_dir, threads=2).load()
    question = "How many models have been built on Qwen?"
    conversations = [question_messages(text, "en") for text in (
        "More than 100,000 derived models have been built on Alibaba's Qwen family.",
        "The weather was mild.")]
    batched = generator.reply_likelihoods(conversations, question)
    assert batched[0] > batched[1]

    alone = []
    for conversation in conversations:
        prompt = generator._inputs(conversation)["input_ids"][0].tolist()
        answer = generator._tokenizer(question, add_special_tokens=False)["input_ids"]
        with torch.inference_mode():
            logits = generator._model(input_ids=torch.tensor([prompt + answer])).logits[0].float()
        logprobs = torch.log_softmax(logits[len(prompt) - 1:-1], dim=-1)
        alone.append(float(logprobs[torch.arange(len(answer)), answer].mean()))
    assert batched == pytest.approx(alone, abs=0.02)
