"""Prompt styles: A1111's merge ({prompt} or ", " after), several in order, negative terms never twice; the app's
styles and the user's own files (A1111's styles.csv at an install's top, Fooocus's sdxl_styles/*.json, the styles
folder), a user's style taking the place of the app's of that name, a broken file a notice, an unknown name a
sentence."""
from __future__ import annotations

import csv
import json

import pytest

from engine.config import PRESETS_DIR
from engine.errors import InvalidRequest
from engine import recent
from engine.styles import NO_STYLE, Style, StyleLibrary, apply_styles, chosen_names

CSV = '''name,prompt,negative_prompt
"Moody","{prompt}, moody, low key lighting","bright, overexposed"
Film grain,"film grain, 35mm",
"Cinematic","my cinematic {prompt}","lowres, text"
,"nameless row",
'''
FOOOCUS = [{"name": "Fooocus Sharp", "prompt": "cinematic still {prompt} . emotional, harmonious",
            "negative_prompt": "anime, cartoon"},
           {"name": "sai-anime", "prompt": "anime artwork {prompt} . anime style", "negative_prompt": "photo"}]


def library(tmp_path) -> StyleLibrary:
    a1111, fooocus, own = tmp_path / "stable-diffusion-webui", tmp_path / "Fooocus", tmp_path / "styles"
    a1111.mkdir()
    (a1111 / "styles.csv").write_text(CSV, encoding="utf-8")
    (fooocus / "sdxl_styles").mkdir(parents=True)
    (fooocus / "sdxl_styles" / "sdxl_styles_fooocus.json").write_text(json.dumps(FOOOCUS), encoding="utf-8")
    own.mkdir()
    (own / "mine.yaml").write_text("Noir:\n  prompt: 'black and white photo of {prompt}'\n  negative: colour\n")
    return StyleLibrary(PRESETS_DIR / "styles.yaml", own, [a1111, fooocus])


def test_a1111s_merge_and_several_styles_in_order():
    frame = Style("frame", "a painting of {prompt}", "photo, blurry")
    grain = Style("grain", "film grain", "blurry, noise")
    assert apply_styles([frame], "  a fox ", "") == ("a painting of a fox", "photo, blurry")
    assert apply_styles([frame, grain], "a fox", "lowres") == ("a painting of a fox, film grain",
                                                               "lowres, photo, blurry, noise")
    assert apply_styles([grain, frame], "a fox", "Blurry") == ("a painting of a fox, film grain", "Blurry, noise, photo")
    assert apply_styles([Style("n", "", "{prompt}, ugly")], "a fox", "lowres") == ("a fox", "lowres, ugly")
    assert apply_styles([frame], " ", "x") == (" ", "x")  # an empty prompt stays empty: the engine says so
    assert chosen_names("None") == [] and chosen_names(["Moody", " ", "Film grain"]) == ["Moody", "Film grain"]
    assert chosen_names("Cinematic") == ["Cinematic"] and chosen_names(None) == []
    for odd in (5, 2.5, {"name": "Moody"}, True):  # an API caller's mistake: a sentence, not a TypeError
        with pytest.raises(InvalidRequest, match="Style must be a style's name or a list of names"):
            chosen_names(odd)


def test_the_apps_and_the_users_styles(tmp_path):
    found = library(tmp_path)
    names = found.names()
    assert names[0] == NO_STYLE and names.index("Photographic") < names.index("Moody")  # the app's first
    assert {"Moody", "Film grain", "Fooocus Sharp", "sai-anime", "Noir", "Watercolor"} <= set(names)
    assert "" not in names and found.problems() == []
    assert found.apply("Cinematic", "a fox", "") == ("my cinematic a fox", "lowres, text")  # yours wins
    assert found.apply(["Moody", "Film grain"], "a fox", "blurry") == (
        "a fox, moody, low key lighting, film grain, 35mm", "blurry, bright, overexposed")
    assert found.apply(["sai-anime"], "a fox", "") == ("anime artwork a fox . anime style", "photo")
    assert found.apply(["Noir"], "a fox", "") == ("black and white photo of a fox", "colour")
    with pytest.raises(InvalidRequest, match="Unknown style 'Vaporwave'"):
        found.apply(["Moody", "Vaporwave"], "a fox", "")


def test_a_broken_file_is_a_notice_and_new_files_show_up(tmp_path, monkeypatch):
    found = library(tmp_path)
    monkeypatch.setattr(recent, "LISTING_TTL_S", 0.0)
    own = tmp_path / "styles"
    (own / "broken.json").write_text("{not json", encoding="utf-8")
    (own / "listed.yaml").write_text("- a list\n- not a mapping\n", encoding="utf-8")
    (own / "flat.yaml").write_text("Foo: 'a {prompt}'\n", encoding="utf-8")
    (own / "Shout.JSON").write_text(json.dumps({"name": "not a list"}), encoding="utf-8")
    (own / "headless.csv").write_text("Moody2,a,b\n", encoding="utf-8")
    (own / "more.csv").write_text("name,prompt,negative_prompt\nLate,{prompt} at dusk,\n")
    assert "Late" in found.names() and "Moody" in found.names()
    assert found.apply("Late", "a fox", "") == ("a fox at dusk", "")
    problems = found.problems()
    assert len(problems) == 5, problems
    for name in ("broken.json", "listed.yaml", "flat.yaml", "Shout.JSON", "headless.csv"):
        assert any(f"{name} could not be read" in problem for problem in problems), (name, problems)


