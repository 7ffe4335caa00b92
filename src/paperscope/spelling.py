"""British and American spellings meet: the lexical index sees one spelling of each word.

`american(word)` rewrites lower-case British forms as American ones before the stemmer sees
them: -ise/-isation/-iser and their inflections become -ize/-ization/-izer ("quantisation",
"optimised"), -yse becomes -yze ("analysed"), -our becomes -or in a list of words ("behaviour",
"colours", "favourite"), and a few single words ("centre", "catalogue", "modelling" needs
nothing: the stemmer already joins it with "modeling"). American text passes unchanged, so an
index built from American text keeps its vocabulary. A change here changes the vocabulary of
indexes: bump lexical.TOKENIZER_VERSION with it.

Words that end in -ise without being the -ize suffix are kept: "supervised" would otherwise
stop meeting "supervision", "noise" and "pairwise" would change for nothing. They are the
endings -wise, -oise, -aise, -uise, -vise, -prise and the words in `_NOT_IZE`.
"""

from __future__ import annotations

import functools
import re

# Words spelled -ise in both spellings; a word ending in one ("postexercise") is kept too.
_NOT_IZE = frozenset("""
    advertise chastise circumcise compromise concise demise despise enfranchise
    disenfranchise excise exercise expertise franchise imprecise incise merchandise mortise
    paradise precise premise promise surmise treatise valise chemise sunrise uprise moonrise
    cerise reprise
""".split())  # noqa: SIM905 (a word list reads better as text)
_NOT_IZE_ENDINGS = ("wise", "oise", "aise", "uise", "vise", "prise", *sorted(_NOT_IZE))

# Stems written -our in British English and -or in American ("colo" + "ur").
_OUR_STEMS = (
    "arbo|ardo|armo|behavio|cando|clamo|colo|demeano|endeavo|enamo|favo|fervo|flavo|harbo|"
    "hono|humo|labo|misdemeano|neighbo|odo|parlo|ranco|rigo|rumo|savo|savio|splendo|succo|"
    "tumo|valo|vapo|vigo")
_OUR_ENDINGS = "s|ed|ing|ful|fully|able|ably|al|ally|ite|ites|hood|hoods|less|er|ers|ist|ists|ism|isms|ly"

_WORDS = {
    "centre": "center", "centres": "centers", "centred": "centered", "centring": "centering",
    "metre": "meter", "metres": "meters", "litre": "liter", "litres": "liters",
    "fibre": "fiber", "fibres": "fibers", "theatre": "theater", "theatres": "theaters",
    "catalogue": "catalog", "catalogues": "catalogs", "catalogued": "cataloged",
    "dialogue": "dialog", "dialogues": "dialogs", "analogue": "analog", "analogues": "analogs",
    "programme": "program", "programmes": "programs",
    "defence": "defense", "defences": "defenses", "offence": "offense", "offences": "offenses",
    "licence": "license", "licences": "licenses", "judgement": "judgment",
    "judgements": "judgments", "ageing": "aging", "artefact": "artifact",
    "artefacts": "artifacts", "grey": "gray", "practise": "practice", "practised": "practiced",
    "practises": "practices", "practising": "practicing",
}

_PATTERN = re.compile(
    r"(?:"
    rf"(?P<word>{'|'.join(sorted(_WORDS, key=len, reverse=True))})"
    r"|(?P<ise>\w{3,}?)is(?P<ise_end>e|es|ed|ing|ation|ations|ational|er|ers|able)"
    r"|(?P<yse>\w*l)ys(?P<yse_end>e|ed|ing|er|ers)"
    rf"|(?P<our>\w*?(?:{_OUR_STEMS}))ur(?P<our_end>{_OUR_ENDINGS})?"
    r")")

def _american(match: re.Match[str]) -> str:
    if (word := match["word"]) is not None:
        return _WORDS[word]
    if (base := match["ise"]) is not None:
        word = base + "ise"
        if word.endswith(_NOT_IZE_ENDINGS):
            return match[0]
        return f"{base}iz{match['ise_end']}"
    if (base := match["yse"]) is not None:
        return f"{base}yz{match['yse_end']}"
    if (base := match["our"]) is not None:
        return f"{base}r{match['our_end'] or ''}"
    return match[0]


@functools.lru_cache(maxsize=1 << 16)
def american(word: str) -> str:
    """One lower-case word written the American way (most words come back as they are)."""
    match = _PATTERN.fullmatch(word)
    return word if match is None else _american(match)
