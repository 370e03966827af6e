"""OpenAICompatModel against a real llama_cpp.server (the embedded SmolLM2), and its failure
handling against FakeOpenAIServer, a scripted fake used only to inject faults."""

from __future__ import annotations

import asyncio
import io
import json
import os
import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel

from shoal import BackendError, BackendTimeout, OutputValidationError
from shoal.graphs.spec import OpenAIModelSpec, Price
from shoal.models import Generator
from shoal.models.local_server import LlamaServer, serve_embedded
from shoal.models.openai_compat import OpenAICompatModel
from shoal.models.tokens import generated_tokens
from tests.integration.fake_openai import (
    FakeResponse,
    closed_port,
    completion,
    error,
    fake_openai,
)

pytestmark = [pytest.mark.integration]

MESSAGES: list[dict[str, str]] = [{"role": "user", "content": "Tell me about the sea."}]
SECRET_PROMPT = "patient Jane Roe, MRN 4471-22"
PRICE = Price(input_per_mtok=2.5, output_per_mtok=10.0)


class Answer(BaseModel):
    answer: str
    score: int


class MaxJitter(random.Random):
    """Full jitter drawn at its ceiling, so a test knows the back-off it should see."""

    def uniform(self, a: float, b: float) -> float:
        return b


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="module")
def llama_server() -> Iterator[LlamaServer]:
    # Warm-up keeps the first request's one-off cost out of the tests' own timings.
    with serve_embedded(warmup=True) as server:
        pid = server.pid
        assert pid is not None and _pid_alive(pid)
        yield server
    assert not _pid_alive(pid), f"llama_cpp.server pid {pid} survived stop()"


def _real(server: LlamaServer, **kwargs) -> OpenAICompatModel:
    spec = OpenAIModelSpec(kind="openai", base_url=server.base_url, model=server.model_id,
                           timeout_s=60, max_retries=1, price=kwargs.pop("price", None))
    return OpenAICompatModel.from_spec(spec, **kwargs)


def _fake(base_url: str, **kwargs) -> OpenAICompatModel:
    kwargs.setdefault("backoff_base_s", 0.01)
    kwargs.setdefault("rng", MaxJitter())
    return OpenAICompatModel(base_url=base_url, model="fake-model",
                             timeout_s=kwargs.pop("timeout_s", 10.0),
                             max_retries=kwargs.pop("max_retries", 3), **kwargs)


def _events(stream: io.StringIO) -> list[dict]:
    """Events as shoal's production chain rendered them (the log_stream fixture logs at debug)."""
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def _retries(stream: io.StringIO) -> list[dict]:
    return [e for e in _events(stream) if e["event"] == "planner_retry"]


# --- the real server ----------------------------------------------------------------------------


def test_server_is_local_and_names_its_model(llama_server: LlamaServer):
    assert llama_server.base_url.startswith("http://127.0.0.1:")
    assert llama_server.model_id == "smollm2-135m-instruct"
    assert llama_server.startup_s is not None and llama_server.startup_s < 30
    assert llama_server.warmup_s is not None


async def test_text_comes_back_with_usage_and_cost(llama_server: LlamaServer):
    async with _real(llama_server, price=PRICE) as model:
        assert isinstance(model, Generator)
        before = generated_tokens().get(model.name, 0)
        out = await model.generate(MESSAGES, max_tokens=16)
    assert out.text.strip()
    assert out.model == llama_server.model_id
    # shoal serve's shoal_model_generated_tokens_total counts the planner's answers too.
    assert generated_tokens()[model.name] - before == out.usage.completion_tokens
    assert out.usage.prompt_tokens > 0 and 0 < out.usage.completion_tokens <= 16
    expected = (out.usage.prompt_tokens * 2.5 + out.usage.completion_tokens * 10.0) / 1e6
    assert out.cost_usd == pytest.approx(expected)
    assert out.latency_ms > 0
    assert out.finish_reason in {"stop", "length"}


async def test_no_price_means_no_cost(llama_server: LlamaServer):
    async with _real(llama_server) as model:
        out = await model.generate(MESSAGES, max_tokens=4)
    assert out.cost_usd is None


