"""The app through its public API: `python app.py` on 127.0.0.1 in a subprocess, driven by gradio_client.

Real photos (the astronaut examples, LFW), the real MTCNN and the real casia-webface weights. What is
asserted is what a visitor would see: labels, names, verdicts and the friendly error messages.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

from shared_data import MISC_DIR, lfw_pairs  # noqa: E402

from benchmarks.app_server import EXAMPLES, ROOT, launch_app, stop_app  # noqa: E402

pytestmark = pytest.mark.shared_data  # every test here runs the app or the heads on ../shared
# What a tab says while its model is not in this build yet (then its tests are skipped, with that reason).
NOT_YET = ("could not be loaded", "no verification thresholds")


@pytest.fixture()
def client(app_url) -> Client:
    return Client(app_url, verbose=False)


def rows(table: dict) -> list[list]:
    return table["data"]


def image(path: Path):
    return handle_file(str(path))


def friendly_error(call) -> str:
    """The message a visitor sees when `call` fails, asserting it is not a traceback."""
    with pytest.raises(AppError) as failure:
        call()
    message = str(failure.value)
    assert "Traceback" not in message and "File \"" not in message
    return message


def skip_if_off(client: Client, endpoint: str, *args) -> None:
    """Skip a head's tests while its weights are not in this build (the tab then says so)."""
    try:
        client.predict(*args, api_name=endpoint)
    except AppError as exc:
        if any(reason in str(exc) for reason in NOT_YET):
            pytest.skip(str(exc))


# ------------------------------------------------------------------------------------------------
# Mask and emotion

def test_mask_check_labels_the_astronaut_and_her_masked_copy(client: Client) -> None:
    skip_if_off(client, "/mask", image(EXAMPLES / "astronaut.jpg"))
    picture, table = client.predict(image(EXAMPLES / "astronaut.jpg"), api_name="/mask")
    assert Path(picture).is_file()
    assert len(rows(table)) == 1 and rows(table)[0][1].startswith("no mask ")
    _, table = client.predict(image(EXAMPLES / "astronaut_mask.jpg"), api_name="/mask")
    assert len(rows(table)) == 1 and rows(table)[0][1].startswith("mask ")


def test_emotion_gives_seven_probabilities_for_the_smiling_astronaut(client: Client) -> None:
    skip_if_off(client, "/emotion", image(EXAMPLES / "astronaut.jpg"))
    picture, bars, table = client.predict(image(EXAMPLES / "astronaut.jpg"), api_name="/emotion")
    assert Path(picture).is_file()
    assert len(bars["confidences"]) == 7
    assert abs(sum(c["confidence"] for c in bars["confidences"]) - 1) < 1e-3
    assert bars["label"] == "happy" and rows(table)[0][1] == "happy"


def test_several_faces_are_all_labelled(client: Client) -> None:
    several = MISC_DIR / "multiple_faces_group_photo.jpg"
    skip_if_off(client, "/mask", image(EXAMPLES / "astronaut.jpg"))
    _, table = client.predict(image(several), api_name="/mask")
    assert len(rows(table)) >= 2
    assert all(row[1].split(" ")[0] in ("mask", "no") for row in rows(table))


# ------------------------------------------------------------------------------------------------
# Enroll & identify, verify

def lfw_person_with_photos(count: int = 2) -> tuple[str, list[Path]]:
    pair = next(p for p in lfw_pairs() if p.same)
    name = pair.first.parent.name
    return name.replace("_", " "), [pair.first, pair.second]


def test_a_person_enrolled_from_one_photo_is_identified_on_another(client: Client) -> None:
    name, (first, second) = lfw_person_with_photos()
    client.predict(api_name="/clear")
    client.predict(name, image(first), api_name="/enroll")
    assert [p["name"] for p in client.predict(api_name="/people")] == [name]
    skip_if_off(client, "/identify", image(second), "balanced")
    _, table = client.predict(image(second), "balanced", api_name="/identify")
    assert rows(table)[0][1] == name and rows(table)[0][3] > 0.3  # face, name, possible match, similarity
    # the numbers for a client; the page shows them with three decimals, as the tags and verdicts write them
    assert table["metadata"]["display_value"][0][3] == f"{rows(table)[0][3]:.3f}"
    # the astronaut is someone else
    _, table = client.predict(image(EXAMPLES / "astronaut.jpg"), "strict", api_name="/identify")
    assert rows(table)[0][1] == "unknown"


