"""``input_guard``: stop prompt injection, jailbreaks and off-topic requests before any model
reads them.

Two parts, combined:

- A trained classifier (default: the packaged ``guard.onnx``, word and character n-gram TF-IDF
  + logistic regression over ``allow | injection | jailbreak | off_topic``, trained on public
  prompt-injection, jailbreak and harmful-request collections and the project's own lines;
  text only, so the core install needs no embedder; built by ``make guard-model``, scripts in
  ``tools/guard/``, see ``docs/guard.md``).
  A node may name another ``onnx-classifier`` model; its labels must include ``allow``; a label
  ``off_topic`` gets the off-topic action, every other non-``allow`` label counts as an attack.
- Rules: high-precision regular expressions for injection and jailbreak markers, and the chat
  template tokens of llama.cpp models (``<|im_start|>``, ``<start_of_turn>``, ``[INST]``,
  ``<|endoftext|>`` ...). Those tokens are stripped from the working text whatever the verdict
  (``AgentResult.text``), because a model whose tokenizer parses special tokens in user text would
  read them as real turn boundaries.

Scores (all in [0, 1])
----------------------
- ``attack`` = the classifier's probability of all attack labels, raised to the largest
  ``floor`` of the rules that fired (a rule never lowers it). Rule floors: marker rules 0.97,
  chat-role tokens (a token that opens a turn) 0.95, other special tokens 0.6, so a lone stray
  ``<|endoftext|>`` is reviewed rather than refused.
  A message longer than ``window_chars`` (default 1,000) is also classified in half-overlapping
  windows, and the classifier's attack probability is the largest over the message and its
  windows: long role-play jailbreaks and instructions buried in pasted documents are judged where
  they are, not diluted by the text around them.
- ``off_topic`` = the classifier's probability of ``off_topic`` (whole message).

Verdict: ``attack >= refuse_above`` -> ``refuse``; else ``off_topic >= refuse_above`` -> the
configured ``off_topic`` action; else ``attack >= review_above`` -> ``review``; else ``off_topic
>= review_above`` -> ``review`` (``allow`` if the off-topic action is ``allow``); else ``allow``.
The ``emergency`` rule (self-harm, chest pain, not breathing, overdose ...) sets ``off_topic`` to
0, so an emergency is never refused as off-topic; it leaves ``attack`` alone. ``score`` in the
output is the score that decided (for ``allow``: the larger of the two, i.e. how close the message
came to a threshold).

``AgentResult.confidence`` is the classifier's top probability, adjusted by the rules: for a
verdict against an attack it is ``attack`` (so a rule hit lifts it to the rule's floor); for an
off-topic verdict it is ``off_topic``; for ``allow`` it is ``P(allow)``, capped at ``1 - attack``
when an attack rule fired, raised to ``1 - attack`` when the emergency rule fired. A node's
``escalate_below`` can then send unsure verdicts on.

The label is the verdict (``allow | refuse | review``) so a route can switch on it; ``refuse``
stops the run; ``review`` asks for escalation with a reason naming the category, score and
rule ids. Outputs and reasons never contain the input text.

onnxruntime is imported when the agent is built (the classifier loads), not on import.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from shoal.agents.base import Agent, AgentConfig, AgentContext, AgentResult, register
from shoal.errors import AgentError
from shoal.models.base import Classifier
from shoal.models.onnx import load_classifier
from shoal.resources import AGENT_DATA, builtin_path

__all__ = [
    "GuardConfig",
    "InputGuard",
    "RULES",
    "Rule",
    "default_model_path",
    "normalise",
    "strip_special",
    "windows",
]

Verdict = Literal["allow", "refuse", "review"]
VERDICTS: frozenset[str] = frozenset({"allow", "refuse", "review"})

ALLOW = "allow"
OFF_TOPIC = "off_topic"

MODEL_FILE = "guard.onnx"


def default_model_path() -> Path:
    """The packaged guard model (its sidecar sits beside it)."""
    return builtin_path(AGENT_DATA, MODEL_FILE)


# --- rules --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rule:
    """A high-precision marker: ``id`` appears in the output, ``floor`` is the attack score it
    guarantees, ``category`` names the attack when the rule decides."""

    id: str
    category: str
    floor: float
    pattern: re.Pattern[str]


def _rx(pattern: str, flags: int = re.IGNORECASE) -> re.Pattern[str]:
    return re.compile(pattern, flags)


_MARKER = 0.97
_ROLE_TOKEN = 0.95
_SPECIAL_TOKEN = 0.6

RULES: tuple[Rule, ...] = (
    # "ignore/disregard ... previous/above/system ... instructions": the classic override. Needs
    # an override verb, a scope word and an instruction noun, with "my" not accepted as the
    # owner, so "the discharge instructions say to ignore the old dose", "ignore my previous
    # message" or "disregard the previous instructions I sent" do not match.
    Rule("ignore_instructions", "injection", _MARKER, _rx(
        r"\b(?:ignore|disregard|forget|override|bypass|discard)\b\s+(?:all\s+|any\s+|every\s+)?"
        r"(?:of\s+)?(?:the\s+|your\s+|these\s+|those\s+)?"
        r"(?:previous|prior|above|earlier|preceding|original|initial|system)\s+"
        r"(?:(?:system|safety|ai|model|assistant)\s+)?"
        r"(?:instructions?|prompts?|directives?|guidelines|rules|context)\b"
        r"(?!\s+(?:i|we)\s+(?:sent|gave|left|wrote|mentioned))")),
    # "ignore the above": rare in a patient's single message but not unheard of ("ignore the
    # above, I found it"), so on its own it only reaches review; the classifier decides refusal.
    Rule("ignore_above", "injection", _SPECIAL_TOKEN, _rx(
        r"\b(?:ignore|disregard|forget)\s+(?:all\s+of\s+|everything\s+)?(?:the\s+)?above\b")),
    # Asking for the prompt itself. "system prompt" is not patient vocabulary ("the system
    # prompted me" does not match); "your original instructions" needs a leak verb before it.
    Rule("prompt_leak", "injection", _MARKER, _rx(
        r"\bsystem\s+prompt\b|\bpre-?prompt\b|"
        r"\b(?:print|reveal|show|repeat|output|display|dump|leak|tell\s+me|recite|copy)\b"
        r"[^.?!\n]{0,40}\byour\s+(?:system|initial|original|hidden|secret|developer)\s+"
        r"(?:instructions|rules|guidelines|message|configuration)\b")),
    # Fake turn markers and notes addressed to the model inside pasted text.
    Rule("fake_role_tag", "injection", _MARKER, _rx(
        r"(?:^|\n)\s*(?:#{2,}\s*)?(?:system|assistant)\s*(?:message)?\s*:|"
        r"</?\s*(?:system|user|assistant|instructions?)\s*>|"
        r"\[\s*(?:system|assistant)(?:\s+(?:note|message|override))?\s*\]|"
        r"#{3,}\s*(?:system|instruction|end)|"
        r"\bnote\s+to\s+(?:the\s+)?(?:ai|model|assistant)\b|"
        r"\b(?:ai|assistant)\s*:\s*(?:ignore|disregard|forget|approve|reveal|print)")),
    # Persona overrides need an AI-ish noun: "you are no longer an in-network provider" or "from
    # now on you are to send reminders by email" do not match.
    Rule("role_override", "injection", 0.9, _rx(
        r"\b(?:you\s+are\s+(?:now|no\s+longer)|(?:from\s+now\s+on|henceforth),?\s+you\s+"
        r"(?:are|will\s+be|will\s+act\s+as|act\s+as))\s+(?:a|an|the|in)?\s*(?:[\w-]+\s+){0,2}"
        r"(?:ai|assistant|bot|chatbot|model|terminal|administrator|admin|persona|character)\b|"
        r"\byour\s+new\s+role\s+is\b")),
    # DAN is case-sensitive and needs a persona verb: "dan"/"DAN" is also a first name.
    Rule("dan_persona", "jailbreak", _MARKER, re.compile(
        r"(?i:\b(?:as|be|am|you\s+are|stay|called|pretend\s+to\s+be))\s+DAN\b|"
        r"\bDAN\s+(?:mode|prompt)\b|\bDAN\b,?\s+(?:which|who)\s+(?i:stands|can)|"
        r"(?i:\bdo\s+anything\s+now\b)|\bBetterDAN\b|\bSTAN\b")),
    Rule("developer_mode", "jailbreak", _MARKER, _rx(
        r"\b(?:developer|dev|god|sudo|jailbreak|unrestricted|unfiltered|opposite|uncensored)"
        r"\s+mode\b|\bjailbroken\s+(?:ai|assistant|mode|bot|model)\b|"
        r"\byou(?:'re|\s+are)\s+(?:now\s+)?jailbroken\b")),
    # Addressed to the AI ("your safety filters"): "remove the safety cap" or "turn off the
    # safety settings on my pump" do not match.
    Rule("disable_safety", "jailbreak", _MARKER, _rx(
        r"\b(?:bypass|disable|turn\s+off|switch\s+off|remove|drop|override|get\s+around|"
        r"circumvent|ignore)\s+(?:all\s+)?(?:of\s+)?(?:your|its)\s+(?:own\s+)?"
        r"(?:safety\s+(?:filters?|rules|guidelines|training|protocols|restrictions)|"
        r"content\s+(?:policy|policies|filters?)|guardrails|ethical\s+(?:guidelines|limits|rules)|"
        r"censorship|filters|moderation)\b|"
        r"\b(?:no|without\s+(?:any\s+)?)\s*(?:content\s+polic(?:y|ies)|ethical\s+"
        r"(?:guidelines|limits)|safety\s+guidelines|guardrails)\b")),
)

# A safety valve, not an attack marker: a message naming an emergency or a crisis is never
# refused or reviewed as off-topic (the classifier's off-topic score is ignored), because sending a
# patient in danger away is the worst mistake this agent can make. It does not lower the attack
# score: "chest pain" added to an injection still gets the injection refused.
EMERGENCY = Rule("emergency", ALLOW, 0.0, _rx(
    r"\b(?:suicid\w*|kill(?:ing)?\s+myself|end(?:ing)?\s+(?:my\s+life|it\s+all)|"
    r"hurt(?:ing)?\s+myself|harm(?:ing)?\s+(?:myself|someone)|want\s+to\s+die|overdos\w*|"
    r"chest\s+pain|can'?t\s+breathe|not\s+breathing|unconscious|unresponsive|seizure|"
    r"stroke|passed\s+out|faint(?:ed)?|bleeding|anaphyla\w*|allergic\s+reaction|"
    r"swallowed|poison\w*|911)\b"))

_ROLE_TOKENS = (
    r"<\|im_start\|>", r"<\|start_header_id\|>", r"<\|begin_of_text\|>", r"<start_of_turn>",
    r"\[/?INST\]", r"<<\s*/?SYS\s*>>", r"<\|(?:system|user|assistant)\|>",
)
_OTHER_TOKENS = (
    r"<\|im_end\|>", r"<\|endoftext\|>", r"<\|end_header_id\|>", r"<\|eot_id\|>",
    r"<\|end_of_text\|>", r"<\|end\|>", r"<end_of_turn>", r"<bos>", r"<eos>", r"</s>", r"<s>",
    r"<\|file_separator\|>", r"<\|fim_(?:prefix|middle|suffix)\|>",
)
_ROLE_TOKEN_RX = re.compile("|".join(_ROLE_TOKENS))
_OTHER_TOKEN_RX = re.compile("|".join(_OTHER_TOKENS))
_ANY_TOKEN_RX = re.compile("|".join(_ROLE_TOKENS + _OTHER_TOKENS))

TOKEN_RULES: tuple[Rule, ...] = (
    Rule("chat_role_token", "injection", _ROLE_TOKEN, _ROLE_TOKEN_RX),
    Rule("special_token", "injection", _SPECIAL_TOKEN, _OTHER_TOKEN_RX),
)

# Invisible characters split a marker ("ig\u200bnore") so neither rule nor classifier sees it.
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"))


def strip_special(text: str) -> str:
    """``text`` without chat template tokens (each replaced by one space)."""
    return _ANY_TOKEN_RX.sub(" ", text)


def normalise(text: str) -> str:
    """``text`` as the rules and the classifier read it: NFKC (full-width and styled letters,
    such as a full-width "ignore", fold to ASCII, which both the rules and the classifier's
    ASCII token pattern need) without invisible characters (which split a marker). Training data
    for a guard model should go through it too."""
    return unicodedata.normalize("NFKC", text).translate(_INVISIBLE)



def windows(text: str, size: int | None) -> list[str]:
    """The windows of ``text`` the classifier also reads: ``size`` characters each, starting
    every ``size // 2`` characters, cut back to the last whitespace so no word is split; none
    when ``size`` is ``None`` or the text fits in one."""
    if size is None or len(text) <= size:
        return []
    out: list[str] = []
    start = 0
    while start < len(text):
        end = min(len(text), start + size)
        if end < len(text):
            space = text.rfind(" ", start + size // 2, end)
            end = space if space > start else end
        out.append(text[start:end])
        if end >= len(text):
            break
        nxt = start + size // 2
        space = text.find(" ", nxt, end)
        start = space + 1 if space != -1 else nxt
    return out


# --- agent --------------------------------------------------------------------------------------


class GuardConfig(AgentConfig):
    refuse_above: float = Field(default=0.8, gt=0.0, le=1.0)
    """Attack (or off-topic) score at or above which the message is refused. On the packaged
    model's held-out data, attacks mostly score above 0.9 and patient messages below 0.3."""
    review_above: float = Field(default=0.5, gt=0.0, le=1.0)
    """Score at or above which a message not refused goes to review (escalation)."""
    off_topic: Verdict = "refuse"
    """What to do with an off-topic message scoring at or above ``refuse_above``."""
    strip_tokens: bool = True
    """Remove chat template tokens from the working text for every later node."""
    rules: bool = True
    """Apply the rules; off leaves the classifier alone (for measuring it)."""
    window_chars: int | None = Field(default=1000, ge=100)
    """A message longer than this is also classified in windows of this many characters (each
    overlapping the next by half), and its attack score is the largest of the whole message's
    and every window's: an instruction buried in a long pasted document, or a role-play preamble
    that runs past what the model reads, is judged on its own. ``None`` classifies the whole
    message only. The off-topic score is always the whole message's, so one odd paragraph in a
    long patient letter does not make the letter off-topic."""
    timeout_s: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> GuardConfig:
        if self.review_above > self.refuse_above:
            raise ValueError("review_above must not exceed refuse_above")
        return self


