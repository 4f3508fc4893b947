import pytest

import qa.generation
from qa.errors import ModelError
from qa.generation import LlamaCppGenerator, TransformersGenerator, make_generator


def test_a_folder_without_config_is_refused(tmp_path):
    with pytest.raises(ModelError, match="not a transformers model folder"):
        make_generator(str(tmp_path), tmp_path)


def test_a_bare_unknown_name_is_refused_with_the_choices(tmp_path):
    with pytest.raises(ModelError, match="unknown language model 'gpt-7'.*qwen2.5-coder-0.5b"):
        make_generator("gpt-7", tmp_path)


def test_an_unknown_engine_is_refused(tmp_path):
    with pytest.raises(ModelError, match="unknown engine 'vllm'.*llama.cpp, transformers"):
        make_generator("qwen2.5-coder-0.5b", tmp_path, engine="vllm")


@pytest.mark.parametrize("name", ["qwen2.5-coder-1.5b", "Qwen2.5-Coder-0.5B-Instruct", "default"])
def test_packaged_models_run_on_llama_cpp_from_their_assembled_gguf(tmp_path, monkeypatch, name):
    assembled = []

    def prepare_gguf(cache_dir, model, progress=True, force=False):
        assembled.append(model.name)
        return tmp_path / f"{model.name}.gguf"

    monkeypatch.setattr(qa.generation, "prepare_gguf", prepare_gguf)
    generator = make_generator(name, tmp_path, engine="llama.cpp")
    assert isinstance(generator, LlamaCppGenerator) and generator.name == assembled[0]
    assert generator.gguf == tmp_path / f"{assembled[0]}.gguf"


def test_a_gguf_file_runs_on_llama_cpp_whatever_the_engine_setting(tmp_path):
    gguf = tmp_path / "mine.gguf"
    gguf.write_bytes(b"GGUF")
    assert isinstance(make_generator(str(gguf), tmp_path, engine="transformers"), LlamaCppGenerator)


def test_a_gguf_llama_cpp_cannot_read_is_a_model_error(tmp_path):
    gguf = tmp_path / "broken.gguf"
    gguf.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="llama.cpp could not load"):
        make_generator(str(gguf), tmp_path).load()


@pytest.mark.slow
def test_llama_cpp_reuses_the_kv_cache_of_a_shared_prompt_beginning(real_settings):
    from qa.reader import reader_messages

    generator = make_generator("qwen2.5-coder-0.5b", real_settings.cache_dir, threads=2).load()
    fixed = reader_messages("", "en", [])[:-1]
    generator.warm(fixed)
    messages = reader_messages("How many models are built on Qwen?", "en",
                               [(1, "Plus de 100 000 modèles dérivés ont été construits sur Qwen.")])
    reply = "".join(generator.stream(messages, 24))
    assert reply.strip()
    assert generator.last["cached_tokens"] > 0.8 * (generator.last["prompt_tokens"] - 60)
    assert generator.last["new_tokens"] > 0 and generator.last["decode_s"] >= 0


@pytest.mark.slow
def test_llama_cpp_reports_the_first_tokens_it_chose_from(real_settings):
    """The first choices are the model's distribution over the reply's first token: the greedy
    reply starts with the likeliest, and a question the source doesn't answer makes NOT FOUND
    likelier than one it answers (qa.reader.doubt)."""
    from qa.reader import doubt, reader_messages

    generator = make_generator("qwen2.5-coder-0.5b", real_settings.cache_dir, threads=2).load()
    source = [(1, "Qwen est développé par Alibaba, qui l’a publié en 2023.")]
    replies, doubts = [], []
    for question in ("Who develops Qwen?", "Who is the mayor of Lyon?"):
        replies.append("".join(generator.stream(reader_messages(question, "en", source), 16)))
        choices = generator.last["first_choices"]
        probabilities = [p for _, p in choices]
        assert probabilities == sorted(probabilities, reverse=True) and 0 < sum(probabilities) <= 1 + 1e-6
        assert replies[-1].startswith(choices[0][0].strip())
        doubts.append(doubt(choices))
    assert doubts[0] < doubts[1], (replies, doubts)


@pytest.mark.slow
def test_an_answer_does_not_depend_on_the_question_asked_before(real_settings):
    """Only the warmed beginning is reused from the KV cache: the same prompt is read the same
    way whatever came before, so its greedy answer is the same."""
    from qa.reader import reader_messages

    generator = make_generator("qwen2.5-coder-0.5b", real_settings.cache_dir, threads=2).load()
    generator.warm(reader_messages("", "en", [])[:-1])
    asked = reader_messages("Who develops Qwen?", "en", [(1, "Qwen est développé par Alibaba.")])
    other = reader_messages("Who develops Hunyuan?", "en", [(1, "Hunyuan est développé par Tencent.")])
    first = "".join(generator.stream(asked, 16))
    again = "".join(generator.stream(asked, 16))  # the whole prompt is in the cache now
    cached = generator.last["cached_tokens"]
    "".join(generator.stream(other, 16))
    after_other = "".join(generator.stream(asked, 16))
    assert first == again == after_other
    assert cached == generator.last["cached_tokens"] < generator.last["prompt_tokens"] - 10