def test_two_visitors_never_see_each_others_people(app_url) -> None:
    alice, bob = Client(app_url, verbose=False), Client(app_url, verbose=False)
    alice.predict("Eileen Collins", image(EXAMPLES / "astronaut.jpg"), api_name="/enroll")
    name, (photo, _) = lfw_person_with_photos()
    bob.predict(name, image(photo), api_name="/enroll")
    assert [p["name"] for p in alice.predict(api_name="/people")] == ["Eileen Collins"]
    assert [p["name"] for p in bob.predict(api_name="/people")] == [name]
    alice.predict("Eileen Collins", api_name="/delete")
    assert alice.predict(api_name="/people") == [] and len(bob.predict(api_name="/people")) == 1
    alice.predict("Eileen Collins", image(EXAMPLES / "astronaut.jpg"), api_name="/enroll")
    skip_if_off(bob, "/identify", image(EXAMPLES / "astronaut_mirror.jpg"), "balanced")
    _, table = bob.predict(image(EXAMPLES / "astronaut_mirror.jpg"), "balanced", api_name="/identify")
    assert rows(table)[0][1] == "unknown"  # Alice's astronaut is not in Bob's gallery
    _, table = alice.predict(image(EXAMPLES / "astronaut_mirror.jpg"), "balanced", api_name="/identify")
    assert rows(table)[0][1] == "Eileen Collins"


def test_a_face_already_enrolled_is_not_enrolled_under_another_name_unless_asked(client: Client) -> None:
    """The astronaut's mirrored photo under a new name is refused, naming whom it matches; enroll_anyway=True enrolls it."""
    client.predict(api_name="/clear")
    client.predict("Eileen Collins", image(EXAMPLES / "astronaut.jpg"), api_name="/enroll")
    skip_if_off(client, "/identify", image(EXAMPLES / "astronaut_mirror.jpg"), "strict")
    message = friendly_error(lambda: client.predict("Ada Lovelace", image(EXAMPLES / "astronaut_mirror.jpg"),
                                                    api_name="/enroll"))
    assert "Eileen Collins" in message and "Enroll anyway" in message
    assert [p["name"] for p in client.predict(api_name="/people")] == ["Eileen Collins"]
    client.predict("Eileen Collins", image(EXAMPLES / "astronaut_mirror.jpg"), api_name="/enroll")  # her own name: fine
    client.predict("Ada Lovelace", image(EXAMPLES / "astronaut_mirror.jpg"), enroll_anyway=True, api_name="/enroll")
    assert client.predict(api_name="/people") == [{"name": "Ada Lovelace", "photos": 1},
                                                  {"name": "Eileen Collins", "photos": 2}]


def test_a_matched_lfw_pair_verifies_as_the_same_person(client: Client) -> None:
    pair = next(p for p in lfw_pairs() if p.same)
    skip_if_off(client, "/verify", image(pair.first), image(pair.second), "balanced")
    verdict, similarity, scale, crops = client.predict(image(pair.first), image(pair.second), "balanced",
                                                       api_name="/verify")
    assert verdict.startswith("## Same person") and similarity > 0.3 and Path(crops).is_file() and Path(scale).is_file()
    mismatched = next(p for p in lfw_pairs() if not p.same)
    verdict, _, _, _ = client.predict(image(mismatched.first), image(mismatched.second), "strict", api_name="/verify")
    assert verdict.startswith("## Not confirmed as the same person")


# ------------------------------------------------------------------------------------------------
# Friendly errors

def test_bad_inputs_get_a_friendly_message(client: Client, tmp_path: Path) -> None:
    not_a_picture = tmp_path / "notes.jpg"
    not_a_picture.write_text("this is text, not a picture")
    no_face = EXAMPLES / "no_face.jpg"
    astronaut = image(EXAMPLES / "astronaut.jpg")
    assert "picture" in friendly_error(lambda: client.predict("Someone", image(not_a_picture), api_name="/enroll"))
    assert "name" in friendly_error(lambda: client.predict("  ", astronaut, api_name="/enroll"))
    assert "Upload" in friendly_error(lambda: client.predict("Someone", None, api_name="/enroll"))
    assert "No face" in friendly_error(lambda: client.predict("Nobody", image(no_face), api_name="/enroll"))
    assert "64 characters" in friendly_error(lambda: client.predict("x" * 65, astronaut, api_name="/enroll"))
    assert "operating point" in friendly_error(lambda: client.predict(astronaut, "lenient", api_name="/identify"))
    assert client.predict(api_name="/people") == []  # nothing was enrolled by any of these
    assert "Choose" in friendly_error(lambda: client.predict(None, api_name="/delete"))