def test_save_style_writes_a1111s_csv_in_the_styles_folder_and_offers_it_at_once(tmp_path):
    found = library(tmp_path)
    assert "My look" not in found.names()  # read once: a save must not wait for the listing to grow old
    found.save("My look", '{prompt}, "quoted", with commas,\nand a second line', "blurry, lowres")
    assert "My look" in found.names()
    assert found.apply("My look", "a fox", "") == ('a fox, "quoted", with commas,\nand a second line', "blurry, lowres")
    found.save("Second", "pastel", "")
    found.save("My look", "{prompt}, at night", "")  # the same name again: replaced, not a second row
    saved = tmp_path / "styles" / "styles.csv"
    rows = list(csv.reader(saved.read_text(encoding="utf-8").splitlines()))
    assert rows == [["name", "prompt", "negative_prompt"], ["Second", "pastel", ""],
                    ["My look", "{prompt}, at night", ""]]
    assert found.apply("My look", "a fox", "") == ("a fox, at night", "")
    assert not [p for p in saved.parent.iterdir() if p.name.endswith(".part")]


def test_save_style_refuses_what_it_cannot_take_with_a_sentence(tmp_path):
    found = library(tmp_path)
    for name in ("", "   ", "None", "two\nlines", "x" * 101, 5):
        with pytest.raises(InvalidRequest, match="A style needs a name of 1 to 100 characters"):
            found.save(name, "a prompt", "")
    with pytest.raises(InvalidRequest, match="A style needs a prompt or a negative prompt"):
        found.save("Empty", "  ", "")
    (tmp_path / "styles" / "styles.csv").write_text("prompt;negative\nfoo;bar\n", encoding="utf-8")
    with pytest.raises(InvalidRequest, match="could not be read"):  # someone's own file: never overwritten
        found.save("New", "a prompt", "")
    assert (tmp_path / "styles" / "styles.csv").read_text(encoding="utf-8") == "prompt;negative\nfoo;bar\n"


def test_a_saved_style_wins_over_one_of_that_name_elsewhere_and_other_columns_are_kept(tmp_path):
    found = library(tmp_path)  # an A1111 styles.csv with "Moody", read after the styles folder's own files
    found.save("Moody", "{prompt}, moody, rain", "")
    assert found.apply("Moody", "a fox", "") == ("a fox, moody, rain", "")  # re-saved: the saved text applies
    saved = tmp_path / "styles" / "styles.csv"
    saved.write_text('name,prompt,negative_prompt,description\nKeep,"k {prompt}",,"my notes"\n', encoding="utf-8")
    found.save("New", "n", "")
    rows = list(csv.DictReader(saved.read_text(encoding="utf-8").splitlines()))
    assert rows == [{"name": "Keep", "prompt": "k {prompt}", "negative_prompt": "", "description": "my notes"},
                    {"name": "New", "prompt": "n", "negative_prompt": "", "description": ""}]


def test_a_styles_csv_row_with_an_unquoted_comma_still_reads_and_is_never_cut_by_a_save(tmp_path):
    found = library(tmp_path)
    saved = tmp_path / "styles" / "styles.csv"
    text = "name,prompt,negative_prompt\nLoose,{prompt} loose,blurry, lowres\n"
    saved.write_text(text, encoding="utf-8")
    assert found.apply("Loose", "a fox", "") == ("a fox loose", "blurry")  # read as A1111's csv module reads it
    with pytest.raises(InvalidRequest, match="a row has more values than the file has columns"):
        found.save("New", "n", "")
    assert saved.read_text(encoding="utf-8") == text
    (tmp_path / "styles" / "styles.csv").write_text("\nname,prompt,negative_prompt\nA,a,\n", encoding="utf-8")
    found.save("B", "b", "")  # a blank first line: read past, and the file written whole
    assert [row["name"] for row in csv.DictReader(saved.read_text(encoding="utf-8").splitlines())] == ["A", "B"]


def test_a_styles_csv_is_read_as_a1111_reads_it(tmp_path):
    own = tmp_path / "styles"
    own.mkdir()
    (own / "spaced.csv").write_text('name, prompt, negative_prompt\nCine, "cinematic {prompt}, grain", "blurry, lowres"\n'
                                    '# a comment, "not a style",\n', encoding="utf-8")
    (own / "old.csv").write_text('name,text\nOld,"{prompt}, vintage"\n', encoding="utf-8")  # A1111's first columns
    found = StyleLibrary(PRESETS_DIR / "styles.yaml", own)
    assert found.problems() == [] and "# a comment" not in found.names()
    assert found.apply("Cine", "a fox", "") == ("cinematic a fox, grain", "blurry, lowres")  # no space kept, no value lost
    assert found.apply("Old", "a fox", "") == ("a fox, vintage", "")
    (own / "styles.csv").write_text('name,text\nq,"{prompt}, q"\n# kept, "a note"\n', encoding="utf-8")
    found.save("r", "an r", "")  # a save rewrites the file: its comment and its old-column styles stay as they were
    text = (own / "styles.csv").read_text(encoding="utf-8")
    assert '# kept' in text and found.apply("q", "a fox", "") == ("a fox, q", "") and "# kept" not in found.names()


def test_delete_style_removes_a_saved_style_and_says_where_another_one_lives(tmp_path):
    found = library(tmp_path)
    found.save("My look", "{prompt}, at night", "")
    found.save("Second", "pastel", "")
    assert found.delete("My look") == "My look"
    assert "My look" not in found.names() and "Second" in found.names()
    rows = list(csv.reader((tmp_path / "styles" / "styles.csv").read_text(encoding="utf-8").splitlines()))
    assert rows == [["name", "prompt", "negative_prompt"], ["Second", "pastel", ""]]
    with pytest.raises(InvalidRequest, match="no style 'Moody' in .*styles.csv: it comes from .*stable-diffusion-webui"):
        found.delete("Moody")  # an A1111 install's own file is never changed
    with pytest.raises(InvalidRequest, match="no style 'Nowhere'"):
        found.delete("Nowhere")