class InputGuard(Agent):
    """Refuses or flags prompt injection, jailbreaks and off-topic requests (see the module)."""

    name = "input_guard"
    Config = GuardConfig
    config: GuardConfig

    def __init__(self, config: AgentConfig, *, node: str, model: Any = None) -> None:
        super().__init__(config, node=node, model=model)
        if model is None:
            model = load_classifier(default_model_path(), name="input-guard")
        if not isinstance(model, Classifier):
            raise AgentError(f"model must be a trained Classifier (onnx-classifier), got "
                             f"{type(model).__name__}", node=node, agent=self.name)
        if ALLOW not in model.labels:
            raise AgentError(f"the model's labels {sorted(model.labels)} must include "
                             f"{ALLOW!r}", node=node, agent=self.name)
        self.classifier: Classifier = model
        self._attack_labels = tuple(lb for lb in model.labels if lb not in (ALLOW, OFF_TOPIC))

    @classmethod
    def labels(cls, config: AgentConfig) -> frozenset[str] | None:
        return VERDICTS

    def check_rules(self, text: str) -> list[Rule]:
        """The rules that fire on ``text`` (normalised first), in :data:`RULES` order."""
        if not self.config.rules:
            return []
        normal = normalise(text)
        return [rule for rule in (*RULES, *TOKEN_RULES, EMERGENCY)
                if rule.pattern.search(normal)]

    async def run(self, ctx: AgentContext) -> AgentResult:
        fired = self.check_rules(ctx.text)
        stripped = strip_special(ctx.text)
        normal = normalise(stripped)
        # One classify call for the message and its windows (a batch costs about one call).
        [probs, *parts] = await self.classifier.classify(
            [normal, *windows(normal, self.config.window_chars)],
            timeout_s=self.config.timeout_s)
        attack_p = max(sum(p.get(lb, 0.0) for lb in self._attack_labels)
                       for p in (probs, *parts))
        if parts and self._attack_labels:
            # The category of a window that decided names the attack, not the whole text's.
            probs_for_category = max((probs, *parts), key=lambda p: sum(
                p.get(lb, 0.0) for lb in self._attack_labels))
        else:
            probs_for_category = probs
        off = probs.get(OFF_TOPIC, 0.0)
        if EMERGENCY in fired:
            off = 0.0
        attacks = [r for r in fired if r.category != ALLOW]
        floor_rule = max(attacks, key=lambda r: r.floor, default=None)
        attack = max(attack_p, floor_rule.floor if floor_rule else 0.0)
        if floor_rule is not None and floor_rule.floor > attack_p:
            category = floor_rule.category
        elif self._attack_labels:
            category = max(self._attack_labels, key=lambda lb: probs_for_category.get(lb, 0.0))
        else:
            category = "attack"

        cfg = self.config
        verdict: Verdict
        if attack >= cfg.refuse_above:
            verdict, score, confidence = "refuse", attack, attack
        elif off >= cfg.refuse_above:
            verdict, score, confidence, category = cfg.off_topic, off, off, OFF_TOPIC
        elif attack >= cfg.review_above:
            verdict, score, confidence = "review", attack, attack
        elif off >= cfg.review_above and cfg.off_topic != "allow":
            verdict, score, confidence, category = "review", off, off, OFF_TOPIC
        else:
            verdict, score, category = "allow", max(attack, off), ALLOW
            confidence = probs.get(ALLOW, 0.0)
            if EMERGENCY in fired:
                confidence = max(confidence, 1.0 - attack)
            elif attacks:
                confidence = min(confidence, 1.0 - attack)

        rule_ids = [r.id for r in fired]
        output = {"verdict": verdict, "category": category, "score": round(score, 4),
                  "rules": rule_ids}
        # Only names, numbers and rule ids: the reason is logged and traced.
        detail = f"{category} (score {score:.2f}" + (
            f"; rules: {', '.join(rule_ids)})" if rule_ids else ")")
        text = stripped if cfg.strip_tokens and stripped != ctx.text else None
        confidence = min(1.0, max(0.0, confidence))
        if verdict == "refuse":
            return AgentResult(output=output, label=verdict, confidence=confidence,
                               reason=f"refused: {detail}", refuse=True, text=text)
        if verdict == "review":
            return AgentResult(output=output, label=verdict, confidence=confidence,
                               reason=f"review: possible {detail}", escalate=True, text=text)
        return AgentResult(output=output, label=verdict, confidence=confidence,
                           reason=f"allowed; rules: {', '.join(rule_ids)}" if rule_ids else None,
                           text=text)


register(InputGuard.name, InputGuard)