# ------------------------------------------------------------------------------------------------
# Live streams: the handler the webcam stream calls, fed frames in-process

def moving_frames(count: int = 12):
    """The astronaut's photo sliding across a 640x480 webcam-sized canvas."""
    import numpy as np
    from PIL import Image

    face = np.asarray(Image.open(EXAMPLES / "astronaut.jpg").resize((320, 320)))
    for i in range(count):
        canvas = np.full((480, 640, 3), 90, np.uint8)
        x = 20 + i * 8
        canvas[80:400, x : x + 320] = face
        yield canvas


def test_live_mask_stream_follows_the_face_and_survives_bad_frames(capsys) -> None:
    import numpy as np

    import app
    from benchmarks.security import frame_payload

    if app.unavailable("mask"):
        pytest.skip(app.unavailable("mask"))
    tracker, times, tables = None, [], 0
    for i, frame in enumerate(moving_frames()):
        started = time.perf_counter()
        out, tracker, table = app.mask_live(frame_payload(frame), tracker)
        times.append(time.perf_counter() - started)
        assert out.shape == frame.shape and not np.array_equal(out, frame)  # a box and a label were drawn
        box = tracker.tracks[0].face.box
        assert len(tracker.tracks) == 1 and 20 + i * 8 < (box[0] + box[2]) / 2 < 20 + i * 8 + 320
        assert tracker.tracks[0].memo["label"][0].startswith("no mask ")
        # the table of faces, numbered as the boxes, at most every LIVE_TABLE_SECONDS (skipped between)
        assert table == app.gr.skip() or (len(table) == 1 and table[0][0] == 1 and table[0][1].startswith("no mask "))
        tables += table != app.gr.skip()
    assert 1 <= tables < len(times)  # the first frame's table, then at a modest rate
    assert tracker.full_detections < len(times)  # the tracker, not a full detection, followed most frames
    # A broken frame comes back empty and the stream goes on with the same tracker.
    for broken in ("data:image/jpeg;base64,bm90IGEgcGljdHVyZQ==", "data:image/jpeg;base64,%%%not base64%%%"):
        out, same, _ = app.mask_live({"path": None, "url": broken}, tracker)
        assert out is None and same is tracker
    # A frame naming a file on the server, not an upload: refused like any other request (empty frame).
    out, same, _ = app.mask_live({"path": str(EXAMPLES / "astronaut.jpg"), "url": None}, tracker)
    assert out is None and same is tracker
    with capsys.disabled():
        print(f"\nlive mask frames: median {1000 * sorted(times)[len(times) // 2]:.0f} ms "
              f"({tracker.full_detections} full detections in {len(times)} frames)")


def test_live_identify_tells_the_visitor_to_enroll_someone_first(monkeypatch) -> None:
    """With an empty gallery every face is "unknown": the live stream says why in the tab's message line (the
    words of Analyse's toast), and no longer once someone is enrolled."""
    import app
    from benchmarks.security import frame_payload
    from pipeline import identity, load_rgb
    from pipeline.gallery import open_gallery

    if app.unavailable("identify"):
        pytest.skip(app.unavailable("identify"))
    monkeypatch.setattr(app, "LIVE_TABLE_SECONDS", 0.0)  # every frame refreshes the table and the message line
    gallery, frames = open_gallery(None), moving_frames(2)
    _, tracker, table, hint = app.identify_live(frame_payload(next(frames)), None, "balanced", gallery)
    assert table.data["name"].iloc[0] == "unknown" and hint == app.NO_ONE_ENROLLED and "Enroll someone first" in hint
    identity.enroll(app.get_facelab(), gallery, "Eileen Collins", load_rgb((EXAMPLES / "astronaut.jpg").read_bytes()))
    assert app.identify_live(frame_payload(next(frames)), tracker, "balanced", gallery)[3] == ""


IMAGE_NAME, LINK_NAME = "![](https://evil.example/p.png)", "[log in](https://evil.example) *now*"


def rendered(markdown: str) -> str:
    """The HTML a Markdown line becomes (CommonMark, as the page's renderer reads links, pictures and emphasis)."""
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark").render(markdown)