@pytest.mark.slow
def test_the_warmed_beginning_comes_back_after_another_prompt_replaced_it(real_settings):
    """A translation's prompt shares nothing with the reader's: the reader's fixed beginning is
    copied back into the KV cache instead of being read again, and answers the same."""
    from qa.prompting import translation_messages
    from qa.reader import reader_messages

    generator = make_generator("qwen2.5-coder-0.5b", real_settings.cache_dir, threads=2).load()
    generator.warm(reader_messages("", "en", [])[:-1])
    asked = reader_messages("Who develops Qwen?", "en", [(1, "Qwen est développé par Alibaba.")])
    translation = translation_messages("Qwen est développé par Alibaba.", "fr", "en")
    first = "".join(generator.stream(asked, 16))
    "".join(generator.stream(translation, 16))
    restored = "".join(generator.stream(asked, 16))
    (beginning, kv), = generator._beginnings
    assert generator.last["cached_tokens"] >= len(beginning) > 100
    generator._beginnings = [(beginning, None)]  # without the copy, the beginning is read again
    "".join(generator.stream(translation, 16))
    read_again = "".join(generator.stream(asked, 16))
    assert generator.last["cached_tokens"] < 50
    assert first == restored == read_again


@pytest.mark.slow
def test_the_prepared_default_model_streams_through_the_folder_code_path(real_settings):
    generator = make_generator("qwen2.5-coder-0.5b", real_settings.cache_dir, threads=2, engine="transformers")
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

    generator = make_generator("qwen2.5-coder-0.5b", real_settings.cache_dir, threads=2,
                               engine="transformers").load()
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


@pytest.mark.slow
def test_the_fast_engine_answers_like_the_reference_engine(real_settings, tmp_path):
    """llama.cpp over the GGUF and transformers over its bf16 copy, same model, same questions, in
    the direct style: the same decision, the same figures, the same cited passages."""
    from qa.pipeline import Pipeline
    from qa.text import numbers

    settings = real_settings.with_(llm="qwen2.5-coder-0.5b", answer_style="direct", index_dir=tmp_path / "index")
    fast = Pipeline(settings.with_(engine="llama.cpp")).load()
    reference = Pipeline(settings.with_(engine="transformers"), embedder=fast.embedder,
                         evidence_embedder=fast.evidence_embedder, index=fast.index).load()
    for question in ("Combien de modèles dérivés ont été construits sur Qwen ?",
                     "When was the US AI Action Plan published?",
                     "Quel salaire exact DeepSeek propose-t-il ?"):
        a, b = fast.ask(question), reference.ask(question)
        assert a.abstained == b.abstained, (question, a.text, b.text)
        assert numbers(a.text) == numbers(b.text), (question, a.text, b.text)
        assert {c.n for c in a.citations} == {c.n for c in b.citations}, (question, a.text, b.text)


@pytest.mark.slow
def test_two_warmed_beginnings_are_each_reused_and_answer_as_if_read_afresh(real_settings):
    """The reader's and the second read's fixed beginnings are both kept: a prompt starting with
    either reads only what follows, after the other replaced the cache, and answers the same as
    a prompt read from its start."""
    from qa.reader import reader_messages, second_messages

    source = [(1, "Qwen est développé par Alibaba.")]
    asked = reader_messages("Who develops Qwen?", "en", source)
    again = second_messages("Who develops Qwen?", "en", source)
    cold = make_generator("qwen2.5-coder-0.5b", real_settings.cache_dir, threads=2).load()
    expected = ["".join(cold.stream(m, 16)) for m in (asked, again)]
    generator = make_generator("qwen2.5-coder-0.5b", real_settings.cache_dir, threads=2).load()
    generator.warm(asked[:-1])
    generator.warm(again[:-1])
    generator.warm(asked[:-1])  # known: nothing read again
    assert len(generator._beginnings) == 2
    replies = []
    for messages in (asked, again, asked):
        replies.append("".join(generator.stream(messages, 16)))
        beginning = generator._beginning(generator.prompt_tokens(messages))[0]
        assert generator.last["cached_tokens"] == len(beginning) > 100
    assert replies == [*expected, expected[0]]
