"""LlamaCppModel on the real embedded models (SmolLM2 135M Instruct, Gemma 3 270M base).

No mocks: every test loads real weights through the catalog (installed packages, no downloads).
"""

from __future__ import annotations

import asyncio
import io
import json
import math
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from shoal import BackendError, BackendTimeout, OutputValidationError
from shoal.graphs.spec import LlamaCppModelSpec
from shoal.models import Generator, LabelScorer, catalog, pool
from shoal.models.llamacpp import LlamaCppModel, _gpu_layers
from shoal.models.tokens import generated_tokens

pytestmark = [pytest.mark.slow]

ASK: list[Any] = [{"role": "user", "content": "Answer yes or no: is water wet?"}]


class Answer(BaseModel):
    answer: str
    score: int


@pytest.fixture
def smol() -> LlamaCppModel:
    return LlamaCppModel(model="smollm2-135m-instruct")


@pytest.fixture
def gemma() -> LlamaCppModel:
    return LlamaCppModel.from_spec(LlamaCppModelSpec(kind="llamacpp", model="gemma3-270m"), None)


def test_implements_the_protocols(smol: LlamaCppModel, gemma: LlamaCppModel):
    for model in (smol, gemma):
        assert isinstance(model, Generator) and isinstance(model, LabelScorer)
    assert smol.name == "llamacpp:SmolLM2-135M-Instruct.Q4_1"
    # SmolLM2 carries its own template; the Gemma base file has none, so the catalog's applies.
    assert smol.chat_format is not None and smol.chat_format != "llama-2"
    assert gemma.chat_format == "gemma"


async def test_text_comes_back(smol: LlamaCppModel):
    before = generated_tokens().get(smol.name, 0)
    out = await smol.generate(ASK, max_tokens=16, timeout_s=60)
    assert out.text.strip()
    assert generated_tokens()[smol.name] - before == out.usage.completion_tokens
    assert out.model == smol.name
    assert out.usage.prompt_tokens > 0 and 0 < out.usage.completion_tokens <= 16
    assert out.cost_usd is None and out.latency_ms > 0
    assert out.finish_reason in {"stop", "length"}


async def test_gemma_keeps_the_system_message(gemma: LlamaCppModel):
    # llama-cpp-python's gemma format drops system messages; ours folds them into the user turn.
    system: list[Any] = [{"role": "system", "content": "You answer in one word only, always."}]
    plain = await gemma.generate(ASK, max_tokens=4, timeout_s=60)
    folded = await gemma.generate(system + ASK, max_tokens=4, timeout_s=60)
    assert folded.usage.prompt_tokens > plain.usage.prompt_tokens + 5


async def test_json_validates_against_a_pydantic_model(smol: LlamaCppModel):
    out = await smol.generate_json(
        [{"role": "user", "content": "Reply with JSON: answer 'yes', score 1."}], Answer,
        max_tokens=64, timeout_s=60)
    assert isinstance(out.data, Answer)
    assert Answer.model_validate_json(out.text) == out.data


async def test_json_validates_against_a_schema_dict(gemma: LlamaCppModel):
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    out = await gemma.generate_json(
        [{"role": "user", "content": 'Reply with JSON {"ok": true}.'}], schema,
        max_tokens=32, timeout_s=60)
    assert isinstance(out.data, dict) and isinstance(out.data["ok"], bool)


async def test_json_cut_by_max_tokens_says_so_without_quoting_output(smol: LlamaCppModel):
    with pytest.raises(OutputValidationError) as info:
        await smol.generate_json(
            [{"role": "user", "content": "Reply with JSON: answer 'a long essay', score 1."}],
            Answer, max_tokens=3, timeout_s=60)
    err = info.value
    assert "max_tokens=3" in str(err)
    assert err.node == smol.name and err.attempts == 1
    assert "{" not in str(err)  # no model output in the message


# Probes this 270M base model gets right with a wide margin (p >= 0.85 when measured);
# "Is ice hot or cold?" is one it gets wrong, so it is not here.
OBVIOUS = [
    ("Q: Is fire hot or cold?\nA: It is", ["hot", "cold"], "hot"),
    ("The capital of France is", ["Paris", "London", "Tokyo"], "Paris"),
    ("2 + 2 =", ["4", "7"], "4"),
    ("The opposite of up is", ["down", "left"], "down"),
]