def test_a_name_in_a_message_line_is_shown_as_typed_never_as_a_link_or_picture(tmp_path: Path) -> None:
    """A shared gallery's name written as Markdown (a picture, a link) reaches another visitor in the enroll tab's
    "Not done:" line, when their photo of the same face is refused as already enrolled: it must read as the
    characters typed, with no picture, link or emphasis, and no address a GFM autolinker could pick up."""
    import html

    import app
    from gradio.context import LocalContext
    from benchmarks.security import frame_payload
    from pipeline import load_rgb
    from pipeline.gallery import open_gallery

    if app.unavailable("identify"):
        pytest.skip(app.unavailable("identify"))
    shared = open_gallery(str(tmp_path / "shared.db"))  # an operator's gallery: every visitor's names meet here
    photo = lambda name: frame_payload(load_rgb((EXAMPLES / name).read_bytes()))  # noqa: E731
    app.enroll(IMAGE_NAME, photo("astronaut.jpg"), "", False, shared)  # visitor A
    assert [p.name for p in shared.people()] == [IMAGE_NAME]

    visitor_b = LocalContext.request.set(app.gr.Request(session_hash="visitor-b"))
    try:
        with pytest.raises(app.gr.Error) as refused:
            app._remembering(app.enroll, "enroll")(LINK_NAME, photo("astronaut_mirror.jpg"), "", False, shared)
    finally:
        LocalContext.request.reset(visitor_b)
    toast = str(refused.value.message)  # rendered as HTML by the browser: no tag can be made of it
    assert "already matches" in toast and "<" not in toast
    line = app._failure_line("enroll")(app.gr.Request(session_hash="visitor-b"))
    page = rendered(line)
    assert "<img" not in page and "<a " not in page and "<em>" not in page and "<code>" not in page
    assert page.count("<strong>") == 1  # "Not done:" alone
    assert "://" not in line and "www." not in line  # nothing for marked's GFM autolinks either
    shown = html.unescape(re.sub(r"<[^>]+>", "", page))
    assert f"already matches {IMAGE_NAME} in the gallery" in shown and f"not enrolled as {LINK_NAME}." in shown
    assert [p.name for p in shared.people()] == [IMAGE_NAME]


def test_literal_leaves_no_markup_and_changes_no_character() -> None:
    import html

    import app

    text = "<b>Ada</b> & [x](y) ![i](j) `c` *e* _u_ ~s~ # h | t $m$ www.x.org a@b.org \\ {} + - = ! > O'Brien, 50% ?"
    page = rendered(app.literal(text))
    assert re.fullmatch(r"<p>[^<>]*</p>\n", page)
    assert html.unescape(page[3:-5]) == text


def test_the_about_tab_says_how_long_this_server_keeps_people_and_pictures() -> None:
    """About's privacy text, as a visitor reads it, follows the settings the server runs with: a session gallery
    kept FACELAB_SESSION_SECONDS after its last change (not "gone when you close it"), the cache's real sweep."""
    import app
    from pipeline.settings import Settings

    def privacy(settings: Settings) -> str:
        page = rendered(app.about(settings))
        return re.sub(r"<[^>]+>", "", page.split("<h2>Privacy</h2>", 1)[1])

    text = privacy(Settings(session_seconds=1800))
    assert "for up to 30 minutes after its last change" in text and "no other visitor can see them" in text
    assert "gone when you close it" not in text and "nothing is stored" not in text.lower()
    assert ("every 5 minutes the files older than 15 minutes are deleted (so a picture stays at most about "
            "20 minutes)") in text and app.demo.delete_cache == (300, 900)  # what the app's Blocks really does
    assert "for up to 1 hour after its last change" in privacy(Settings())  # the default, as the README says
    shared = privacy(Settings(gallery="/srv/facelab/gallery.db"))
    assert "kept on the server until deleted" in shared and "every visitor can see their names" in shared
    assert "for your session only" not in shared and "/srv/facelab" not in shared


