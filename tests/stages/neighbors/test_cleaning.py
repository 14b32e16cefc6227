"""Text cleaning on adversarial raw LLM answers (the shapes small models really produce)."""
from stages.neighbors.cleaning import clean_answer, normalize, split_answer


def kept(text, cls="dog bark", **kw):
    return clean_answer(text, cls, **kw).kept


def reasons(text, cls="dog bark", **kw):
    return [r for _, r in clean_answer(text, cls, **kw).dropped]


def test_well_formed_json():
    assert kept('{"neighbors": ["barking dog", "canine yelp", "woof"]}') == ["barking dog", "canine yelp", "woof"]


def test_prose_around_json():
    text = 'Sure! Here is the JSON you asked for:\n```json\n{"neighbors": ["Barking Dog", "puppy yap"]}\n```\nHope it helps.'
    assert kept(text) == ["barking dog", "puppy yap"]


def test_truncated_json_keeps_complete_items_only():
    # max_tokens cut the answer inside the third string: the first two survive, the fragment does not.
    text = '{\n  "neighbors": [\n    "barking dog",\n    "canine yelp",\n    "woof wo'
    assert kept(text) == ["barking dog", "canine yelp"]


def test_malformed_json_with_trailing_comma_is_salvaged():
    assert kept('{"neighbors": ["howling dog", "yelping puppy",]}') == ["howling dog", "yelping puppy"]


def test_bare_json_list_and_other_key():
    assert kept('["growl", "snarl"]') == ["growl", "snarl"]
    assert kept('{"phrases": ["growl"]}') == ["growl"]


def test_numbering_bullets_quotes_and_trailing_punctuation():
    text = '1. "Barking dog".\n2) woof!\n- canine_yelp;\n* \u201cpuppy yap\u201d\n\u2022 growling   hound\n10. snarl'
    assert kept(text) == ["barking dog", "woof", "canine yelp", "puppy yap", "growling hound", "snarl"]


def test_class_name_echoed_in_any_case_is_dropped():
    assert kept("Dog Bark\ndog-bark\nDOG BARK.\nbarking dog") == ["barking dog"]
    assert reasons("Dog Bark\nbarking dog") == ["class name"]


def test_repeats_are_dropped_after_normalisation():
    text = "barking dog\nBarking dog\n\"barking dog\"\nbarking  dog\nwoof"
    assert kept(text) == ["barking dog", "woof"]
    assert reasons(text).count("duplicate") == 3


def test_repeats_of_earlier_rounds_are_dropped():
    assert kept("barking dog\nwoof\nhowl", already=["barking dog", "woof"]) == ["howl"]


def test_empty_answers():
    assert kept("") == []
    assert kept('{"neighbors": []}') == []
    assert kept("   \n\n  ") == []
    assert kept('{"neighbors": ["", "   ", "..."]}') == []


def test_other_scripts_are_dropped_latin_accents_kept():
    text = "\u72d7\u53eb\n\u043b\u0430\u0439 \u0441\u043e\u0431\u0430\u043a\u0438\nperro ladrando\naboiement de chi\u00e9n"
    assert kept(text) == ["perro ladrando", "aboiement de chi\u00e9n"]
    assert reasons(text) == ["other script", "other script"]
    assert kept("\u72d7\u53eb", same_script=False) == ["\u72d7\u53eb"]


def test_over_long_phrases_are_dropped():
    long_one = "a very long rambling description " * 15  # ~500 characters
    assert len(long_one) > 450
    assert kept(f"{long_one}\nwoof") == ["woof"]
    assert reasons(f"{long_one}\nwoof") == ["too long"]
    assert kept("the loud sound of a big barking dog outside\nwoof", max_words=6) == ["woof"]


def test_non_text_and_prose_lines():
    text = "Here are 16 phrases:\n12345\n---\n!!!\nwoof\nNote: these are sounds"
    assert kept(text) == ["woof"]


def test_single_line_comma_separated():
    assert kept("barking dog, woof, canine yelp") == ["barking dog", "woof", "canine yelp"]


def test_non_string_json_items_do_not_crash():
    assert kept('{"neighbors": ["woof", 42, null, {"a": 1}]}') == ["woof"]


def test_normalize_is_idempotent():
    for raw in ['1. "Barking Dog".', "  canine_yelp;", "\u2022 Woof!!", "a) growl"]:
        once = normalize(raw)
        assert normalize(once) == once


def test_split_answer_prefers_json_over_lines():
    assert split_answer('noise line\n{"neighbors": ["a b"]}\nmore noise') == ["a b"]


def test_truncations_of_the_class_name_are_dropped():
    long_name = "a very long class name that describes one particular kind of mechanical noise"
    text = "dog ba\ndog\nbarking dog"
    assert kept(text) == ["barking dog"]
    assert reasons(text) == ["truncated class name", "truncated class name"]
    half = long_name[: len(long_name) // 2].strip()
    assert kept(f"{half}\nengine whir", cls=long_name, max_chars=200, max_words=20) == ["engine whir"]


def test_reorderings_of_the_class_names_own_words_are_dropped_paraphrases_kept():
    text = "bark dog\nbark\ndog-bark\nbarking dog\ncanine bark\ndog barking loudly"
    assert kept(text) == ["barking dog", "canine bark", "dog barking loudly"]
    assert reasons(text) == ["class name reordered", "class name reordered", "class name"]
    assert kept("drops of water\ndrops water\nwater", cls="water drops") == ["drops of water"]
    # seen from the packaged model: the name with its own words repeated
    text = "church bells church\nchurch bells church bells\nze church bells\nbell tower chimes"
    assert kept(text, cls="church bells") == ["ze church bells", "bell tower chimes"]


def test_other_script_than_the_class_name_is_dropped_unless_it_holds_the_class_name():
    water = "\u6c34\u306e\u97f3"  # Japanese 'sound of water': kanji + hiragana
    text = f"water sound\n\u6c34\u6ef4\u306e\u97f3\n\u30b6\u30fc\u30b6\u30fc\n{water} (water)\nhippo"
    assert kept(text, cls=water) == ["\u6c34\u6ef4\u306e\u97f3", "\u30b6\u30fc\u30b6\u30fc", f"{water} (water)"]
    assert reasons(text, cls=water) == ["other script", "other script"]
    # A Latin class name keeps Latin phrases only, as before, unless the phrase carries the class name.
    assert kept("\u72d7 dog bark \u5420\nwoof", cls="dog bark") == ["\u72d7 dog bark \u5420", "woof"]