async def test_json_validates_against_a_pydantic_model(llama_server: LlamaServer):
    async with _real(llama_server) as model:
        out = await model.generate_json(
            [{"role": "user", "content": "Reply with JSON: answer 'yes', score 1."}], Answer,
            max_tokens=64)
        assert isinstance(out.data, Answer)
        # llama_cpp.server 0.3.x refuses the json_schema form; the model switched once and stays.
        assert model.json_mode == "json_object"
        raw = await model.generate_json(
            [{"role": "user", "content": 'Reply with JSON {"ok": true}.'}],
            {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]},
            max_tokens=32)
    assert isinstance(raw.data, dict) and isinstance(raw.data["ok"], bool)


async def test_twenty_concurrent_calls_succeed(llama_server: LlamaServer):
    async with _real(llama_server) as model:
        results = await asyncio.gather(*(model.generate(MESSAGES, max_tokens=4, timeout_s=120)
                                         for _ in range(20)))
    assert len(results) == 20
    assert all(r.usage.completion_tokens > 0 for r in results)


async def test_per_call_timeout_raises_backend_timeout(llama_server: LlamaServer):
    async with _real(llama_server) as model:
        started = time.perf_counter()
        with pytest.raises(BackendTimeout) as info:
            await model.generate(MESSAGES, max_tokens=64, timeout_s=0.001)
        assert time.perf_counter() - started < 0.5
        assert isinstance(info.value, TimeoutError) and info.value.timeout_s == 0.001
        # the model is still usable afterwards
        assert (await model.generate(MESSAGES, max_tokens=4)).text


def test_one_instance_across_event_loops(llama_server: LlamaServer):
    """Graph.run starts a loop per run; the same backend must keep working in each."""
    model = _real(llama_server)
    for _ in range(2):
        assert asyncio.run(model.generate(MESSAGES, max_tokens=2)).text is not None


async def test_a_server_that_cannot_start_says_why(tmp_path: Path):
    bogus = tmp_path / "not-a-model.gguf"
    bogus.write_bytes(b"this is not a GGUF file")
    server = LlamaServer(bogus, startup_timeout_s=60)
    with pytest.raises(BackendError, match="exited with code") as info:
        async with server:
            pass
    assert "log tail" in str(info.value)
    assert not server.running and server.log_path is None


# --- fault injection (FakeOpenAIServer) ---------------------------------------------------------


async def test_retries_then_succeeds_with_backoff(log_stream: io.StringIO):
    script = [error(503, type_="server_error"), error(429, headers={"Retry-After": "0"})]
    with fake_openai(*script) as fake:
        async with _fake(fake.base_url, backoff_base_s=0.1) as model:
            out = await model.generate(MESSAGES)
    assert out.text == "ok"
    assert len(fake.requests) == 3
    retries = _retries(log_stream)
    assert [(e["attempt"], e["status"], e["backoff_s"]) for e in retries] == [
        (1, 503, 0.1), (2, 429, 0.0)]
    assert fake.gaps()[0] >= 0.1  # the 503 was followed by its back-off
    assert all(set(e) == {"event", "level", "timestamp", "backend", "attempt", "status",
                          "error", "backoff_s"} for e in retries)


async def test_backoff_grows_exponentially_under_full_jitter(log_stream: io.StringIO):
    with fake_openai(*[error(502)] * 3) as fake:
        async with _fake(fake.base_url, backoff_base_s=0.05, max_retries=3) as model:
            await model.generate(MESSAGES)
    assert [e["backoff_s"] for e in _retries(log_stream)] == [0.05, 0.1, 0.2]
    assert [g >= b for g, b in zip(fake.gaps(), [0.05, 0.1, 0.2], strict=True)] == [True] * 3


async def test_full_jitter_draws_below_the_ceiling(log_stream: io.StringIO):
    with fake_openai(*[error(502)] * 3) as fake:
        async with _fake(fake.base_url, backoff_base_s=0.1, rng=random.Random(3)) as model:
            await model.generate(MESSAGES)
    drawn = [e["backoff_s"] for e in _retries(log_stream)]
    assert all(0.0 <= d <= c for d, c in zip(drawn, [0.1, 0.2, 0.4], strict=True))
    assert len(set(drawn)) == 3