def test_identify_says_how_many_faces_beyond_the_limit_it_skipped(tmp_path: Path, monkeypatch) -> None:
    """49 tiled LFW faces: identify names the 40 largest (FACELAB_MAX_FACES) and warns, as mask and emotion do,
    that the rest were skipped (it said nothing, and a visitor took the table for every face). The limit is the
    settings' as they are now: a script's reload() counts (it was read once, when pipeline was imported)."""
    import app
    from benchmarks.bad_inputs import CASES
    from benchmarks.security import data_url
    from pipeline import settings
    from pipeline.gallery import open_gallery

    if app.unavailable("identify"):
        pytest.skip(app.unavailable("identify"))
    crowd = next(case for case in CASES if case.name == "49_tiled_faces").write(tmp_path)
    photo = data_url(crowd.read_bytes())
    with pytest.warns(UserWarning) as shown:  # gr.Warning: a toast on the page
        _, table = app.identify(photo, "balanced", open_gallery(None))
    toasts = [str(w.message) for w in shown if "faces were analysed" in str(w.message)]
    assert len(table.data) == app.get_facelab().settings.max_faces == 40
    assert len(toasts) == 1 and re.fullmatch(r"Only the 40 largest faces were analysed; (\d+) more were skipped\.",
                                             toasts[0])
    with pytest.warns(UserWarning) as shown:
        app.mask_check(photo)
    mask_toasts = [str(w.message) for w in shown if "faces were analysed" in str(w.message)]
    assert mask_toasts == toasts  # the same count, said the same way, as the mask tab
    found = 40 + int(re.search(r"(\d+) more", toasts[0])[1])
    monkeypatch.setenv("FACELAB_MAX_FACES", "5")
    settings.reload()
    with pytest.warns(UserWarning) as shown:
        _, table = app.mask_check(photo)
    assert len(table) == 5
    assert [str(w.message) for w in shown if "faces were analysed" in str(w.message)] == [
        f"Only the 5 largest faces were analysed; {found - 5} more were skipped."]


def test_the_live_mask_tab_says_it_finds_faces_without_the_masked_face_search() -> None:
    """The live Mask check follows faces with the tracker's plain MTCNN (STREAM_DETECTOR), not the masked-face search
    of Analyse: its Live webcam sub-tab says so, under the stream; the other tabs' live notes do not."""
    import app
    from pipeline.tracking import STREAM_DETECTOR, FaceTracker

    def notes(tab_id: str) -> list[str]:
        tab = next(b for b in app.demo.blocks.values() if isinstance(b, app.gr.Tab) and b.id == tab_id)
        live = next(b for b in descendants(tab) if isinstance(b, app.gr.Tab) and b.label == "Live webcam")
        return [b.value for b in descendants(live) if isinstance(b, app.gr.Markdown)]

    def descendants(block):
        for child in getattr(block, "children", []):
            yield child
            yield from descendants(child)

    mask_note = " ".join(notes("mask"))
    assert "without the extra search for masked faces that Analyse runs" in mask_note
    assert "snap a picture and press Analyse" in mask_note
    assert all("masked faces" not in note for note in notes("emotion") + notes("identify"))
    assert FaceTracker(app.get_facelab()).detector_config is STREAM_DETECTOR  # what the note describes


def test_clicking_a_face_shows_its_emotions_and_a_crafted_click_is_ignored() -> None:
    """The Emotion result's select event: a click inside a face's box shows that face's probabilities; a click
    position that is not two numbers (only a crafted request sends one) is ignored, not a TypeError."""
    import app
    from benchmarks.security import data_url

    if app.unavailable("emotion"):
        pytest.skip(app.unavailable("emotion"))
    _, _, _, faces = app.emotion(data_url((EXAMPLES / "astronaut.jpg").read_bytes()))
    (x1, y1, x2, y2), probabilities, _ = faces[0]
    click = lambda index: app.emotion_pick(faces, app.gr.SelectData(None, {"index": index, "value": None}))  # noqa: E731
    shown, picked = click([(x1 + x2) / 2, (y1 + y2) / 2])
    assert shown.constructor_args == {"value": probabilities, "label": "Emotions of face 1 (click a face for its own)"}
    # beside the bars, the face they are about (a small JPEG of its aligned crop, kept with the clickable faces)
    assert picked["visible"] is True and picked["label"] == "Face 1" and picked["value"].size == (app.identity.THUMBNAIL_SIZE,) * 2
    assert app.first_face_picture(faces)["label"] == "Face 1" and app.first_face_picture(None)["visible"] is False
    nothing = (app.gr.skip(), app.gr.skip())
    assert click([x2 + 5, y2 + 5]) == nothing  # beside the face
    for crafted in ("12,40", [10], [None, 3], [True, False], {"x": 1, "y": 2}, None, [[1], [2]]):
        assert click(crafted) == nothing, crafted


