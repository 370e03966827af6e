"""Addresses in the formats of many countries, read as a sequence of word classes.

Each line is cut into words, and every word gets a class: a number, a street-type word of some
language ("Street", "rue", "Via", "utca", "u.", "tér", "tee", "Ctra.", "ul."; or a street name
with the type glued on: "Kerkstraat", "Amsinckstrasse"), a capitalised word, a word in another
script, a name particle (de, del, van, do...), an ordinary lower-case word, a unit ("Apt. 4").
A street is then one of these shapes, so no single street name has to be known:

* **numbers around words**: a building number, street words, a house number ("312 Fuente del
  Gallo 47", "12594 Trg revolucije 1", "89271 χλμ Αθηνών Σουνίου 246");
* **type first**: "Via Nuova del Campo 85", "Rue de bayrout", "ul. Długa 12/4", "Rúa do Paseo";
* **type last**: "Szilágyi Erzsébet fasor 69.", "Kárpát u. 16.", "Said Inlet Street",
  "LOW STREET" (without a number only for unmistakable types: Street, Road, utca...);
* **after an address cue** ("lives on", "address to", "located at", "corner of"): the words up
  to the end of the clause, when they hold a number or a street type ("Velký průhon 426").

Around a street: units ("Apt. 205"), the town after a comma ("..., SMITH'S GREEN"), a postcode
and town ("80-827 Gdańsk", "3581 RD Utrecht"), the town after "in" ("... street in
Castrillón"), and the lines below it of an address block (a town line, a region code, a
postcode), up to a country line. A town alone on a line right above a country line is a town too.

Postcodes of many shapes are taken before a town (after a comma or at a line start: "101
Reykjavík", "4050-262 Porto", "2611 HR Delft") and after "in" and a town ("in Kulusuk 3915").

A number followed by a unit ("4 hours", "1000 mg") never ends a street. Nothing here logs or
raises with the text.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

import regex  # type: ignore[import-untyped]

from shoal.policies.privacy.lexicon import countries

__all__ = ["AddressHit", "AddressRules"]


def _words(block: str) -> frozenset[str]:
    return frozenset(block.split())


@dataclass(frozen=True, slots=True)
class AddressHit:
    """A span found: ``entity`` is STREET_ADDRESS, LOCATION or ZIP_CODE."""

    entity: str
    start: int
    end: int
    score: float


# Street-type words that begin a street name, by language (compared case-folded, final dot
# ignored): Romance, Slavic, Baltic, Greek (transliterated), Turkish, Malay, Dutch/Afrikaans.
_TYPE_FIRST = _words("""
via viale vicolo piazza piazzale corso largo strada contrada borgo lungomare salita
rue chemin avenue allée allee impasse quai cours place boulevard bd route passage square
calle c carrer paseo camino carretera ctra avenida avda av plaza ronda rambla travesía travesia
glorieta pasaje callejón callejon urbanización
rua r rúa travessa praça praca estrada alameda largo ladeira beco
ul ulica aleja al plac pl os osiedle ulice třída nám náměstí nábřeží trieda námestie nábrežie
trg ulica cesta put bulevar bulevardul bul calea șoseaua soseaua aleea intrarea splaiul
odos odós leoforos leof plateia
jalan jl jln lorong gang gg
""")
# Street-type words that end a street name (English and others), compared case-folded.
_TYPE_LAST = _words("""
street st road rd avenue ave av lane ln drive dr court ct place pl terrace ter crescent cres
close square sq way highway hwy parkway pkwy circle cir trail trl alley row mews grove gardens
walk wharf quay esplanade parade promenade hill heights view green park point oval inlet
haven rapid rapids fall falls centers center centre bypass causeway expressway freeway
boulevard blvd loop pike plaza ridge run spur summit trace turnpike valley vista brook
cove creek crossing glen harbor harbour junction knoll landing manor meadow meadows mill
orchard pass path pines shore springs station track union villages ville
straße strasse str gasse weg platz allee ring damm ufer chaussee steig
vej gade allé stræde gata gatan vägen väg gränd torget vei veien vegen veg vegur gate torv plads
field fields ford lake lakes island isle mount port river wood woods end
katu tie kuja polku
straat laan weg gracht plein kade singel dreef steeg pad hof
utca u út tér körút krt köz fasor sor sétány rakpart
tee maantee puiestee tänav põik iela gatvė prospekt pr prospekti
sokak sokağı caddesi cad cadde bulvarı
""")
# Type-first words that are also ordinary words or single letters: a street only with a number.
_WEAK_FIRST = _words("""
place route passage square avenue boulevard plaza r c av al pl os bd bul gang cours largo salita
""")
# Types that mark a street without any number next to them.
_TYPE_STRONG = _words("""
street st road rd avenue ave lane ln boulevard blvd highway hwy terrace parkway pkwy
straße strasse str gasse utca út fasor körút tee maantee tänav iela ulica ul gatan vägen
""")
# Street names with the type glued on ("Kerkstraat", "Amsinckstrasse", "Storgata").
_GLUED = regex.compile(
    r"\p{Lu}[\p{L}\p{M}]{2,}(?:strasse|straße|gasse|weg|platz|allee|damm|ufer|gade|vej|vænget|"
    r"stræde|gatan|gata|gate|vägen|veien|vei|vegen|katu|kuja|polku|straat|laan|gracht|plein|"
    r"kade|singel|dreef|steeg|utca|sokak|sokağı|caddesi|iela|tänav|torget|gränd|stigen|"
    # Danish and Norwegian street names end in the kind of place as well ("Erhvervsvangen").
    r"vangen|vænget|parken|toften|stien|løkken|bakken|engen|lunden|torv|plads|åsen|haugen|"
    r"jordet|kroken|svingen|tunet|vegen|veg)\.?$")
# Ordinary English words of three letters or more that end a run of street words.
_STOP = _words("""
and the for with from that this was were are has have had but not you your our his her their its
into onto over under after before while when where which who whom please case issue about then
than there here also just only very will would could should can may might must shall did does
""")
_PARTICLES = _words("""
de del della delle dei degli dello dal dalla dalle di da do dos das du des la le les van von der
den het ter ten zu zum zur am an im auf y e i u a al el na nad pod pri sur sous en of the
""")
_UNIT = regex.compile(r"(?i:apt|apartment|suite|ste|unit|flat|fl|floor|room|rm|box|bldg|"
                      r"building|#)\.?$")
_NUMBER = regex.compile(r"\d{1,6}[A-Za-z]?(?:[/-]\d{1,4}[A-Za-z]?)?\.?$")
_CAPITAL = regex.compile(r"\p{Lu}[\p{L}\p{M}'’.-]*$")
_FOREIGN = regex.compile(r"(?:(?!\p{Latin})[\p{L}\p{M}]){2,}[.]?$")
_LOWER = regex.compile(r"\p{Ll}[\p{L}\p{M}'’-]*\.?$")
# What may follow a number that is a quantity, not a house number.
_UNITS_AFTER = regex.compile(
    r"[ \t]*(?i:mg|mcg|µg|μg|g|kg|ml|l|mmol|units?|iu|%|mm|cm|m|km|hours?|hrs?|h|min|minutes?|"
    r"seconds?|days?|weeks?|months?|years?|yo|y/o|times|x|pm|am|bpm|mmhg|tablets?|tabs?|caps?|"
    r"capsules?|puffs?|drops?|sprays?|doses?|percent|lbs?|pounds?|kilos?|miles?|feet|ft|"
    r"inches)\b")
_ADDRESS_CUE = regex.compile(
    r"\b(?i:lives?[ \t]+(?:at|on)|living[ \t]+(?:at|on)|resides?[ \t]+at|residing[ \t]+at|"
    r"located[ \t]+at|address(?:es)?(?:[ \t]+(?:is|was|to|at))?[ \t]*:?|moved[ \t]+to|"
    r"sent[ \t]+to|send[ \t]+(?:it[ \t]+)?to|mail(?:ed)?[ \t]+(?:it[ \t]+)?to|"
    r"deliver(?:ed)?[ \t]+to|ship(?:ped)?[ \t]+(?:it[ \t]+)?to|return(?:ed)?[ \t]+to|"
    r"taxi[ \t]+to|corner[ \t]+of|office[ \t]+is[ \t]+at|stop[ \t]+at|meet[ \t]+(?:me[ \t]+)?at"
    r"|rents)[ \t]+")
# Postcodes: "0150", "101", "610 60", "80-827", "4050-262", "2611 HR", "12345-6789".
_POSTCODE = r"(?:\d{4}[ \t]?[A-Z]{2}(?![\p{L}\d])|\d{3}[ \t]\d{2}(?!\d)|\d{2}-\d{3}(?!\d)|" \
            r"\d{4}-\d{3}(?!\d)|\d{5}-\d{4}(?!\d)|\d{3,6}(?![\d/:.,]\d))"
# A town: capitalised words, with the particles of town names between them ("Videm pri Ptuju",
# "Kostelec nad Cernými Lesy", "Saint-Pierre-sur-Dives", "Stratford upon Avon").
_TOWN_WORDS = r"\p{Lu}[\p{L}\p{M}'’.-]*(?:[ \t]+(?:\p{Lu}[\p{L}\p{M}'’.-]*|(?:de|del|la|le|les|" \
              r"sur|sous|am|an|im|bei|ob|der|di|da|do|dos|das|na|nad|pod|pri|při|v|ve|u|upon|on|" \
              r"en|y|i)(?=[ \t]+\p{Lu}))){0,4}"
_POSTCODE_TOWN = regex.compile(
    rf"(?:(?<=,[ \t]*)|(?<=^[^\S\n]*)|(?<=\n[^\S\n]*))"
    rf"(?P<pc>{_POSTCODE})[ \t]+(?P<town>{_TOWN_WORDS})(?=[ \t]*(?:[,;.)]|$|\n|\\n))",
    regex.MULTILINE)
_IN_TOWN_POSTCODE = regex.compile(
    r"(?<=\b(?:in|at|near|from)[ \t]+)(?P<town>\p{Lu}[\p{L}\p{M}'’-]+"
    r"(?:[ \t]+\p{Lu}[\p{L}\p{M}'’-]+)?)[ \t]+(?P<pc>\d{3,5})(?![\d/:.,]\d|\w)")
# Words before a number that make it something other than a postcode ("in Room 305").
_NOT_TOWNS = _words("""
room bed bay ward unit suite apt apartment floor level zone block building lot gate terminal
stage grade type phase class group section chapter step cycle version figure table appendix
lead tier week day year month hour page line cell box site visit dose trial study cohort arm
covid sars hiv icd january february march april may june july august september october
november december monday tuesday wednesday thursday friday saturday sunday
""")
_TOWN_LINE = regex.compile(
    r"[^\p{L}\p{N}\n]*(?P<town>\p{Lu}[\p{L}\p{M}'’.-]*(?:[ \t]+(?:\p{Lu}[\p{L}\p{M}'’.-]*|"
    r"\p{Ll}{1,3}(?=[ \t]+\p{Lu}))){0,3}(?:[ \t]*\(\p{Lu}[\p{L}\p{M}'’. -]*\))?)[ \t]*"
    r"(?P<rest>.*)")
# After a town: a region code and a postcode ("ΛΕΥΚΩΣΙΑ, NI 81872", "OBERHOF, OO 93467").
_REGION_POSTCODE = regex.compile(
    rf"[ \t]*,?[ \t]*(?:nan[ \t]+)?(?P<code>(?:[A-Z]{{2,3}}[ \t]+)?{_POSTCODE})")
# A line of an address block holding a region code and/or a postcode (", ZH", " 79281",
# ", PA 33271"), possibly followed by ordinary words.
_CODE_LINE = regex.compile(
    rf"[ \t]*,?[ \t]*(?:(?P<region>[A-Z]{{2,3}}|\d{{1,3}}|nan)(?=[ \t]|$))?[ \t]*"
    rf"(?P<pc>{_POSTCODE})?(?=[ \t]*(?:$|[.,;?!]|[ \t]\p{{Ll}}))")
_LINE_JUNK = regex.compile(r"[^\p{L}\p{N}\n]*")
_REGION_CODE = regex.compile(r"[ \t]*,?[ \t]*[A-Z]{2,3}[ \t]*$")
_WORD = regex.compile(r"[^\s,;]+")


@dataclass(frozen=True, slots=True)
class _Tok:
    start: int
    end: int
    text: str
    kind: str  # N number, T type, G glued street, C capital, F foreign, P particle, L lower, X
    comma: bool  # a comma or semicolon follows


class AddressRules:
    """The rules above. ``blocked``: words never read as a town (the pack's label words)."""

    def __init__(self, blocked: frozenset[str]) -> None:
        self.blocked = blocked
        self.countries = countries()

    def find(self, text: str) -> list[AddressHit]:
        hits: list[AddressHit] = []
        lines: list[tuple[int, str]] = []
        offset = 0
        for line in text.split("\n"):
            lines.append((offset, line))
            offset += len(line) + 1
        for index, (offset, line) in enumerate(lines):
            toks = self._tokens(line, offset)
            for street in self._streets(text, toks):
                hits.append(street)
                hits.extend(self._around(text, street, lines, index))
        hits.extend(self._postcodes(text))
        hits.extend(self._towns_above_countries(lines))
        return hits

    # -- words --------------------------------------------------------------------------------

    def _tokens(self, line: str, offset: int) -> list[_Tok]:
        out: list[_Tok] = []
        for m in _WORD.finditer(line):
            raw = m.group(0)
            word = raw.strip("\"“”‘’()[]{}<>")
            if not word:
                continue
            start = offset + m.start() + raw.index(word)
            end = start + len(word)
            after = line[m.end():m.end() + 1]
            out.append(_Tok(start, end, word, self._kind(word), after in (",", ";")))
        return out

    def _kind(self, word: str) -> str:
        bare = word.rstrip(".").casefold()
        if _NUMBER.match(word):
            return "N"
        if _GLUED.match(word):
            return "G"
        if bare in _TYPE_FIRST or bare in _TYPE_LAST:
            return "T"
        if bare in _PARTICLES:
            # Capitalised, a particle opens a street name ("An der Schillingbrucke 10", "De la
            # Providence Avenue"); a single capital letter is an initial or a house letter.
            return "C" if word[0].isupper() and len(bare) > 1 else "P"
        if bare in _STOP:
            return "X"
        if _CAPITAL.match(word):
            if _UNIT.match(word) or bare in _NOT_TOWNS:
                return "X"  # "Apt", "Stage", "Room": what they number is no street
            # A label word ("Dear", "Home") may sit inside a street name ("Old Dear Lane") but
            # never starts or names one.
            return "B" if bare in self.blocked else "C"
        if _FOREIGN.match(word):
            return "F"
        if _LOWER.match(word) and len(bare) >= 3:
            return "L"
        return "X"

    # -- streets ------------------------------------------------------------------------------

    def _streets(self, text: str, toks: list[_Tok]) -> Iterator[AddressHit]:
        i = 0
        cue_ends = {m.end() for m in _ADDRESS_CUE.finditer(text)}
        while i < len(toks):
            found = self._street_at(text, toks, i, toks[i].start in cue_ends)
            if found is None:
                i += 1
                continue
            j, score = found
            yield AddressHit("STREET_ADDRESS", toks[i].start, toks[j].end, score)
            i = j + 1

    def _street_at(self, text: str, toks: list[_Tok], i: int, cued: bool
                   ) -> tuple[int, float] | None:
        """The index of the last word of a street starting at word ``i``, and its score."""
        kinds = "".join(t.kind for t in toks)
        if cued:
            # "the corner of Ágatha and Tacuarembo 3069": after a cue, "and" joins two streets.
            kinds = "".join("P" if t.text == "and" else k for t, k in zip(toks, kinds, strict=True))
        # A run of street words on one clause: no comma inside, at most six words.
        j = i
        # A number closing a sentence ("... in 2019. Stage 2") is no building number.
        if kinds[j] == "N" and not toks[j].comma and not toks[j].text.endswith("."):
            j += 1
            if j < len(toks) and kinds[j] == "N" and not toks[j].comma:
                j += 1  # "11084 96 Hexham Road": a building number and a house number
        body_start = j
        while (j < len(toks) and j - body_start < 6 and kinds[j] in "TGCFPLB"
               and not toks[j].comma):
            j += 1
        if j < len(toks) and kinds[j] in "TGCFPLB" and toks[j].comma and j - body_start < 6:
            j += 1  # the last street word may carry the comma
        body = kinds[body_start:j]
        if not body or body[0] == "B" or (body[0] in "PL" and not (cued and body[0] == "L")):
            return None
        lead_number = body_start > i
        # The house number after the words (and a lower-case type after it: "426 street").
        end = j - 1
        house = trailing_type = False
        if j < len(toks) and kinds[j] == "N" and not toks[j - 1].comma and _house_number(
                text, toks[j]):
            end, house = j, True
            if (j + 1 < len(toks) and kinds[j + 1] == "T" and not toks[j].comma
                    and toks[j + 1].text.rstrip(".").casefold() in _TYPE_LAST
                    and (j + 2 >= len(toks) or kinds[j + 2] not in "CFPLG")):
                end, trailing_type = j + 1, True  # "Skogarlond 53 St.", "Velký průhon 426 street"
        if cued and house and end + 2 < len(toks) and toks[end + 1].text == "and" \
                and kinds[end + 2] in "CTG":
            # "the corner of Ártún 55 and Fosca Field": the second street of the corner.
            k = end + 2
            while k + 1 < len(toks) and kinds[k + 1] in "CTGPN" and not toks[k].comma \
                    and k - end < 6:
                k += 1
            if any(kinds[x] in "TGN" for x in range(end + 2, k + 1)):
                return k, 0.55
        # Ordinary lower-case words only inside a street that is anchored by numbers or a type,
        # never last unless a number follows.
        words = kinds[body_start:j]
        if "L" in words and not (house or words[0] in "T" or cued):
            return None
        french_style = regex.fullmatch(r"TP+L", words) is not None  # "Rue de bayrout"
        if words.endswith(("P", "L")) and not house and not french_style:
            while words and words[-1] in "PL":
                words = words[:-1]
                end -= 1
            if not words:
                return None
        has_type = "T" in words or "G" in words or trailing_type
        # Some word names the street: a capitalised word, a glued name, a type word used as a
        # name ("Rúa do Paseo"), a lower-case word after a type ("Trg revolucije").
        named = (any(k in "CFG" for k in words) or words.count("T") >= 2
                 or (has_type and any(k in "LB" for k in words[1:])))
        if not named:
            return None
        if words[0] == "T":
            first_type = toks[body_start].text.rstrip(".").casefold()
            prefix_ok = first_type in _TYPE_FIRST and (toks[body_start].text[0].isupper()
                                                       or first_type in ("rue", "ul"))
            numbered = house or lead_number
            if prefix_ok and len(words) >= 2 and (numbered or first_type not in _WEAK_FIRST):
                return end, 0.6
        if "G" in words and (house or lead_number):
            return end, 0.6
        if trailing_type:
            return end, 0.6
        if has_type and words[-1] == "T" and len(words) >= 2:
            last_type = toks[body_start + len(words) - 1].text.rstrip(".").casefold()
            if house or lead_number or last_type in _TYPE_STRONG:
                return end, 0.6
        if lead_number and house and len(words) <= 5:
            return end, 0.55  # "312 Fuente del Gallo 47"
        if (lead_number and words.count("C") + words.count("F") >= 2 and toks[end].comma
                and end + 1 < len(toks) and kinds[end + 1] == "C"):
            return end, 0.5  # "3 Ard na Gréine, Ballina": a building number, words, a town
        if cued and (house or lead_number or has_type):
            return end, 0.55
        if (lead_number and words.count("C") + words.count("F") >= 2 and not house
                and self._block_follows(text, toks[end].end)):
            return end, 0.45  # "6793 86 Pavlou Drandaki" heading a town line
        return None

    def _block_follows(self, text: str, end: int) -> bool:
        """Whether ``end`` closes its line and the next line is a unit, a town or a code line of
        an address block."""
        rest = text[end:end + 200]
        m = regex.match(r"[ \t.,]*\n(?P<line>[^\n]*)", rest)
        if m is None:
            return False
        junk = _LINE_JUNK.match(m.group("line"))
        body = m.group("line")[junk.end() if junk else 0:].rstrip()
        if not body:
            return False
        if regex.match(r"(?i:apt|apartment|suite|ste|unit|flat|box)\.?[ \t]*#?[ \t]*\d", body):
            return True
        town = _TOWN_LINE.fullmatch(body)
        return town is not None and not town.group("rest").strip(" ,") and \
            all(w.casefold().strip(".") not in self.blocked for w in town.group("town").split())

    # -- around a street ----------------------------------------------------------------------

    def _around(self, text: str, street: AddressHit, lines: list[tuple[int, str]], index: int
                ) -> Iterator[AddressHit]:
        rest = text[street.end:]
        # Same line: units, then ", [postcode] Town", "in Town".
        pos = street.end
        unit = regex.match(r"[ \t]*,?[ \t]*(?P<unit>(?i:apt|apartment|suite|ste|unit|flat|fl|"
                           r"floor|room|rm|box|bldg)\.?[ \t]*#?[ \t]*[A-Za-z]?\d{1,6}[A-Za-z]?)",
                           rest)
        if unit is not None:
            yield AddressHit("STREET_ADDRESS", pos + unit.start("unit"), pos + unit.end(), 0.55)
            pos += unit.end()
        tail = regex.match(
            rf"[ \t]*,[ \t]*(?:(?P<pc>{_POSTCODE})[ \t]+)?(?P<town>{_TOWN_WORDS})", text[pos:])
        if tail is None:
            tail = regex.match(rf"[ \t]+in[ \t]+(?P<pc>)(?P<town>{_TOWN_WORDS})", text[pos:])
        if tail is None and unit is not None:
            # After a unit, the next capitalised words on the line are the town ("Apt. 846
            # CHAUMONT France", "Suite 482 Šentilj v Slovenskih").
            tail = regex.match(rf"[ \t]+(?P<pc>)(?P<town>{_TOWN_WORDS})", text[pos:])
        if tail is not None:
            if tail.group("pc"):
                yield AddressHit("ZIP_CODE", pos + tail.start("pc"), pos + tail.end("pc"), 0.55)
            town = self._town(text, pos + tail.start("town"), pos + tail.end("town"))
            if town is not None:
                yield town
                code = _REGION_POSTCODE.match(text, town.end)
                if code is not None:
                    yield AddressHit("ZIP_CODE", code.start("code"), code.end("code"), 0.5)
        # Lines below: a unit, a town, a region code, a postcode, until a country or a line of
        # something else.
        start_line = next((k for k in range(index, len(lines))
                           if lines[k][0] + len(lines[k][1]) >= street.end), index)
        if text[pos:lines[start_line][0] + len(lines[start_line][1])].strip(" \t.,"):
            return  # the street line goes on with other words: not an address block
        for offset, line in lines[start_line + 1:start_line + 5]:
            junk = _LINE_JUNK.match(line)
            body_at = offset + (junk.end() if junk else 0)
            body = text[body_at:offset + len(line)].rstrip()
            if not body:
                continue
            if body.casefold().strip(" .,") in self.countries:
                return
            unit_line = regex.fullmatch(r"(?i:apt|apartment|suite|ste|unit|flat|box)\.?[ \t]*"
                                        r"#?[ \t]*\d{1,6}[A-Za-z]?\.?", body)
            if unit_line is not None:
                yield AddressHit("STREET_ADDRESS", body_at, body_at + len(body), 0.55)
                continue
            code = _CODE_LINE.match(body)
            if code is not None and (code.group("region") or code.group("pc")):
                if code.group("region") and code.group("region") != "nan":
                    # A region code inside an address block ("Cite Jamil\n, 12\n Tunisia"):
                    # masked with the block, recall first (typed as part of the address, since
                    # a code such as "PA" is also a field label).
                    yield AddressHit("STREET_ADDRESS", body_at + code.start("region"),
                                     body_at + code.end("region"), 0.45)
                if code.group("pc"):
                    yield AddressHit("ZIP_CODE", body_at + code.start("pc"),
                                     body_at + code.end("pc"), 0.55)
                if code.end() < len(body):
                    return  # the line goes on in words ("38903 last night")
                continue
            town_line = _TOWN_LINE.fullmatch(body)
            if town_line is None:
                return
            town = self._town(text, body_at + town_line.start("town"),
                              body_at + town_line.end("town"))
            if town is None:
                return
            yield town
            pc = _REGION_POSTCODE.match(text, body_at + town_line.start("rest"))
            if pc is not None:
                yield AddressHit("ZIP_CODE", pc.start("code"), pc.end("code"), 0.55)

    def _town(self, text: str, start: int, end: int) -> AddressHit | None:
        value = text[start:end].rstrip(" .,")
        end = start + len(value)
        folded = value.casefold()
        if not value or folded in self.countries or folded in self.blocked:
            return None
        if all(w.casefold().strip(".") in self.blocked for w in value.split()):
            return None
        return AddressHit("LOCATION", start, end, 0.5)

    # -- postcodes and towns without a street --------------------------------------------------

    def _postcodes(self, text: str) -> Iterator[AddressHit]:
        for m in _POSTCODE_TOWN.finditer(text):
            town = self._town(text, m.start("town"), m.end("town"))
            if town is None or _UNITS_AFTER.match(text, m.end("pc")):
                continue
            yield AddressHit("ZIP_CODE", m.start("pc"), m.end("pc"), 0.5)
            yield town
        for m in _IN_TOWN_POSTCODE.finditer(text):
            words = m.group("town").split()
            if any(w.casefold() in _NOT_TOWNS or w.casefold() in self.blocked for w in words):
                continue
            if _UNITS_AFTER.match(text, m.end("pc")) or regex.fullmatch(r"(?:19|20)\d\d",
                                                                         m.group("pc")):
                continue  # a quantity, or a year ("in London 1980")
            yield AddressHit("ZIP_CODE", m.start("pc"), m.end("pc"), 0.5)
            town = self._town(text, m.start("town"), m.end("town"))
            if town is not None:
                yield town

    def _towns_above_countries(self, lines: list[tuple[int, str]]) -> Iterator[AddressHit]:
        """A town alone on its line, right above a line that is only a country."""
        bodies = [(offset + len(line) - len(line.lstrip(" \t")), line.strip())
                  for offset, line in lines]
        bodies = [b for b in bodies if b[1]]
        for (at, line), (_, below) in itertools.pairwise(bodies):
            country = regex.sub(r"[ \t]+\d[\d \t-]*$", "", below).strip(" .,").casefold()
            if country not in self.countries:
                continue
            body = _LINE_JUNK.match(line)
            skip = body.end() if body else 0
            town = regex.fullmatch(r"\p{Lu}[\p{L}\p{M}'’.-]*(?:[ \t]+\p{Lu}[\p{L}\p{M}'’.-]*)"
                                   r"{0,2}", line[skip:])
            if town is None or line[skip:].casefold() in self.countries:
                continue
            if any(w.casefold() in self.blocked for w in line[skip:].split()):
                continue
            yield AddressHit("LOCATION", at + skip, at + len(line), 0.45)


def _house_number(text: str, tok: _Tok) -> bool:
    """A number ending a street: not a quantity ("4 hours"), not a time or a decimal."""
    if _UNITS_AFTER.match(text, tok.end):
        return False
    return not regex.match(r"[:.,/]\d", text[tok.end:tok.end + 2])