async def test_gives_up_after_max_retries():
    with fake_openai(default=error(503, type_="server_error")) as fake:
        async with _fake(fake.base_url, max_retries=2) as model:
            with pytest.raises(BackendError) as info:
                await model.generate(MESSAGES)
    assert len(fake.requests) == 3
    assert "HTTP 503 (server_error)" in str(info.value)
    assert "3 attempt(s)" in str(info.value)
    assert not isinstance(info.value, BackendTimeout)


async def test_no_retry_on_400_and_no_echoed_body():
    echo = error(400, type_="invalid_request_error", code="context_length_exceeded",
                 message=f"your prompt '{SECRET_PROMPT}' is too long")
    with fake_openai(echo) as fake:
        async with _fake(fake.base_url) as model:
            with pytest.raises(BackendError) as info:
                await model.generate([{"role": "user", "content": SECRET_PROMPT}])
    assert len(fake.requests) == 1
    message = str(info.value)
    assert "HTTP 400 (invalid_request_error, context_length_exceeded)" in message
    assert SECRET_PROMPT not in message and "too long" not in message


async def test_retry_after_is_honoured():
    with fake_openai(error(429, headers={"Retry-After": "1"})) as fake:
        async with _fake(fake.base_url, retry_after_max_s=5.0) as model:
            await model.generate(MESSAGES)
    assert len(fake.requests) == 2
    assert 1.0 <= fake.gaps()[0] < 3.0


async def test_retry_after_is_capped(log_stream: io.StringIO):
    with fake_openai(error(429, headers={"Retry-After": "3600"})) as fake:
        async with _fake(fake.base_url, retry_after_max_s=0.2) as model:
            await model.generate(MESSAGES)
    assert _retries(log_stream)[0]["backoff_s"] == 0.2
    assert 0.2 <= fake.gaps()[0] < 2.0


async def test_no_retry_that_would_pass_the_deadline():
    with fake_openai(error(503, headers={"Retry-After": "20"})) as fake:
        async with _fake(fake.base_url, timeout_s=2.0) as model:
            started = time.perf_counter()
            with pytest.raises(BackendError, match="deadline"):
                await model.generate(MESSAGES)
    assert time.perf_counter() - started < 1.0
    assert len(fake.requests) == 1


async def test_slow_server_raises_backend_timeout():
    with fake_openai(FakeResponse(delay_s=2.0, body=completion().body)) as fake:
        async with _fake(fake.base_url, timeout_s=5.0) as model:
            started = time.perf_counter()
            with pytest.raises(BackendTimeout):
                await model.generate(MESSAGES, timeout_s=0.2)
            assert time.perf_counter() - started < 1.0
    assert len(fake.requests) == 1  # a read time-out is not re-sent


async def test_dropped_connection_is_retried():
    with fake_openai(FakeResponse(drop=True)) as fake:
        async with _fake(fake.base_url) as model:
            out = await model.generate(MESSAGES)
    assert out.text == "ok" and len(fake.requests) == 2


@pytest.mark.parametrize("reply", [
    FakeResponse(200, "this is not json {"),
    FakeResponse(200, {"object": "chat.completion", "model": "m"}),
    FakeResponse(200, {"choices": []}),
    FakeResponse(200, {"choices": [{"message": {"role": "assistant", "content": None}}]}),
    FakeResponse(200, [1, 2]),
], ids=["not-json", "no-choices", "empty-choices", "null-content", "not-an-object"])
async def test_malformed_response_is_a_backend_error(reply: FakeResponse):
    with fake_openai(reply) as fake:
        async with _fake(fake.base_url) as model:
            with pytest.raises(BackendError):
                await model.generate(MESSAGES)
    assert len(fake.requests) == 1