def test_a_failure_message_kept_for_a_session_is_dropped_after_a_while(monkeypatch) -> None:
    """An API client's failed enroll left its message, which quotes the typed name, in server memory until 10,000
    later failures pushed it out; now it goes FAILURE_SECONDS later (the page's step reads it at once)."""
    import app
    from gradio.context import LocalContext

    def fail_for(session: str, name: str) -> None:
        def enroll(name: str):
            raise app.gr.Error(f"{name} was not enrolled.")

        token = LocalContext.request.set(app.gr.Request(session_hash=session))
        try:
            with pytest.raises(app.gr.Error):
                app._remembering(enroll, "enroll")(name)
        finally:
            LocalContext.request.reset(token)

    fail_for("api-client", "Ada Lovelace")
    assert app.FAILURES[("api-client", "enroll")][1] == "Ada Lovelace was not enrolled."
    monkeypatch.setattr(app, "FAILURE_SECONDS", 0.0)
    fail_for("another-visitor", "Grace Hopper")  # any later failure sweeps the old ones
    assert ("api-client", "enroll") not in app.FAILURES
    assert not any("Ada Lovelace" in message for _, message in app.FAILURES.values())
    monkeypatch.setattr(app, "FAILURE_SECONDS", 300.0)
    line = app._failure_line("enroll")(app.gr.Request(session_hash="another-visitor"))  # the page's step, at once
    assert "Grace Hopper was not enrolled." in app.html.unescape(line)


def test_an_unexpected_failure_of_a_gallery_action_names_that_action(tmp_path: Path) -> None:
    """A shared gallery whose database went away (closed): Delete, Clear all and /people fail unexpectedly, and the
    visitor reads what failed, not "...while analysing this picture" (no picture was involved)."""
    import app
    from benchmarks.security import data_url
    from pipeline.gallery import open_gallery

    if app.unavailable("identify"):
        pytest.skip(app.unavailable("identify"))
    gone = open_gallery(str(tmp_path / "shared.db"))
    gone.close()
    for call, says in ((lambda: app.delete("Ada", "", gone), "Something went wrong while deleting that person."),
                       (lambda: app.clear("", gone), "Something went wrong while clearing the gallery."),
                       (lambda: app.people(gone), "Something went wrong while listing the enrolled people.")):
        with pytest.raises(app.gr.Error) as failed:
            call()
        assert str(failed.value.message) == f"{says} Please try again."
    with pytest.raises(app.gr.Error, match="while enrolling this person"):
        app.enroll("Ada", data_url((EXAMPLES / "astronaut.jpg").read_bytes()), "", False, gone)


@pytest.mark.slow
def test_the_app_starts_when_a_head_is_refused_and_only_that_tab_is_off(tmp_path: Path) -> None:
    """A tampered copy of the mask weights first on the search path: its sha256 does not match, so the
    mask tab is off with that reason, and the rest of the app works."""
    import shutil

    from shared_data import SHARED_WEIGHTS_DIR
    from benchmarks.security import wait_until_loaded
    from pipeline import weights

    tampered = tmp_path / "weights"
    tampered.mkdir()
    original = weights.resolve("mask_head")
    shutil.copyfile(original, tampered / original.name)
    with (tampered / original.name).open("r+b") as handle:
        handle.seek(-8, 2)
        handle.write(b"\x00" * 8)
    process, url = launch_app(tmp_path / "app.log",
                              FACELAB_WEIGHTS_DIR=f"{tampered}{os.pathsep}{SHARED_WEIGHTS_DIR}")
    try:
        wait_until_loaded(tmp_path / "app.log")
        client = Client(url, verbose=False)
        message = friendly_error(lambda: client.predict(image(EXAMPLES / "astronaut.jpg"), api_name="/mask"))
        assert "mask model" in message and "sha256" in message and str(tampered) not in message
        client.predict("Eileen Collins", image(EXAMPLES / "astronaut.jpg"), api_name="/enroll")
        assert [p["name"] for p in client.predict(api_name="/people")] == ["Eileen Collins"]
    finally:
        stop_app(process)
    assert "mask model unavailable" in (tmp_path / "app.log").read_text()


