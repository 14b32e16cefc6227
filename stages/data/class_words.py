"""The words that name a class, and removing them from an item's text (WordNet-Sounds rule version 2; the
same rule masks GCIDE-Sounds).

A class is a WordNet noun synset. Five rules, applied in this order to every item text, each one removing
what it finds (a word, a phrase or a whole token), never the whole item:

1. lemma       every lemma of the class synset and its plurals (regular ones and WordNet's noun.exc) as whole
               words, case-insensitively; a multi-word lemma with spaces, '_' or '-' between its words
               ('hand tools', 'hand_tool'). This was the whole of rule version 1.
2. substring   every token that contains a one-word lemma of the class synset: compounds and derived forms
               that carry the word (fireboat, battleship, goldfinch, bulldog, shotgun, duckling, machinery,
               musical). It also removes unrelated words that happen to contain a short lemma ('scarlet'
               under car); that errs on the side of no leak.
3. derivation  WordNet's derivationally related forms of the class synset's lemmas (its `+` pointers, to
               nouns, verbs and adjectives in data.noun, data.verb, data.adj: song -> sing, cutter -> cut,
               utterance -> utter, wader -> wade, wind -> windy) and their inflections (regular -s, -es, -ed,
               -ing, -er, -est, consonant doubling, and WordNet's <pos>.exc: sing -> sang, sung), as whole
               tokens; a multi-word form as a phrase. Not as substrings: 'sing' would take 'using' and 'cut'
               'cute'.
4. head        every token that contains the head noun of a multi-word lemma of the class synset (its last
               word, the first of 'X of Y'; a plural head reduced to its WordNet noun): appliance, insect, bird,
               vehicle, instrument, tool, current, mammal...
5. modifier    every token that contains another word of a multi-word lemma ('of' aside): musical, stringed,
               motor (motorbike), hand (handsaw), sea (seas), dipterous, wheeled (four-wheeled), air, domestic.
               (Measured after rules 1-4: 20 test items still held one; they scored 75% zero-shot against 38%.)

A token is a run of letters and digits with inner hyphens and apostrophes ("two-winged", "dog's"), so a
compound written with a hyphen goes as a whole. The words of another class are not removed: an item names
no word of its own class, it may name another class (label noise, measured in docs/benchmarks.md).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from stages.data import wordnet as wn

RULES = ("lemma", "substring", "derivation", "head", "modifier")
FUNCTION_WORDS = frozenset({"of", "the", "a", "an", "and", "in", "on", "for", "to"})
TOKEN = re.compile(r"[^\W_]+(?:['\u2019-][^\W_]+)*")


@dataclass(frozen=True)
class ClassWords:
    """What rules 1-5 remove for one class, lower case, sorted."""

    phrases: tuple[str, ...]     # rule lemma: whole words / phrases
    substrings: tuple[str, ...]  # rule substring: a token containing one goes
    derived: tuple[str, ...]     # rule derivation: a token equal to one goes (multi-word ones as phrases)
    heads: tuple[str, ...]       # rule head: a token containing one goes
    modifiers: tuple[str, ...] = ()  # rule modifier: a token containing one goes

    def as_dict(self) -> dict:
        return {"lemma": list(self.phrases), "substring": list(self.substrings), "derivation": list(self.derived),
                "head": list(self.heads), "modifier": list(self.modifiers)}


def _inflect_noun(w: str, irregular: dict[str, list[str]]) -> set[str]:
    forms = {w, w + "s"}
    if re.search(r"(s|x|z|ch|sh)$", w):
        forms.add(w + "es")
    if re.search(r"[^aeiou]y$", w):
        forms.add(w[:-1] + "ies")
    forms.update(irregular.get(w, []))
    return forms


def plural_forms(word: str, irregular: dict[str, list[str]]) -> set[str]:
    """`word` (lower case, spaces between words) and its plurals; multi-word lemmas inflect their last word
    ('hand tool' -> 'hand tools') and, for 'X of Y' lemmas, their first ('bird of prey' -> 'birds of prey')."""
    parts = word.split(" ")
    forms = {word}
    forms |= {" ".join(parts[:-1] + [f]) for f in _inflect_noun(parts[-1], irregular)}
    if len(parts) > 2 and parts[1] == "of":
        forms |= {" ".join([f] + parts[1:]) for f in _inflect_noun(parts[0], irregular)}
    forms.update(irregular.get(word, []))
    return forms


def inflections(word: str, pos: str, irregular: dict[str, list[str]]) -> set[str]:
    """`word` and its inflected forms as the part of speech `pos` (n, v, a, s, r) inflects them: regular
    endings (with e-dropping, y -> i and final-consonant doubling) and the irregular forms of <pos>.exc."""
    if pos == "n":
        return plural_forms(word, irregular)
    forms = {word} | set(irregular.get(word, []))
    if " " in word or pos == "r":
        return forms
    stem = word[:-1] if word.endswith("e") and not word.endswith("ee") else word
    doubled = word + word[-1] if re.search(r"(^|[^aeiou])[aeiou][^aeiouwxy]$", word) else word
    if pos == "v":
        forms |= {word + "s", stem + "ing", doubled + "ing", stem + "ed", doubled + "ed"}
        if re.search(r"(s|x|z|ch|sh|o)$", word):
            forms.add(word + "es")
        if re.search(r"[^aeiou]y$", word):
            forms |= {word[:-1] + "ies", word[:-1] + "ied"}
    else:  # adjectives: comparative and superlative
        forms |= {stem + "er", stem + "est", doubled + "er", doubled + "est"}
        if re.search(r"[^aeiou]y$", word):
            forms |= {word[:-1] + "ier", word[:-1] + "iest"}
    return forms


def head_noun(lemma: str, noun_lemmas: set[str], irregular: dict[str, list[str]]) -> str:
    """The head of a multi-word lemma ('' for one word): its last word, the first of 'X of Y'; a plural head
    ('two-winged insects') reduced to the WordNet noun it inflects."""
    parts = lemma.replace("_", " ").lower().split()
    if len(parts) < 2:
        return ""
    head = parts[0] if len(parts) > 2 and parts[1] == "of" else parts[-1]
    if head in noun_lemmas:
        return head
    bases = [b for b, plurals in sorted(irregular.items()) if head in plurals]
    bases += [head[:-1]] if head.endswith("s") else []
    bases += [head[:-2]] if head.endswith("es") else []
    return next((b for b in bases if b in noun_lemmas), head)


def class_words(synset: wn.Synset, noun_lemmas: set[str], wordnet_dir: Path = wn.WORDNET_DIR,
                exceptions: dict[str, dict[str, list[str]]] | None = None) -> ClassWords:
    """Rules 1-5's words for the class of `synset` (noun_lemmas: every noun lemma of WordNet, lower case with
    spaces; exceptions: pos -> read_exceptions(pos), read here when not given)."""
    exc = exceptions if exceptions is not None else {}
    for pos in ("n", "v", "a", "r"):
        if pos not in exc:
            exc[pos] = wn.read_exceptions(pos, wordnet_dir)
    exc["s"] = exc["a"]
    lemmas = [" ".join(l.replace("_", " ").lower().split()) for l in synset.lemmas]
    phrases: set[str] = set()
    for lemma in lemmas:
        phrases |= plural_forms(lemma, exc["n"])
    substrings = {l for l in lemmas if " " not in l}
    derived: set[str] = set()
    for _src, offset, pos, number in synset.derivations:
        word = " ".join(wn.word_at(pos, offset, number, wordnet_dir).replace("_", " ").lower().split())
        derived |= inflections(word, pos, exc[pos])
    heads = {h for h in (head_noun(l, noun_lemmas, exc["n"]) for l in lemmas) if h}
    words = {w for l in lemmas if " " in l for w in l.split()}
    modifiers = {w for w in words - FUNCTION_WORDS if not any(h in w for h in heads)}
    return ClassWords(phrases=tuple(sorted(phrases)), substrings=tuple(sorted(substrings)),
                      derived=tuple(sorted(derived)), heads=tuple(sorted(heads)), modifiers=tuple(sorted(modifiers)))


def phrase_pattern(phrases) -> re.Pattern:
    """A regex matching each phrase as whole words (a letter or digit, or a hyphen or apostrophe joining one, next
    to it ends a match: 'two-boat' is a token of its own), case-insensitively, with any run of spaces, '_' or '-'
    between its words; longest first so 'hand tools' wins over 'hand tool'."""
    alternatives = "|".join(re.escape(f).replace(r"\ ", r"[\s_-]+") for f in sorted(set(phrases),
                                                                                   key=lambda f: (-len(f), f)))
    return re.compile(rf"(?<![^\W_])(?<![^\W_]['\u2019-])(?:{alternatives or '(?!)'})(?![^\W_])(?!['\u2019-][^\W_])",
                      re.IGNORECASE)


class Masker:
    """Rules 1-5 for one class, compiled: `mask(text)` -> (masked text, the rules that removed something)."""

    def __init__(self, words: ClassWords):
        self.words = words
        self.lemma = phrase_pattern(words.phrases)
        self.derived_phrases = phrase_pattern(w for w in words.derived if " " in w)
        self.derived = frozenset(w for w in words.derived if " " not in w)

    def _tokens(self, text: str, drop) -> tuple[str, bool]:
        hit = False

        def repl(m: re.Match) -> str:
            nonlocal hit
            if drop(m.group(0).lower()):
                hit = True
                return " "
            return m.group(0)

        return TOKEN.sub(repl, text), hit

    def mask(self, text: str) -> tuple[str, tuple[str, ...]]:
        fired = []
        out, n = self.lemma.subn(" ", text)
        if n:
            fired.append("lemma")
        out, hit = self._tokens(out, lambda t: any(s in t for s in self.words.substrings))
        if hit:
            fired.append("substring")
        out, n = self.derived_phrases.subn(" ", out)
        out, hit = self._tokens(out, lambda t: t in self.derived)
        if hit or n:
            fired.append("derivation")
        out, hit = self._tokens(out, lambda t: any(h in t for h in self.words.heads))
        if hit:
            fired.append("head")
        out, hit = self._tokens(out, lambda t: any(m in t for m in self.words.modifiers))
        if hit:
            fired.append("modifier")
        return tidy(out), tuple(fired)


def tidy(text: str) -> str:
    """Spaces collapsed, none before , ; : . ), empty brackets gone, a run of , ; : left as its last mark, no
    leading or trailing space , ; or :."""
    text = " ".join(text.split())
    text = re.sub(r"\s+([,;:.)])", r"\1", text)
    text = re.sub(r"\(\s*\)", "", text)
    text = re.sub(r"(?:[,;:]\s*)+([,;:])", r"\1", text)
    return " ".join(text.split()).strip(" ,;:")