@pytest.mark.parametrize(("prompt", "labels", "want"), OBVIOUS)
async def test_label_scores_rank_the_obvious_answer_first(
    gemma: LlamaCppModel, prompt: str, labels: list[str], want: str
):
    scores = await gemma.score_labels(prompt, labels, timeout_s=60)
    assert list(scores) == labels
    assert math.isclose(sum(scores.values()), 1.0, abs_tol=1e-9)
    assert all(0.0 <= p <= 1.0 for p in scores.values())
    assert max(scores, key=scores.__getitem__) == want


async def test_label_scores_with_multi_token_labels_sum_to_one(
    smol: LlamaCppModel, gemma: LlamaCppModel
):
    labels = ["billing", "appointment scheduling", "prescription refill", "other"]
    for model in (smol, gemma):
        scores = await model.score_labels("Message: I ran out of my inhaler.\nTopic:", labels,
                                          timeout_s=60)
        assert list(scores) == labels
        assert math.isclose(sum(scores.values()), 1.0, abs_tol=1e-9)


async def test_label_scores_do_not_depend_on_a_trailing_space_or_the_cache(gemma: LlamaCppModel):
    prompt, labels = "Q: Is snow white or black?\nA: Snow is", ["white", "black"]
    first = await gemma.score_labels(prompt, labels, timeout_s=60)
    again = await gemma.score_labels(prompt, labels, timeout_s=60)  # prompt reused from cache
    spaced = await gemma.score_labels(prompt + " ", labels, timeout_s=60)
    for other in (again, spaced):
        assert all(math.isclose(first[k], other[k], abs_tol=1e-3) for k in labels)


async def test_bad_labels_are_a_caller_error(gemma: LlamaCppModel):
    with pytest.raises(ValueError, match="distinct"):
        await gemma.score_labels("It is", ["hot", "hot"])
    with pytest.raises(ValueError, match="at least one"):
        await gemma.score_labels("It is", [])


def test_one_llama_per_file(tmp_path: Path):
    a = LlamaCppModel(model="gemma3-270m")
    b = LlamaCppModel.from_spec(LlamaCppModelSpec(kind="llamacpp", model="gemma3-270m"), None)
    # Another name for the same file (a symlink) still shares the loaded model.
    link = tmp_path / "renamed.gguf"
    link.symlink_to(catalog.resolve("gemma3-270m"))
    c = LlamaCppModel(link)
    assert a._loaded is b._loaded is c._loaded
    assert ("llamacpp", str(a.path), a.n_ctx, a.threads, a.n_gpu_layers) in pool.loaded()
    assert c.name == "llamacpp:renamed"


async def test_a_file_without_template_or_format_refuses_to_chat(tmp_path: Path):
    # llama-cpp-python would silently use the llama-2 format here; we refuse instead.
    link = tmp_path / "base-model.gguf"
    link.symlink_to(catalog.resolve("gemma3-270m"))
    model = LlamaCppModel(link)
    assert model.chat_format is None
    with pytest.raises(BackendError, match="no chat template"):
        await model.generate(ASK, max_tokens=4, timeout_s=60)
    scores = await model.score_labels("The capital of France is", ["Paris", "Tokyo"],
                                      timeout_s=60)
    assert max(scores, key=scores.__getitem__) == "Paris"
    assert LlamaCppModel(link, chat_format="gemma").chat_format == "gemma"


def test_an_unknown_chat_format_is_refused():
    with pytest.raises(BackendError, match="unknown chat_format"):
        LlamaCppModel(model="smollm2-135m-instruct", chat_format="no-such-format")


async def test_tiny_timeout_raises_and_the_model_stays_usable(smol: LlamaCppModel):
    with pytest.raises(BackendTimeout) as info:
        await smol.generate([{"role": "user", "content": "Write a long story about a ship."}],
                            max_tokens=200, timeout_s=0.001)
    assert isinstance(info.value, TimeoutError) and info.value.backend == smol.name
    out = await smol.generate(ASK, max_tokens=4, timeout_s=30)
    assert out.text