def test_the_readme_api_snippet_runs_as_written(app_url, monkeypatch, capsys) -> None:
    """The README's gradio_client snippet, against this app: every call succeeds and prints what it says."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    code = readme.split("## API (gradio_client)", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    assert 'Client("http://127.0.0.1:7860/")' in code
    monkeypatch.chdir(ROOT)
    exec(code.replace('Client("http://127.0.0.1:7860/")', f'Client("{app_url}", verbose=False)'), {})
    printed = capsys.readouterr().out
    for expected in ("no mask", "happy", "Eileen Collins", "## Same person"):
        assert expected in printed


@pytest.mark.slow
def test_an_operator_gallery_is_shared_by_every_visitor_and_kept_on_disk(tmp_path: Path) -> None:
    """FACELAB_GALLERY set: one SQLite gallery for everyone, still there after a restart."""
    database = tmp_path / "gallery.db"
    process, url = launch_app(tmp_path / "app.log", FACELAB_GALLERY=str(database))
    try:
        first, second = Client(url, verbose=False), Client(url, verbose=False)
        first.predict("Eileen Collins", image(EXAMPLES / "astronaut.jpg"), api_name="/enroll")
        assert [p["name"] for p in second.predict(api_name="/people")] == ["Eileen Collins"]
    finally:
        stop_app(process)
    process, url = launch_app(tmp_path / "app2.log", FACELAB_GALLERY=str(database))
    try:
        assert [p["name"] for p in Client(url, verbose=False).predict(api_name="/people")] == ["Eileen Collins"]
    finally:
        stop_app(process)


# ------------------------------------------------------------------------------------------------
# Why? (issue 18): every explanation through its api_name

def test_mask_and_emotion_why_explain_the_top_class_with_its_runner_up(client: Client) -> None:
    from PIL import Image

    skip_if_off(client, "/mask", image(EXAMPLES / "astronaut.jpg"))
    for endpoint, top, method in (("/mask_why", "no_mask", "occlusion"), ("/emotion_why", "happy", "grad-cam")):
        on_picture, panels, faces = client.predict(image(EXAMPLES / "astronaut.jpg"), api_name=endpoint)
        assert Path(on_picture).is_file() and Path(panels).is_file()
        assert Image.open(on_picture).width > Image.open(EXAMPLES / "astronaut.jpg").width  # the picture and its legend
        assert len(faces) == 1 and faces[0]["explains"] == top and faces[0]["runner_up"] != top
        assert faces[0]["probability"] >= faces[0]["runner_up_probability"] and faces[0]["method"] == method
    assert "No face" in friendly_error(lambda: client.predict(image(EXAMPLES / "no_face.jpg"), api_name="/mask_why"))


def test_verify_why_gives_both_maps_and_the_barcodes(client: Client) -> None:
    pair = next(p for p in lfw_pairs() if p.same)
    skip_if_off(client, "/verify", image(pair.first), image(pair.second), "balanced")
    maps, codes, figures = client.predict(image(pair.first), image(pair.second), api_name="/verify_why")
    assert Path(maps).is_file() and Path(codes).is_file()
    assert figures["similarity"] > 0.3 and figures["largest_drop_first"] > 0 and figures["largest_drop_second"] > 0


def test_identify_why_charts_every_enrolled_person_best_first_with_the_thresholds(client: Client) -> None:
    from shared_data import distinct_people

    client.predict(api_name="/clear")
    people = distinct_people(3)
    for name, first, _ in people:
        client.predict(name, image(first), api_name="/enroll")
    skip_if_off(client, "/identify", image(people[1][2]), "balanced")
    chart, faces = client.predict(image(people[1][2]), "balanced", api_name="/identify_why")
    assert Path(chart).is_file() and len(faces) == 1
    names = [p["name"] for p in faces[0]["people"]]
    similarities = [p["similarity"] for p in faces[0]["people"]]
    assert sorted(names) == sorted(name for name, _, _ in people) and similarities == sorted(similarities, reverse=True)
    assert names[0] == people[1][0] == faces[0]["decision"]
    assert faces[0]["possible_threshold"] < faces[0]["named_threshold"] <= similarities[0]


def test_the_emotion_timeline_fills_while_the_live_stream_runs() -> None:
    """The live emotion handler fed frames in-process, the timeline box ticked: each frame adds one point, and
    the plot is redrawn at the table's modest rate, not at every frame."""
    import app
    from benchmarks.security import frame_payload

    if app.unavailable("emotion"):
        pytest.skip(app.unavailable("emotion"))
    plot, timeline = app.emotion_timeline(None, None)
    assert len(plot) == 0  # no stream yet: an empty plot
    out, *_, kept, _, _ = app.emotion_live_with_timeline(frame_payload(next(moving_frames(1))), None, False, None)
    assert out is not None and kept is None  # the box not ticked: the stream as before, no timeline kept
    tracker, plots = None, 0
    for frame in moving_frames(5):
        _, tracker, *_, plot, timeline, sent, picked = app.emotion_live_with_timeline(frame_payload(frame), tracker,
                                                                                    True, timeline)
        plots += not isinstance(plot, dict)  # a table, or gr.skip() (an update dict): the plot left as it is
        if isinstance(sent, list):  # the clickable faces too: with the table, not at every frame
            faces, boxes = sent, [t.face.box.tolist() for t in tracker.tracks]
            assert picked["visible"] is False  # no face's picture beside bars that follow the largest face
    # a click on the live result picks the live face (it showed the last uploaded photo's emotions)
    (x1, y1, x2, y2), probabilities, picture = faces[0]
    assert picture is None  # no picture of it beside the bars: they go back to the largest face
    assert [x1, y1, x2, y2] == boxes[0] and max(probabilities, key=probabilities.get) == "happy"
    clicked = app.emotion_pick(faces, app.gr.SelectData(None, {"index": [(x1 + x2) / 2, (y1 + y2) / 2], "value": None}))
    assert clicked[0].constructor_args["value"] == probabilities
    assert 1 <= plots < 5  # the first frame's plot, then at most every LIVE_TABLE_SECONDS, as the table
    plot, timeline = app.emotion_timeline(tracker, timeline)  # asked again, no new frame: nothing added
    assert len(plot) == 5 * 7 and set(plot["emotion"]) == set(app.EMOTION_COLOURS)
    assert plot["seconds"].between(-30, 0).all() and plot.groupby("seconds")["probability"].sum().round(3).eq(1).all()
    assert plot[plot["seconds"] == plot["seconds"].max()].set_index("emotion")["probability"].idxmax() == "happy"