async def test_invalid_json_content_is_an_output_validation_error():
    with fake_openai(completion(f"Sure! {SECRET_PROMPT}"),
                     completion('{"answer": "yes", "score": "' + SECRET_PROMPT + '"}')) as fake:
        async with _fake(fake.base_url) as model:
            with pytest.raises(OutputValidationError, match="not valid JSON") as not_json:
                await model.generate_json(MESSAGES, Answer)
            with pytest.raises(OutputValidationError, match="score: int_parsing") as wrong:
                await model.generate_json(MESSAGES, Answer)
    for info in (not_json, wrong):
        assert SECRET_PROMPT not in str(info.value)
    assert wrong.value.__cause__ is None  # pydantic's error would quote the reply


async def test_json_request_uses_the_standard_response_format():
    with fake_openai(completion('{"answer": "yes", "score": 1}')) as fake:
        async with _fake(fake.base_url) as model:
            out = await model.generate_json(MESSAGES, Answer)
    assert out.data == Answer(answer="yes", score=1)
    fmt = fake.requests[0].body["response_format"]
    assert fmt["type"] == "json_schema"
    assert fmt["json_schema"]["name"] == "Answer" and fmt["json_schema"]["strict"] is True
    assert fmt["json_schema"]["schema"]["additionalProperties"] is False
    assert model.json_mode == "auto"


async def test_json_falls_back_to_llama_cpp_form_once(log_stream: io.StringIO):
    rejected = error(500, type_="internal_server_error",
                     message="1 validation error: ('body', 'response_format', 'type') ...")
    with fake_openai(rejected, default=completion("{}")) as fake:
        async with _fake(fake.base_url, max_retries=0) as model:
            first = await model.generate_json(MESSAGES, {"type": "object"})
            second = await model.generate_json(MESSAGES, {"type": "object"})
    assert first.data == second.data == {}
    formats = [r.body["response_format"] for r in fake.requests]
    assert [f["type"] for f in formats] == ["json_schema", "json_object", "json_object"]
    assert formats[1]["schema"] == {"type": "object"}
    assert not _retries(log_stream)
    assert [e["event"] for e in _events(log_stream)] == ["json_mode_fallback"]


async def test_connection_refused_is_a_backend_error_after_retries(log_stream: io.StringIO):
    async with _fake(f"http://127.0.0.1:{closed_port()}/v1", max_retries=2) as model:
        with pytest.raises(BackendError, match="ConnectError") as info:
            await model.generate(MESSAGES)
    assert "3 attempt(s)" in str(info.value)
    assert [(e["attempt"], e["status"], e["error"]) for e in _retries(log_stream)] == [
        (1, None, "ConnectError"), (2, None, "ConnectError")]


async def test_api_key_travels_as_bearer_and_nowhere_else(
    monkeypatch: pytest.MonkeyPatch, log_stream: io.StringIO
):
    key = "sk-test-7f3a9c1e5b"
    monkeypatch.setenv("SHOAL_TEST_PLANNER_KEY", key)
    spec = OpenAIModelSpec(kind="openai", base_url="http://127.0.0.1:1/v1", model="m",
                           api_key_env="SHOAL_TEST_PLANNER_KEY", max_retries=3)
    with fake_openai(error(503), default=error(401, type_="invalid_api_key")) as fake:
        spec = spec.model_copy(update={"base_url": fake.base_url})
        async with OpenAICompatModel.from_spec(spec, backoff_base_s=0.01) as model:
            with pytest.raises(BackendError) as info:
                await model.generate(MESSAGES)
    assert [r.headers["authorization"] for r in fake.requests] == [f"Bearer {key}"] * 2
    assert "planner_retry" in log_stream.getvalue()
    for text in (log_stream.getvalue(), str(info.value), repr(info.value), repr(model)):
        assert key not in text


async def test_unset_api_key_env_names_the_variable(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("SHOAL_TEST_MISSING_KEY", raising=False)
    spec = OpenAIModelSpec(kind="openai", base_url="http://127.0.0.1:1/v1", model="m",
                           api_key_env="SHOAL_TEST_MISSING_KEY")
    with pytest.raises(BackendError, match="SHOAL_TEST_MISSING_KEY"):
        OpenAICompatModel.from_spec(spec)
    monkeypatch.setenv("SHOAL_TEST_MISSING_KEY", "")
    with pytest.raises(BackendError, match="SHOAL_TEST_MISSING_KEY"):
        OpenAICompatModel.from_spec(spec)