async def test_timeout_mid_generation_stops_it_early(smol: LlamaCppModel):
    # The grammar forces one long literal (thousands of tokens), so unless it is stopped this
    # call decodes all 1900 tokens (about 19 s at SmolLM2's 100 tok/s), and the follow-up would
    # queue behind it on the file's lock. A literal keeps the grammar small: a schema such as
    # minItems=600 expands into a grammar that takes seconds to set up, before the first token.
    forced = {"enum": [" ".join(f"w{i}" for i in range(800))]}
    with pytest.raises(BackendTimeout):
        await smol.generate_json([{"role": "user", "content": "Count."}], forced,
                                 max_tokens=1900, timeout_s=1.0)
    out = await smol.generate(ASK, max_tokens=4, timeout_s=15)
    assert out.text


async def test_twenty_concurrent_generate_calls(smol: LlamaCppModel):
    results = await asyncio.gather(*(
        smol.generate([{"role": "user", "content": f"Say the number {i}."}], max_tokens=4,
                      timeout_s=120)
        for i in range(20)))
    assert len(results) == 20 and all(r.usage.completion_tokens > 0 for r in results)


async def test_interleaved_generate_and_score_calls_do_not_disturb_scores(gemma: LlamaCppModel):
    prompt, labels = "Q: Do fish live in water or in trees?\nA: Fish live in", ["water", "trees"]
    alone = await gemma.score_labels(prompt, labels, timeout_s=60)
    calls: list[Any] = []
    for i in range(6):
        calls.append(gemma.generate([{"role": "user", "content": f"Count to {i}."}],
                                    max_tokens=3, timeout_s=120))
        calls.append(gemma.score_labels(prompt, labels, timeout_s=120))
    results = await asyncio.gather(*calls)
    for scores in results[1::2]:
        assert all(math.isclose(alone[k], scores[k], abs_tol=1e-3) for k in labels)


async def test_a_prompt_longer_than_the_context_is_a_backend_error(smol: LlamaCppModel):
    long: list[Any] = [{"role": "user", "content": "secretword " * 3000}]
    with pytest.raises(BackendError, match="context window") as info:
        await smol.generate(long, max_tokens=4, timeout_s=60)
    assert "secretword" not in str(info.value)
    with pytest.raises(BackendError, match="n_ctx") as info:
        await smol.score_labels("secretword " * 3000, ["a", "b"], timeout_s=60)
    assert "secretword" not in str(info.value)


def test_a_missing_file_names_the_file(tmp_path: Path):
    missing = tmp_path / "nowhere.gguf"
    with pytest.raises(BackendError, match=r"nowhere\.gguf") as info:
        LlamaCppModel(missing)
    assert info.value.backend == "llamacpp:nowhere"


def test_a_corrupt_file_is_a_backend_error(tmp_path: Path):
    junk = tmp_path / "x.gguf"
    junk.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(BackendError, match=r"x\.gguf") as info:
        LlamaCppModel(junk)
    assert not isinstance(info.value.__cause__, BackendError)  # chained to the library's error


def test_gpu_layers_fall_back_to_the_cpu_with_a_warning_without_gpu_support(
        log_stream: io.StringIO) -> None:
    import llama_cpp

    got = _gpu_layers(12, "llamacpp:x")
    events = [json.loads(line) for line in log_stream.getvalue().splitlines()]
    warned = [e for e in events if e["event"] == "gpu_unavailable"]
    if llama_cpp.llama_supports_gpu_offload():
        assert got == 12 and not warned
    else:
        assert got == 0 and warned[0]["n_gpu_layers"] == 12 and warned[0]["fallback"] == "cpu"
    assert _gpu_layers(0, "llamacpp:x") == 0


def test_the_spec_carries_the_quota_and_gpu_settings() -> None:
    spec = LlamaCppModelSpec(kind="llamacpp", model="smollm2-135m-instruct", max_concurrency=2,
                             max_queue=5, n_gpu_layers=-1)
    assert (spec.max_concurrency, spec.max_queue, spec.n_gpu_layers) == (2, 5, -1)
    with pytest.raises(ValueError, match="max_queue"):
        LlamaCppModelSpec(kind="llamacpp", model="smollm2-135m-instruct", max_queue=-1)