def test_the_emotion_tab_has_one_bars_box_and_the_timeline_lives_in_the_live_sub_tab() -> None:
    """The heading reset built a second, empty "Emotions of the largest face" box on the page (a component made
    inside the Blocks); the timeline's box sat under both sub-tabs, where no stream could fill it."""
    import app

    labels = [b.label for b in app.demo.blocks.values() if isinstance(b, app.gr.Label)]
    assert labels.count(app.LARGEST_FACE_BARS) == 1
    (box,) = [b for b in app.demo.blocks.values()
              if isinstance(b, app.gr.Checkbox) and "Plot the live webcam" in (b.label or "")]
    parent = box.parent
    while parent is not None and not isinstance(parent, app.gr.Tab):
        parent = parent.parent
    assert parent is not None and parent.label == "Live webcam"


def test_the_emotion_timeline_endpoint_answers_an_api_client_with_an_empty_plot(client: Client) -> None:
    plot = client.predict(api_name="/emotion_timeline")  # no live stream in this session
    assert plot["columns"] == ["seconds", "emotion", "probability"] and plot["data"] == []
    assert plot["datatypes"]["seconds"] == plot["datatypes"]["probability"] == "quantitative"


def test_a_phone_is_told_from_its_request_headers() -> None:
    """Result tags are drawn for a phone's screen when the request comes from one: Chromium's client hint, or a
    phone's user agent (Safari sends no hints); not for a desktop browser or an API client."""
    import app

    iphone = ("Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
              "Version/18.1 Mobile/15E148 Safari/604.1")
    desktop = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
    assert app.on_a_phone(app.gr.Request(headers={"user-agent": iphone}))
    assert app.on_a_phone(app.gr.Request(headers={"user-agent": desktop, "sec-ch-ua-mobile": "?1"}))
    assert not app.on_a_phone(app.gr.Request(headers={"user-agent": desktop, "sec-ch-ua-mobile": "?0"}))
    assert not app.on_a_phone(app.gr.Request(headers={"user-agent": "python-httpx/0.28.1"}))
    assert not app.on_a_phone(None)


def test_the_check_of_a_new_picture_opens_only_what_the_app_stored() -> None:
    """The message line's check of a newly given picture goes through the same gate as every action: a payload
    naming a server file gets the one refusal, whatever the file is."""
    import app
    from serving.payloads import NOT_STORED

    for path in ("/etc/passwd", str(Path(app.__file__)), "../../etc/hostname"):
        said = app._why_unusable({"path": path}, "Picture")
        assert said.startswith("**Picture: cannot be used.**") and app.literal(NOT_STORED) in said, said
    assert app._why_unusable(None, "Picture") == ""
