"""Face Lab: a Gradio app over the pipeline package. This file only wires the UI to `pipeline/`.

    python app.py    # http://127.0.0.1:7860 (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT to change)

Four tabs (mask check, emotion, enroll & identify, verify) and an About tab. Every action has a
stable api_name (README "API (gradio_client)"). Models load in a background thread at start-up, so
the page is usable at once; a tab whose model cannot be loaded stays visible, says why, and its
buttons are off.
"""

from __future__ import annotations

import functools
import html
import io
import logging
import math
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import serving  # noqa: E402,F401  (first: it turns Gradio's analytics off before Gradio is imported)

try:  # every FACELAB_* variable, read and checked once (pipeline/settings.py); importing pipeline reads them too
    from pipeline.settings import current as current_settings
    SETTINGS = current_settings()
except ValueError as exc:  # pipeline.settings.SettingsError: a value the app cannot run with, named with what it may be
    raise SystemExit(f"Face Lab will not start: {exc}.") from None

import gradio as gr  # noqa: E402
from gradio.context import LocalContext  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
from starlette.middleware import Middleware  # noqa: E402

from pipeline import FaceLabError, WeightsError, get_facelab, load_rgb, overlay  # noqa: E402
from pipeline import identity  # noqa: E402
from pipeline import explain  # noqa: E402
from pipeline import weights  # noqa: E402
from pipeline.images import check_header, max_file_bytes  # noqa: E402
from pipeline.settings import Settings  # noqa: E402
from pipeline.gallery import MAX_NAME_LENGTH, Gallery, open_gallery  # noqa: E402
from pipeline.heads import EMOTIONS  # noqa: E402
from pipeline.mask_detection import is_assumed  # noqa: E402
from pipeline.tracking import FaceTracker  # noqa: E402
from serving import gradio_fixes  # noqa: E402
from serving.access import OperatorGate  # noqa: E402
from serving.figures import headline_figures, markdown_table  # noqa: E402
from serving.http_limits import RequestBodyLimit  # noqa: E402
from serving.payloads import MAX_INLINE_CHARS, picture_bytes, picture_file  # noqa: E402

gradio_fixes.apply(SETTINGS.queue_poll_seconds)

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
log = logging.getLogger("facelab.app")

ROOT = Path(__file__).resolve().parent
EXAMPLES = ROOT / "examples"
RESULTS = ROOT / "benchmarks" / "results"

# Live streams: a frame every 100 ms; a frame that arrives while the previous one is still being
# processed replaces the waiting one (Gradio keeps only the latest), so slow frames are dropped, never
# queued. Streams and uploads have their own bounded worker pools; the queue itself is bounded too.
LIVE = dict(stream_every=0.1, time_limit=SETTINGS.stream_seconds, concurrency_limit=SETTINGS.live_concurrency,
            concurrency_id="live", show_progress="hidden", api_visibility="undocumented", preprocess=False)
UPLOAD = dict(concurrency_limit=SETTINGS.upload_concurrency, concurrency_id="upload", preprocess=False)

try:  # ZeroGPU Spaces: run the model handlers on a borrowed GPU; elsewhere a no-op.
    import spaces

    gpu = spaces.GPU
except ImportError:
    def gpu(fn):
        return fn


# ----------------------------------------------------------------------------------------------
# Models and the shared gallery: all four models load in a background thread at start-up, with one
# status line. Whatever cannot load turns off the tabs that need it, with a reason a visitor may read
# (server paths and other details go to the log only).

MODELS = {"face detector": lambda lab: lab.detector, "mask model": lambda lab: lab.mask_head,
          "emotion model": lambda lab: lab.emotion_head, "face embedder": lambda lab: lab.embedder}
TAB_NEEDS = {"mask": ("face detector", "mask model"), "emotion": ("face detector", "emotion model"),
             "identify": ("face detector", "face embedder", "gallery"), "verify": ("face detector", "face embedder")}
STATUS: dict[str, str] = {name: "loading" for name in MODELS}  # "loading" | "ready" | "unavailable: <reason>"


def _warm_up() -> None:
    lab = get_facelab()
    log.info("%s", weights.integrity_summary())  # names any file loaded without a sha256 check
    for what, load in MODELS.items():
        started = time.perf_counter()
        log.info("loading the %s...", what)
        try:
            model = load(lab); STATUS[what] = "ready"  # noqa: E702
            log.info("%s ready in %.1f s (%s)", what, time.perf_counter() - started, getattr(model, "backbone", ""))
        except Exception as exc:  # the tabs that need it show the visitor-safe reason
            STATUS[what] = f"unavailable: {_visitor_reason(exc)}"
            log.error("%s unavailable, its tabs are off: %s", what, exc)


def _visitor_reason(exc: Exception) -> str:
    return exc.visitor_message() if isinstance(exc, FaceLabError) else "it failed to start (details in the server log)"


def _open_gallery_once(settings: Settings):
    """The gallery every session starts from: the operator's shared one (FACELAB_GALLERY) or an empty one
    that Gradio copies per session. A shared gallery that cannot be opened turns off Enroll & identify."""
    try:
        gallery = open_gallery(settings.gallery or None); STATUS["gallery"] = "ready"  # noqa: E702
        return gallery
    except Exception as exc:
        log.error("the shared gallery FACELAB_GALLERY=%s cannot be used, Enroll & identify is off: %s",
                  settings.gallery, exc)
        STATUS["gallery"] = "unavailable: the shared gallery could not be opened (details in the server log)"
        return None


def unavailable(tab: str) -> str | None:
    """Why `tab` is off, in words for a visitor, or None while everything it needs is loading or ready."""
    reasons = [f"the {need} is {STATUS[need]}" for need in TAB_NEEDS[tab] if STATUS.get(need, "").startswith("unavailable")]
    return ("Not available: " + "; ".join(reasons) + ".") if reasons else None


OPERATOR = OperatorGate.from_settings(SETTINGS)


# ----------------------------------------------------------------------------------------------
# Handler helpers: friendly errors, picture payloads, tables.

# Every ASCII punctuation mark Markdown (Gradio's marked, with GFM autolinks and $ for LaTeX) or HTML could read
# as markup: only , ; ? ' % / are left, which start nothing.
_MARKUP = re.compile(r"[!\"#$&()*+\-.:<=>@\[\\\]^_`{|}~]")


def literal(text: str) -> str:
    """`text` (a name, or a message that may quote one) as itself in a gr.Markdown: every character that could be
    markup becomes a numeric character reference, which Markdown never reads as markup and the browser shows as
    the character. A name such as ``![](https://evil/p.png)`` or ``[log in](https://evil)`` is shown as typed,
    not as a picture or a link on another visitor's page. Use it wherever a name or a message reaches Markdown."""
    return _MARKUP.sub(lambda m: f"&#{ord(m.group())};", str(text))


def friendly(fn=None, *, doing: str = "analysing this picture", then: str = "Please try another one."):
    """Show pipeline errors as their visitor message and anything unexpected as a short apology that names the
    action (`doing`, and what to do `then`): never a traceback. `@friendly` for a picture's analysis,
    `@friendly(doing=..., then=...)` for any other action (a gallery's: no picture was being analysed)."""
    if fn is None:
        return functools.partial(friendly, doing=doing, then=then)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except FaceLabError as exc:  # toasts render HTML: escape, since messages may quote what a visitor typed
            if isinstance(exc, WeightsError):
                log.error("%s: %s", fn.__name__, exc)  # the operator's details; the visitor gets the summary
            raise gr.Error(html.escape(exc.visitor_message(), quote=False), print_exception=False) from None
        except Exception:
            log.exception("unexpected error in %s", fn.__name__)
            raise gr.Error(f"Something went wrong while {doing}. {then}", print_exception=False) from None
    return wrapper


def stored_by_this_app(path: str) -> bool:
    """A file Gradio stored for an upload to this server, or one of the app's examples (exact paths)."""
    return path in demo.upload_file_set or path in EXAMPLE_FILES


def picture(payload, what: str = "a photo") -> np.ndarray:
    """The RGB array of an uploaded file, webcam snapshot or example; any other payload gets
    serving.payloads' one refusal (the pipeline's limits apply after that)."""
    if payload is None:
        raise gr.Error(f"Upload {what} or take a webcam snapshot first.", print_exception=False)
    return load_rgb(picture_bytes(payload, stored_by_this_app, gr.utils.get_upload_folder()))


def require(reason: str | None) -> None:
    if reason:
        raise gr.Error(reason, print_exception=False)


def operating_point_of(value) -> str:
    if value not in ("balanced", "strict"):
        raise gr.Error("The operating point must be 'balanced' or 'strict'.", print_exception=False)
    return value


def analysed(image, **tasks):
    """The tab's analysis of a picture: a clear message when it holds no face, a warning for skipped faces."""
    analysis = get_facelab().analyze(picture(image), **tasks)
    if not analysis.faces:
        raise gr.Error(NO_FACE, print_exception=False)
    warn_skipped(analysis.faces_skipped)
    return analysis


def warn_skipped(skipped: int) -> None:
    if skipped:
        gr.Warning(f"Only the {get_facelab().settings.max_faces} largest faces were analysed; {skipped} more were "
                   "skipped.")


def box_text(box) -> str:
    return ", ".join(str(int(round(v))) for v in box)


# ----------------------------------------------------------------------------------------------
# Mask check

NO_FACE = "No face found. Try a picture where the face is larger, well lit and facing the camera."


def _mask_label(face) -> tuple[str, tuple]:
    return overlay.mask_text(face.mask.label, face.mask.probability, whole_picture=is_assumed(face))


def _emotion_label(face) -> tuple[str, tuple]:
    return overlay.emotion_text(face.emotion.top, face.emotion.confidence, bool(face.emotion.mouth_covered))


# The box a result picture is fitted into (CSS pixels; overlay.min_font_to_show): on a phone (390 px) it spans the
# screen at the picture's own shape (CSS), where a group photo's tags drawn for a laptop were 5 px tall; on a
# laptop (1366 px) Mask check's and Emotion's box is 643 x 340 and Identify's 560 x 320, each less its label's
# line, where a webcam frame's tags were 8 px tall.
RESULT_HEIGHT = 340  # the result pictures of Mask check and Emotion: with the tab's button, in a laptop's first screen
IDENTIFY_RESULT_HEIGHT = 320
PHONE_RESULT_BOX = (358, math.inf)
LABEL_LINE = 33
LAPTOP_RESULT_BOX = (643, RESULT_HEIGHT - LABEL_LINE)
LAPTOP_IDENTIFY_BOX = (560, IDENTIFY_RESULT_HEIGHT - LABEL_LINE)


def on_a_phone(request: gr.Request | None) -> bool:
    """Whether a request comes from a phone's browser: Chromium's client hint, else "Mobi" in the user agent
    (Safari on an iPhone sends no hints). API clients and desktops are not. (A phone held sideways is still a
    phone here, where the page's CSS gives it the laptop's layout: its tags are then larger than they need be.)"""
    headers = getattr(request, "headers", None) or {}
    return headers.get("sec-ch-ua-mobile") == "?1" or "Mobi" in headers.get("user-agent", "")


def for_this_screen(fn: Callable[..., Any], laptop_box: tuple[float, float] = LAPTOP_RESULT_BOX) -> Callable[..., Any]:
    """`fn` (a handler that draws a result) told the box the visitor's screen fits that result into: `shown_in`,
    a phone's or `laptop_box`, from the request read here, outside `gpu` (on ZeroGPU the handler runs in another
    process, which does not know the request). API clients get the laptop's."""
    @functools.wraps(fn)
    def wrapper(*args):
        phone = on_a_phone(LocalContext.request.get(None))
        return fn(*args, shown_in=PHONE_RESULT_BOX if phone else laptop_box)
    return wrapper


@gpu
@friendly
def mask_check(image, *, shown_in: tuple[float, float] | None = None):
    require(unavailable("mask"))
    analysis = analysed(image, mask=True)
    labels = [_mask_label(f) for f in analysis.faces]
    boxes = [overlay.Box(f.box, text, colour) for f, (text, colour) in zip(analysis.faces, labels)]
    rows = [[i + 1, text, box_text(f.box)] for i, (f, (text, _)) in enumerate(zip(analysis.faces, labels))]
    return overlay.draw_boxes(analysis.image, boxes, shown_in=shown_in), rows


LIVE_TABLE_SECONDS = 0.5  # a live stream refreshes its table of faces (and emotion bars) at most twice a second


def sent_now(tracker: FaceTracker, output: str) -> bool:
    """Whether a live stream sends `output` (its table, its timeline plot) with this frame: at most once every
    LIVE_TABLE_SECONDS per stream (gr.skip() between), so the page is not redrawn at every frame. The time it
    was last sent is kept with the stream's tracker."""
    now = time.monotonic()
    if now - tracker.memo.get(f"{output}_sent_at", -math.inf) < LIVE_TABLE_SECONDS:
        return False
    tracker.memo[f"{output}_sent_at"] = now
    return True


def _live(tab: str, label_faces, reuse: bool = True, bars: bool = False, hint: Callable[..., str] | None = None,
          table: Callable[[list[list]], Any] = lambda rows: rows):
    """A stream handler: follow faces with the session's tracker, label them, draw. With `reuse`, a face
    keeps its label while it is tracked (recomputed at each full detection); without, every frame is
    labelled afresh (expressions change). `label_faces` gives each face (text, colour, table cells); the
    handler returns the frame, the tracker and the table of faces (numbered as the boxes), plus, with
    `bars`, the emotions of the largest face, and with `hint`, the tab's message line (`hint` of the stream's
    extra inputs: "enroll someone first"; `table` makes the rows the table's value); these at most every
    LIVE_TABLE_SECONDS (gr.skip() between), so the page is not redrawn at every frame. Never raises: a bad
    frame, or a frame for a tab that is off, comes back empty and the stream goes on."""
    def outputs(image, tracker, tracks=None, extra=()):
        if tracks is None or not sent_now(tracker, "table"):
            return image, tracker, *[gr.skip()] * (1 + bars + (hint is not None))
        summary = [table([[i + 1, *t.memo["label"][2], box_text(t.face.box)] for i, t in enumerate(tracks)])]
        if bars:
            largest = max(tracks, key=lambda t: t.face.area, default=None)
            summary.append(largest_face_bars(overlay.capped_all(largest.face.emotion.probabilities))
                           if largest is not None and largest.face.emotion is not None else gr.skip())
        if hint is not None:
            summary.append(hint(*extra))
        return image, tracker, *summary

    @gpu
    def handler(frame, tracker, *extra, shown_in: tuple[float, float] | None = None):
        if frame is None or unavailable(tab):
            return outputs(None, tracker)
        try:
            rgb = picture(frame)
        except FaceLabError:
            return outputs(None, tracker)
        try:
            tracker = tracker or FaceTracker(get_facelab())
            tracks = tracker.update(rgb)
            fresh = [t for t in tracks if "label" not in t.memo or not reuse]
            for track, label in zip(fresh, label_faces([t.face for t in fresh], *extra)):
                track.memo["label"] = label
            drawn = overlay.draw_boxes(rgb, [overlay.Box(t.face.box, *t.memo["label"][:2]) for t in tracks],
                                       shown_in=shown_in)
            return outputs(drawn, tracker, tracks, extra)
        except Exception:
            log.exception("live frame failed")
            return outputs(rgb, tracker)
    return handler


def _describe(label, cells, **heads):
    def label_faces(faces):
        get_facelab().describe(faces, **heads)
        return [(*label(f), cells(f)) for f in faces]
    return label_faces


mask_live = _live("mask", _describe(_mask_label, lambda f: [_mask_label(f)[0]], mask=True))


# ----------------------------------------------------------------------------------------------
# Emotion

@gpu
@friendly
def emotion(image, *, shown_in: tuple[float, float] | None = None):
    require(unavailable("emotion"))
    analysis = analysed(image, emotion=True)
    boxes = [overlay.Box(f.box, *_emotion_label(f)) for f in analysis.faces]
    rows = [[i + 1, *_emotion_cells(f), box_text(f.box)] for i, f in enumerate(analysis.faces)]
    faces = clickable_faces(analysis.faces, analysis.image.shape)
    return overlay.draw_boxes(analysis.image, boxes, shown_in=shown_in), faces[0][1], rows, faces


def clickable_faces(faces, shape, pictures: bool = True) -> list:
    """Per face, in the table's order: its box on the result as drawn (where a click lands), its emotions and,
    with `pictures`, a small JPEG of the face as the heads saw it (its crop is already cut), shown beside the bars:
    which face they are about was told by a number among the picture's tags only."""
    shown = overlay.shown_scale(shape)
    return [((f.box * shown).tolist(), overlay.capped_all(f.emotion.probabilities) if f.emotion else None,
             identity.thumbnail(f.crop_for_heads) if pictures else None) for f in faces]


def picked_face(jpeg: bytes | None, number: int) -> dict:
    """The small picture beside the emotion bars: the face they are about, "Face N" as the table numbers it;
    hidden when there is none (an emptied result; the live stream, whose bars follow its largest face)."""
    if jpeg is None:
        return gr.update(value=None, visible=False)
    return gr.update(value=Image.open(io.BytesIO(jpeg)), label=f"Face {number}", visible=True)


def first_face_picture(faces) -> dict:
    """After a result (a page-only step: API clients get no picture): the bars are about face 1."""
    return picked_face(faces[0][2] if faces else None, 1)


def emotion_pick(faces, evt: gr.SelectData):
    """Clicking a face in the result shows that face's probabilities and its picture. The click's position comes from the
    client: anything but two numbers is ignored (a crafted request raised a TypeError)."""
    point = evt.index
    if not (isinstance(point, (list, tuple)) and len(point) == 2
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in point)):
        return gr.skip(), gr.skip()
    x, y = point
    for number, (box, probabilities, jpeg) in enumerate(faces or [], start=1):
        if probabilities is not None and box[0] <= x <= box[2] and box[1] <= y <= box[3]:
            # The heading names the face, by its number in the table and on the picture (it still said "largest").
            return (gr.Label(probabilities, label=f"Emotions of face {number} (click a face for its own)"),
                    picked_face(jpeg, number))
    return gr.skip(), gr.skip()


LARGEST_FACE_BARS = "Emotions of face 1, the largest (click a face for its own)"  # faces are numbered largest first


def largest_face_bars(probabilities: dict[str, float] | None) -> dict:
    """The bars (None: empty), their heading back to the largest face after a click named another: for the live
    stream (a page-only, undocumented endpoint) and Analyse's first step. An update, not a component: one made
    while the page is built would be a second bars box on it."""
    return gr.update(value=probabilities, label=LARGEST_FACE_BARS)


def _emotion_cells(face) -> list:
    return [overlay.emotion_word(face.emotion.top, face.emotion.confidence, bool(face.emotion.mouth_covered)),
            overlay.percent(face.emotion.confidence)]


emotion_live = _live("emotion", _describe(_emotion_label, _emotion_cells, emotion=True), reuse=False, bars=True)


# ----------------------------------------------------------------------------------------------
# Enroll & identify, verify (pipeline.identity)

def _people(gallery) -> tuple[list, dict]:
    """The gallery grid (thumbnail, name) and the choices of the delete menu."""
    people = gallery.people()
    grid = [(np.asarray(Image.open(io.BytesIO(p.thumbnail)).convert("RGB")) if p.thumbnail else np.full((64, 64, 3), 200, np.uint8),
             p.name) for p in people]
    return grid, gr.update(choices=[p.name for p in people], value=None)


def enrolled_heading(gallery) -> dict:
    """The gallery grid's heading: how many people it holds (its box shows two rows; a fifth person was a sliver
    at its foot, unannounced). A page-only step after each change: API clients get the grid's value alone."""
    count = len(gallery)
    return gr.update(label=f"Enrolled people ({count})" if count else "Enrolled people")


@gpu
@friendly(doing="enrolling this person", then="Please try again.")
def enroll(name, image, token, enroll_anyway, gallery):
    require(unavailable("identify"))
    OPERATOR.check("enroll", token)
    if not isinstance(name, str) or not name.strip():
        raise gr.Error("Type the person's name first.", print_exception=False)
    result = identity.enroll(get_facelab(), gallery, name, picture(image, "a photo of the person"),
                             enroll_anyway=enroll_anyway is True)
    notes = [*result.notes, *result.warnings]
    for note in notes:
        gr.Warning(html.escape(note, quote=False))  # toasts render HTML (not Markdown)
    photos = f" ({result.person.embeddings} photos)" if result.person.embeddings > 1 else ""
    done = f"Enrolled {html.escape(result.person.name, quote=False)}{photos}."
    gr.Info(done)
    # The toasts go after 10 s; a doubt about what was enrolled ("6 faces in the picture: enrolled the largest
    # one") stays on the page until the next action (the thumbnail in the gallery says that it was).
    return (*_people(gallery), gallery, " ".join(literal(note) for note in notes))


@friendly(doing="listing the enrolled people", then="Please try again.")
def people(gallery):
    require(unavailable("identify"))
    return [{"name": p.name, "photos": p.embeddings} for p in gallery.people()]


@friendly(doing="deleting that person", then="Please try again.")
def delete(name, token, gallery):
    require(unavailable("identify"))
    OPERATOR.check("delete", token)
    if not name:
        raise gr.Error("Choose whom to delete first.", print_exception=False)
    if not gallery.delete(name):
        raise gr.Error("No one by that name is enrolled.", print_exception=False)
    gr.Info(f"Deleted {html.escape(name, quote=False)}.")
    return (*_people(gallery), gallery)


@friendly(doing="clearing the gallery", then="Please try again.")
def clear(token, gallery):
    require(unavailable("identify"))
    OPERATOR.check("clear", token)
    count = len(gallery)
    gallery.clear()
    gr.Info(f"Cleared the gallery: {count} {'person' if count == 1 else 'people'} removed.")
    return (*_people(gallery), gallery)


@gpu
@friendly(doing="identifying the people in this picture", then="Please try again.")
def identify(image, operating_point, gallery, *, shown_in: tuple[float, float] | None = None):
    require(unavailable("identify"))
    rgb = picture(image)
    if hint := enroll_first(gallery):
        gr.Warning(hint)
    found = identity.identify(get_facelab(), gallery, rgb, operating_point_of(operating_point))
    if not found.faces:
        raise gr.Error(NO_FACE, print_exception=False)
    warn_skipped(found.faces_skipped)
    matches = found.faces
    boxes = [overlay.Box(m.box, *overlay.identity_text(m.name, m.similarity, m.possible)) for m in matches]
    rows = [[i + 1, *_match_cells(m), box_text(m.box)] for i, m in enumerate(matches)]
    return overlay.draw_boxes(rgb, boxes, shown_in=shown_in), identify_table(rows)


NO_ONE_ENROLLED = "No one is enrolled yet: every face will be unknown. Enroll someone first."


def enroll_first(gallery: Gallery) -> str:
    """NO_ONE_ENROLLED while the gallery is empty, else "": Analyse says it in a toast, the live stream in the
    tab's message line (a toast at every refresh would pile up)."""
    return "" if len(gallery) else NO_ONE_ENROLLED


GALLERY_CHANGED = "The gallery has changed since that result: press Analyse to identify with the people enrolled now."


def gallery_changed(shown_result, outputs: int) -> tuple:
    """After an enroll, delete or clear: the identify result and its Why? emptied (`outputs` of them) and the
    message line saying why, when a result was shown; else nothing changes."""
    if shown_result is None:
        return (gr.skip(),) * (outputs + 1)
    return (None,) * outputs + (GALLERY_CHANGED,)


IDENTIFY_HEADERS = ["face", "name", "possible match", "similarity", "threshold", "box"]


def identify_table(rows: list[list]) -> "pandas.io.formats.style.Styler":
    """Identify's table of faces: similarities and thresholds shown with three decimals, as every picture and
    line writes them (one column read 0.61, 1 and 0.765), while API clients still get the numbers themselves."""
    import pandas as pd

    return pd.DataFrame(rows, columns=IDENTIFY_HEADERS).style.format(
        {"similarity": overlay.similarity_text, "threshold": overlay.similarity_text}, na_rep="")


def _match_cells(m) -> list:
    return [m.label, m.possible or "", None if np.isnan(m.similarity) else round(float(m.similarity), 3),
            round(float(m.threshold), 3)]


def _identify_faces(faces, operating_point, gallery):
    matches = identity.identify_faces(get_facelab(), gallery, faces, operating_point_of(operating_point), k=1)
    return [(*overlay.identity_text(m.name, m.similarity, m.possible), _match_cells(m)) for m in matches]


identify_live = _live("identify", _identify_faces, hint=lambda operating_point, gallery: enroll_first(gallery),
                      table=identify_table)


@gpu
@friendly(doing="comparing these photos", then="Please try other photos.")
def verify(image_a, image_b, operating_point):
    require(unavailable("verify"))
    result = identity.verify(get_facelab(), picture(image_a, "the first photo"), picture(image_b, "the second photo"),
                             operating_point_of(operating_point))
    # "Not confirmed" rather than "different people": below the threshold lie some photos of one person too.
    verdict = ("Same person" if result.same_person else "Possibly the same person" if result.possible
               else "Not confirmed as the same person")
    notes = "".join(f"\n- {literal(note)}" for note in result.notes)
    similarity, threshold, possible = (overlay.similarity_text(value) for value in
                                       (result.similarity, result.threshold, result.possible_threshold))
    margin = (f" It lies between {possible} and the threshold: too close to tell, so treat it as "
              "unconfirmed.") if result.possible else ""
    text = (f"## {verdict}\nSimilarity **{similarity}**, threshold {threshold} "
            f"({literal(result.operating_point)} operating point: {'at or above' if result.same_person else 'below'} "
            f"the threshold means {'same person' if result.same_person else 'not confirmed as the same person'}).{margin}{notes}")
    scale = overlay.similarity_scale(result.similarity, identity.verify_thresholds(get_facelab().embedder.backbone),
                                     result.operating_point)
    return text, round(float(result.similarity), 3), scale, overlay.side_by_side(result.crop_a, result.crop_b)


# ----------------------------------------------------------------------------------------------
# Why? (pipeline.explain): only on request, so nothing is slower while it is not asked for

WHY_FACES = 6  # faces explained per picture, largest first
# Okabe-Ito colours: the 7 emotion lines stay distinguishable with colour-vision deficiencies.
EMOTION_COLOURS = dict(zip(EMOTIONS, ("#D55E00", "#009E73", "#000000", "#E69F00", "#0072B2", "#CC79A7", "#999999")))


def _head_why(analysis, head):
    faces = analysis.faces[:WHY_FACES]
    found = explain.explain_head(head, np.stack([f.crop_for_heads for f in faces]))
    picture = explain.maps_on_picture(analysis.image, [f.landmarks for f in faces], [explain.normalised(s.map) for s in found],
                                      [s.view for s in found])
    panels = explain.stack([explain.saliency_panel(f.crop_for_heads, s, i + 1) for i, (f, s) in enumerate(zip(faces, found))])
    rows = [{"face": i + 1, "explains": s.explained, "probability": round(s.probability, 3), "runner_up": s.runner_up,
             "runner_up_probability": round(s.runner_up_probability, 3), "method": s.method} for i, s in enumerate(found)]
    return picture, panels, rows


@gpu
@friendly
def mask_why(image):
    require(unavailable("mask"))
    return _head_why(analysed(image, mask=True), get_facelab().mask_head)


@gpu
@friendly
def emotion_why(image):
    require(unavailable("emotion"))
    return _head_why(analysed(image), get_facelab().emotion_head)


@gpu
@friendly(doing="explaining this comparison", then="Please try other photos.")
def verify_why(image_a, image_b):
    require(unavailable("verify"))
    lab = get_facelab()
    result = identity.verify(lab, picture(image_a, "the first photo"), picture(image_b, "the second photo"))
    maps = explain.verify_maps(lab.embedder.embed_covered, result.crop_a, result.crop_b)
    data = {"similarity": round(maps.similarity, 3), "grid": maps.grid,
            "largest_drop_first": round(float(maps.map_a.max()), 3), "largest_drop_second": round(float(maps.map_b.max()), 3)}
    return explain.verify_panel(result.crop_a, result.crop_b, maps), explain.barcodes(maps), data


@gpu
@friendly
def identify_why(image, operating_point, gallery):
    require(unavailable("identify"))
    lab = get_facelab()
    analysis = lab.analyze(picture(image), embed=True, max_faces=WHY_FACES)
    if not analysis.faces:
        raise gr.Error(NO_FACE, print_exception=False)
    matches = identity.identify_faces(lab, gallery, analysis.faces, operating_point_of(operating_point), k=explain.CHART_PEOPLE)
    charts = explain.similarity_charts(matches)
    data = [{"face": i + 1, "decision": c.decision, "named_threshold": round(c.named, 3),
             "possible_threshold": round(c.possible, 3), "people": [{"name": n, "similarity": round(v, 3)} for n, v in c.people]}
            for i, c in enumerate(charts)]
    return explain.stack([explain.similarity_chart_picture(c, i + 1) for i, c in enumerate(charts)]), data


def emotion_timeline(tracker, timeline):
    """The largest tracked face's probabilities, once per frame the live stream labelled; the last 30 s as a
    long table for the line plot. API clients (no stream of theirs) get an empty table."""
    timeline = record_largest_emotion(tracker, timeline)
    return timeline_table(timeline), timeline


def record_largest_emotion(tracker, timeline) -> explain.EmotionTimeline:
    timeline = timeline or explain.EmotionTimeline()
    tracks = [t for t in (tracker.tracks if tracker else []) if t.face.emotion is not None]
    if tracks:
        face = max(tracks, key=lambda t: t.face.area).face
        timeline.add(face.emotion.probabilities, key=id(face))
    return timeline


def timeline_table(timeline: explain.EmotionTimeline):
    import pandas as pd

    table = pd.DataFrame(timeline.rows(), columns=["seconds", "emotion", "probability"])
    return table.astype({"seconds": float, "probability": float})  # typed even while empty


def emotion_live_with_timeline(frame, tracker, timeline_on, timeline, *, shown_in: tuple[float, float] | None = None):
    """The emotion stream's outputs (the frame, the tracker, and whatever else it returns), then the timeline's
    plot and state: only while the timeline box is ticked. Every labelled frame adds its point, but the plot is
    sent at most every LIVE_TABLE_SECONDS, as the table and the bars are (gr.skip() between): redrawing it at
    every frame cost the browser more than the frame itself."""
    shown = emotion_live(frame, tracker, shown_in=shown_in)
    tracker = shown[1]
    # The faces a click on the live result picks, as the table numbers them (a click showed the last photo's):
    # sent with the table, not at every frame; no pictures of them: the bars go back to the largest face then.
    table_sent = not isinstance(shown[2], dict)  # gr.skip() is an update dict
    if table_sent and tracker is not None and tracker.frame_shape is not None:
        faces = clickable_faces([t.face for t in tracker.tracks], tracker.frame_shape, pictures=False)
        picked = picked_face(None, 1)
    else:
        faces = picked = gr.skip()
    if timeline_on is not True:
        return (*shown, gr.skip(), timeline, faces, picked)
    timeline = record_largest_emotion(tracker, timeline)
    if tracker is None or not sent_now(tracker, "timeline"):
        return (*shown, gr.skip(), timeline, faces, picked)
    return (*shown, timeline_table(timeline), timeline, faces, picked)


def _why(fn, inputs, api_name: str, pictures: tuple[str, ...], tab: str) -> list:
    """Inside a tab's "Why?" accordion: the button, its own message line (a failure said in the tab's line, a
    screen above the button, was gone from view with its toast), its pictures and (for API clients) the figures
    as JSON, which it returns (its outputs)."""
    button = gr.Button("Why? Show what the answer rests on")
    TAB_BUTTONS[tab].append(button)
    message = _message_line()
    # Each picture's label and buttons in one line above it, as a result's (CSS .facelab-why): the buttons had a
    # strip of their own, empty but for them, and a label over the picture would cover its own title.
    # Fullscreen and download only: no "share" of pictures of people's faces, as for the results.
    outputs = [gr.Image(label=label, format="png", interactive=False, buttons=["fullscreen", "download"])
               for label in pictures]
    outputs.append(gr.JSON(visible=False))
    _run(button, fn, inputs, outputs, api_name, message, check_pictures=False)  # the tab's own _run checks them
    return outputs


# ----------------------------------------------------------------------------------------------
# About

def running_now() -> str:
    """Which models answer right now, for About: the backbone that actually loaded, its precision and the
    device; visitor-safe reasons for any that did not load. Which backbone was preferred and why it is not
    the one running is for the operator: pipeline.analysis logs it."""
    lines = []
    for name, state in STATUS.items():
        if name == "face embedder" and state == "ready":
            lab = get_facelab()
            embedder = lab.embedder
            state = f"FaceNet trained on {embedder.backbone}, {embedder.precision} on the {lab.device.type}"
        lines.append(f"- **{literal(name)}**: {literal(state)}")
    return "## Running now\n" + "\n".join(lines)


# Gradio's cache of uploads and result pictures: every CACHE_SWEEP_SECONDS, files older than CACHE_MAX_AGE_SECONDS
# are deleted (gr.Blocks(delete_cache=...)), and all of them when the server stops.
CACHE_SWEEP_SECONDS, CACHE_MAX_AGE_SECONDS = 300, 900


def duration(seconds: int) -> str:
    """`seconds` in words for a visitor: "45 seconds", "20 minutes", "1 hour", "90 minutes"."""
    if seconds < 120:
        return f"{seconds} seconds"
    if seconds % 3600 == 0:
        return f"{seconds // 3600} hour{'' if seconds == 3600 else 's'}"
    return f"{round(seconds / 60)} minutes"


def privacy(settings: Settings) -> list[str]:
    """About's privacy section: what this server keeps and for how long, from the settings it runs with."""
    cache = (f"Pictures you upload, snap or stream, and the result pictures, are kept in the server's cache so your "
             f"browser can fetch them: every {duration(CACHE_SWEEP_SECONDS)} the files older than "
             f"{duration(CACHE_MAX_AGE_SECONDS)} are deleted (so a picture stays at most about "
             f"{duration(CACHE_SWEEP_SECONDS + CACHE_MAX_AGE_SECONDS)}), and all of them when the server stops.")
    if settings.gallery:
        people = ("Enrolled people (a name, face embeddings and a small thumbnail, never the photo) go into this "
                  "server's shared gallery, set up by its operator (`FACELAB_GALLERY`): they are kept on the server "
                  "until deleted, and every visitor can see their names and be identified against them.")
    else:
        people = ("Enrolled people (a name, face embeddings and a small thumbnail, never the photo) are kept in the "
                  "server's memory, for your session only: no other visitor can see them. Reloading or closing the "
                  "page empties your gallery for you, but the server keeps it for up to "
                  f"{duration(settings.session_seconds)} after its last change (`FACELAB_SESSION_SECONDS`), unless "
                  "you **Delete** each person or **Clear all** first.")
    faces = ("Emotion keeps a small picture of each face of its last result in your session's memory, to show the "
             "face its bars are about, for up to the same time after its last use.")
    return ["", "## Privacy", people, "", faces, "", cache, "",
            "Nothing is sent anywhere else: the models run on this server."]


def about(settings: Settings = SETTINGS) -> str:
    lines = ["## How well it works",
             "Measured by the scripts in `benchmarks/` on labelled photos (the full tables are in docs/benchmarks.md). "
             "A figure holds for photos like the ones it was measured on; a webcam in a classroom is not the same.",
             "", markdown_table(headline_figures(RESULTS))]
    lines += ["", "## Models", "| model | weights | licence |", "|---|---|---|"]
    # Through pipeline.weights: the repo each file is fetched from (FACELAB_HUB_REPO moves the project's own).
    lines += [f"| {html.escape(m.description or m.name, quote=False)} | `{m.repo_id}` / `{m.filename}` | "
              f"{html.escape(m.license, quote=False)} |" for m in weights.manifest().values()]
    lines += [
        "", "## Limits",
        "- **No liveness check**: a printed photo or a screen held up to the camera can fool it.",
        "- Accuracy drops for children and for groups under-represented in the training data.",
        "- A webcam (blur, low light, angles) is harder than the LFW benchmark photos the accuracy is measured on.",
        "- Populations differ: on photos of East Asian public figures the model finds different people more alike "
        "than on the Western celebrity photos it was tuned on, so there it names fewer people and shows "
        "\"possible match\" more often rather than name the wrong person (docs/benchmarks.md, \"Identity on two populations\").",
        "- Emotion labels are what a face looks like, not what a person feels; on a masked face the emotion is "
        "read from the eyes alone and says \"mouth covered\".",
        "- Percentages are the models' calibrated confidence, never shown above 99 %; a word with \"?\" is a guess.",
        "- Mask check: a face that no detection step finds gets no verdict; where the picture's centre was taken "
        "as the face, the label says \"whole picture judged\".",
        *privacy(settings),
    ]
    return "\n".join(lines)


# No threshold numbers here: they belong to the backbone that ends up loaded (the preferred one may be
# unavailable), which is known only after start-up; every result states the threshold it used.
OPERATING_POINT_INFO = ("strict: fewer false matches; balanced: fewer missed matches. The threshold adapts to the "
                        "gallery (how many photos it holds, how alike its people look); each result shows the one "
                        "it was compared with.")
VERIFY_POINT_INFO = ("strict: fewer false matches; balanced: fewer missed matches. The result shows the threshold it "
                     "was compared with.")  # two photos: no gallery for the threshold to adapt to


TABS = tuple(TAB_NEEDS)

# The enrolled people's names whole: Gradio's caption is one line in the thumbnail's corner, cut with an
# ellipsis ("Colin P…"), and a class must tell its people apart by name. Here it spans the thumbnail's foot
# and wraps (the thumbnail clips anything outside it, so the caption stays inside), in small type: a four-word
# name covered two thirds of its face. The gallery's label sits above the thumbnails (it covered the first).
#
# Issue 17: a result picture's label sits above the picture, not over it (it covered the first face's tag);
# after a failure the tab's "Not done: ..." line explains it, so Gradio's bare red "Error" badge on the
# emptied outputs is hidden; on a phone the tabs wrap (see build_demo) and the About tables scroll sideways
# instead of squeezing a column to a letter a line; the step headings are compact.
#
# Browser pass: the tables of faces in the page's font (not a monospace one), with narrower cells, so identify's
# six columns fit under the result on a laptop (the box column was cut) and every tab's table reads alike.
# On a phone the examples' headings wrap, so that their table fits the screen (Verify's third column was cut).
# Toasts at the foot of the screen: at its top they lay over each tab's message line (Enroll & identify's "The
# gallery has changed since that result", under "Deleted ...") and over the result's top right corner.
# The "Why?" pictures' label and buttons sit in a line above the picture, not over it (they covered the colour
# bar's label), as a result picture's do.
#
# UI pass: a result picture's buttons sit in its label's line, not over the picture's top-right corner (they
# covered a tag drawn there); the page is at most 1600 px wide, centred (fill_width stretched it across a 2560-px
# screen; 1366 px keep the whole width); on a phone the tables of faces fit the screen: the box column is left out
# (the numbered tags show where each face is; the copy button still copies it) and the headings and cells wrap
# (identify's table was 483 px wide in a 324-px box).
# Browser pass: the label above a result picture took its height from the picture's fixed-height box, whose
# overflow is hidden: the picture's bottom 32 px were cut (chins and boxes of the faces lowest in a group photo).
# The box is a column now: label, then the picture in the height left. So is the picture of the face the emotion
# bars are about (#picked-face), whose label covered its forehead.
CSS = """
#enrolled .caption-label { left: 0; right: 0; bottom: 0; max-width: 100%; white-space: normal; overflow-wrap: anywhere;
                           text-overflow: clip; text-align: center; border-radius: 0; opacity: 0.9;
                           font-size: var(--text-xs); line-height: 1.1; padding: 1px 2px; }
#enrolled label[data-testid="block-label"] { position: static; margin: 0 0 var(--spacing-sm) 0; }
.facelab-result, #picked-face { display: flex; flex-direction: column; }
.facelab-result label[data-testid="block-label"], #picked-face label[data-testid="block-label"] {
  position: static; margin: 0 0 var(--spacing-sm) 0; align-self: flex-start; }
.facelab-result .image-container, #picked-face .image-container { position: static; flex: 1 1 0; min-height: 0; height: auto; }
.facelab-result .image-container > .icon-button-wrapper { top: 3px; right: 0; }
.gradio-container.fill_width { width: 100%; max-width: 1600px !important; margin-left: auto !important; margin-right: auto !important; }
[data-testid="status-tracker"]:has(> .error) { display: none !important; }
.prose table { display: block; max-width: 100%; overflow-x: auto; }
.prose td, .prose th { min-width: 8em; overflow-wrap: break-word; }
.facelab-step h3 { margin: 0 !important; }
.facelab-faces .header-table, .facelab-faces .virtual-row { font-family: var(--font); font-size: var(--text-sm); }
.facelab-faces .cell-wrap { padding-left: var(--size-1); padding-right: var(--size-1); }
@media (max-width: 640px) {
  .facelab-result { height: auto !important; }
  .facelab-result .image-container { flex: none; height: auto; }
  .facelab-result .image-container img { height: auto; }
  .facelab-examples th { white-space: normal; }
  .facelab-faces table { width: 100% !important; }
  .facelab-faces th { width: auto !important; min-width: 0 !important; max-width: none !important; }
  .facelab-faces th span { white-space: normal !important; word-break: normal !important; overflow-wrap: normal !important; }
  .facelab-faces th:last-child, .facelab-faces td:last-child, .facelab-faces .body-cell:last-child { display: none; }
  .facelab-faces .virtual-body { max-width: 100%; }
  .facelab-faces .sizing-body td { white-space: normal !important; max-width: none !important; overflow-wrap: anywhere; }
}
.toast-wrap { top: auto !important; bottom: var(--size-4); }
.facelab-why label[data-testid="block-label"] { position: static; margin: 0 0 var(--spacing-sm) 0; }
.facelab-why .image-container { position: static; }
.facelab-why .image-container > .icon-button-wrapper { top: 3px; right: 0; }
"""


def status():
    """The loading line at the top, each tab's "not available" note and its buttons, refreshed until every
    model has loaded or failed (then the timer stops). Every state it shows is visitor-safe."""
    loading = any(state == "loading" for state in STATUS.values())
    problems = [f"{name}: {state}" for name, state in STATUS.items() if state != "ready"]
    text = ("Loading models... " if loading else "") + "; ".join(literal(p) for p in problems)
    reasons = [unavailable(tab) for tab in TABS]
    notes = [gr.Markdown(f"**{literal(reason)}**" if reason else "", visible=bool(reason)) for reason in reasons]
    buttons = [gr.Button(interactive=reason is None) for tab, reason in zip(TABS, reasons) for _ in TAB_BUTTONS[tab]]
    return text, gr.Timer(active=loading), running_now(), *notes, *buttons


# ----------------------------------------------------------------------------------------------
# Layout



# The live stream's tracker (pipeline/tracking.py STREAM_DETECTOR) finds faces with plain MTCNN: not the masked-face
# search (pipeline/mask_detection.py) Analyse runs on a picture, so the live mask check misses more masked faces.
LIVE_MASK_NOTE = ("Live, faces are found as in the other live tabs (MTCNN on a small copy of each frame), without the "
                  "extra search for masked faces that Analyse runs on a picture: a masked face it misses gets no box. "
                  "For the full search, snap a picture and press Analyse.")


def _image_inputs(label: str, settings: Settings, height: int = RESULT_HEIGHT,
                  examples: Callable[[gr.Image], None] | None = None, live_note: str = ""):
    """An upload/snapshot picture and a live webcam stream, in two sub-tabs; `examples`, given the picture, adds
    examples that fill it under its Analyse button (in the upload sub-tab alone: the live one has no button);
    `live_note` is said under the stream, after when it stops."""
    with gr.Tab("Upload or snapshot"):
        still = gr.Image(type="filepath", sources=["upload", "webcam", "clipboard"], label=label,
                         webcam_options=gr.WebcamOptions(mirror=True), height=height)
        button = gr.Button("Analyse", variant="primary")
        if examples is not None:
            examples(still)
    with gr.Tab("Live webcam"):
        live = gr.Image(sources=["webcam"], streaming=True, type="filepath", label="Webcam (live)", height=height)
        # Gradio's time_limit is a turn, not an end: the stream then lines up again by itself (the page said it
        # stopped, and a browser pass watched it go on for minutes).
        gr.Markdown(f"Live streams take turns: every {settings.stream_seconds} s this one lets any waiting stream go "
                    "first, then goes on by itself. Press Stop to end it."
                    + (f" {live_note}" if live_note else ""))
    return still, button, live


def _picture_and_result(tab: str, settings: Settings):
    """Mask check's and Emotion's row: the picture (upload or live) and Analyse on the left; the tab's message line and
    result picture on the right. Returns both columns (`with outputs:` adds the tab's own outputs under the result,
    `with inputs:` its examples under Analyse), the picture, Analyse, the live stream, the message line, the result."""
    with gr.Row():
        with gr.Column() as inputs:
            still, button, live = _image_inputs("Picture", settings, live_note=LIVE_MASK_NOTE if tab == "mask" else "")
            TAB_BUTTONS[tab].append(button)
        with gr.Column() as outputs:
            message = _message_line()
            result = _result_picture()
    return inputs, outputs, still, button, live, message, result


def _result_picture(height: int = RESULT_HEIGHT) -> gr.Image:
    """A tab's annotated result. Its buttons (fullscreen, download: no "share" of pictures of people's faces) sit
    in its label's line above the picture (CSS .facelab-result), where they cannot cover a face's tag."""
    return gr.Image(label="Result", format="jpeg", interactive=False, height=height, buttons=["fullscreen", "download"],
                    elem_classes="facelab-result")


def _off_note(tab: str) -> gr.Markdown:
    """The tab's "Not available: ..." line; status() fills it once a model it needs has failed."""
    note = gr.Markdown(visible=False)
    TAB_NOTES[tab] = note
    return note


TAB_NOTES: dict[str, gr.Markdown] = {}
TAB_BUTTONS: dict[str, list[gr.Button]] = {tab: [] for tab in TAB_NEEDS}
EXAMPLE_FILES: set[str] = set()  # the examples' copies in Gradio's cache: payloads may name these


# The message of each session's last failed action, until its tab shows it (the step right after the failure).
# Bounded in number and in time: API clients fail too, only the page runs the step that takes the message out,
# and a message may quote a visitor's name (About promises nothing of a session is kept for long).
FAILURES: OrderedDict[tuple[str, str], tuple[float, str]] = OrderedDict()  # oldest first: (when, message)
MAX_FAILURES = 10_000
FAILURE_SECONDS = 300.0
_FAILURES_LOCK = threading.Lock()
UNEXPLAINED = "That did not work: the server could not finish the request (it may be busy). Please try again."


def _remembering(fn: Callable[..., Any], action: str) -> Callable[..., Any]:
    """`fn`, keeping the message of the gr.Error it raises for this session and action. Outside `gpu` and
    `friendly`: on ZeroGPU the handler runs in another process, whose memory the page's next step never sees."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error as exc:
            request = LocalContext.request.get(None)  # the session of the event being handled
            if request is not None and request.session_hash:
                now, key = time.monotonic(), (request.session_hash, action)
                with _FAILURES_LOCK:
                    FAILURES.pop(key, None)  # re-inserted at the end: the dict stays oldest first
                    FAILURES[key] = (now, str(exc.message))
                    while len(FAILURES) > MAX_FAILURES or next(iter(FAILURES.values()))[0] < now - FAILURE_SECONDS:
                        FAILURES.popitem(last=False)
            raise  # API clients still get an AppError; the page gets a toast and, below, a lasting line
    return wrapper


# At each action, in the page: close the toasts (Gradio keeps an error's toast for 10 s, over the next action's
# result); and for a tab's main action on a phone, where the result sits below the inputs and examples, bring the
# result into view when it lies below the screen (after Analyse the page did not move: nothing seemed to happen).
CLOSE_TOASTS = "document.querySelectorAll('.toast-close').forEach((button) => button.click());"
SHOW_RESULT_ON_A_PHONE = """
  const result = [...document.querySelectorAll('.facelab-result, #verdict')].find((e) => e.offsetParent !== null);
  if (window.innerWidth < 700 && result && result.getBoundingClientRect().top > window.innerHeight - 80) {
    result.scrollIntoView({block: 'start'});
  }"""
MAIN_ACTIONS = ("mask", "emotion", "identify", "verify")


def _failure_line(action: str) -> Callable[[gr.Request], str]:
    """The page's step after `action` failed: the message `_remembering` kept for this session."""
    def show(request: gr.Request) -> str:
        with _FAILURES_LOCK:
            _, message = FAILURES.pop((request.session_hash, action), (0.0, UNEXPLAINED))
        # The toast's text was HTML-escaped (friendly); here it is Markdown, which a name in it must not drive.
        return f"**Not done:** {literal(html.unescape(message))}"
    return show


def _run(button: gr.Button, fn: Callable[..., Any], inputs: Any, outputs: list, api_name: str, message: gr.Markdown,
         empties: list | None = None, examples: gr.Examples | None = None, emptied: dict | None = None,
         check_pictures: bool = True, then_show: tuple | None = None) -> Any:
    """`fn` on a click, as `api_name`. A first, private step empties `empties` (default: the outputs) and the
    tab's `message` line, so a failure never shows the last picture's result beside it (a stale "Same person"
    next to a faceless photo). When `fn` fails, its message is written to `message` and stays there until
    the next action (the toast closes after 10 s). With `examples`, a click on one fills the inputs and then
    runs the same steps (Gradio's own run_on_click preprocessed the picture into a path, which `picture` refuses:
    every example click failed). `emptied` gives some of the empties another blank than None (a heading set back).
    `then_show` (fn, inputs, outputs): a page-only step after each success, the button's or an example's (what
    API clients need not get). Returns the button's event, to chain what follows a success."""
    empties = outputs if empties is None else empties
    blank = [(emptied or {}).get(component) for component in empties] + [""]
    script = CLOSE_TOASTS + (SHOW_RESULT_ON_A_PHONE if api_name in MAIN_ACTIONS else "")

    def steps(then: Callable[..., Any], **visibility) -> Any:
        then(None, None, None, js=f"() => {{ {script} }}", queue=False)
        event = then(lambda: blank if empties else "", None, [*empties, message], queue=False,  # one output: no list
                     api_visibility="private").then(_remembering(fn, api_name), inputs, outputs, **visibility, **UPLOAD)
        event.failure(_failure_line(api_name), None, message, queue=False, api_visibility="private")
        if then_show is not None:
            event.success(*then_show, queue=False, api_visibility="private")
        return event

    event = steps(button.click, api_name=api_name)
    if examples is not None:
        steps(examples.load_input_event.then, api_visibility="private")
    # A new picture (or operating point) empties the last one's result, so no answer stands beside a picture
    # it was not given (a "Why?" of the new pair under the old pair's verdict). With `check_pictures` (once per
    # input: not for its Why?), a picture that cannot be used is said at once, where the browser shows only a
    # broken-image icon for it. Unqueued, as the emptying was: it reads the file's header alone (queued behind
    # the uploads, Verify's click waited for the second photo's check: 279 ms against 201 ms, ui.py).
    for component in inputs if isinstance(inputs, list) else [inputs]:
        if check_pictures and isinstance(component, gr.Image):
            component.change(_picture_changed(blank if empties else None, component.label), component,
                             [*empties, message], api_visibility="private", queue=False, preprocess=False)
        elif empties and isinstance(component, gr.Image):
            component.change(lambda: blank, None, [*empties, message], queue=False, api_visibility="private")
        elif empties and isinstance(component, gr.Radio):  # says why a result went (it went without a word)
            component.change(_point_changed(blank, button.value), [component, empties[0]], [*empties, message],
                             queue=False, api_visibility="private")
    return event


def _point_changed(blank: list, action: str) -> Callable[[Any, Any], list]:
    """The step after a new operating point: the tab's `blank`, the message line saying why its result went
    (when one was shown: `shown`, the first of the emptied outputs) and how to get the new point's."""
    def changed(point, shown) -> list:
        if shown in (None, ""):
            return blank
        return [*blank[:-1], f"The operating point is now {literal(point)}: press \"{literal(action)}\" for its answer."]
    return changed


def _picture_changed(blank: list | None, label: str | None) -> Callable[[Any], Any]:
    """The step after a new picture: the tab's `blank` (its last item the message line), the message line saying
    why the picture cannot be used when its header already shows it (not a picture, too large). With `blank`
    None (a tab whose new picture empties nothing: enroll keeps its last doubts on the page), only the message
    line, and only when there is something to say."""
    def changed(payload) -> Any:
        problem = _why_unusable(payload, label or "Picture")
        if blank is None:
            return problem or gr.skip()
        return [*blank[:-1], problem] if problem else blank
    return changed


def _why_unusable(payload, label: str) -> str:
    """The message line's words for a picture whose header cannot be used, "" for one that can (or none). The
    file is opened past serving.payloads' checks and read no further than its header."""
    if payload is None:
        return ""
    try:
        with picture_file(payload, stored_by_this_app, gr.utils.get_upload_folder()) as handle:
            check_header(handle)
    except FaceLabError as exc:
        return f"**{literal(label)}: cannot be used.** {literal(exc.visitor_message())}"
    return ""


def _message_line() -> gr.Markdown:
    """Where a tab says why its last action failed."""
    return gr.Markdown(elem_classes="facelab-message")


def _examples(rows, inputs, label: str = "Examples") -> gr.Examples:
    """Clickable examples from examples/, under `label` (say what a click does). A click fills the inputs; give
    the examples to `_run` to run the tab as well (the gallery tabs need the visitor's state: there it only fills)."""
    rows = [[str(EXAMPLES / v) if str(v).endswith(".jpg") else v for v in row] for row in rows]
    examples = gr.Examples(rows, inputs, cache_examples=False, label=label)
    examples.dataset.elem_classes = ["facelab-examples"]  # CSS: their table fits a phone
    EXAMPLE_FILES.update(value["path"] for row in examples.non_none_processed_examples.values()
                         for value in row if isinstance(value, dict) and isinstance(value.get("path"), str))
    return examples


def build_demo() -> gr.Blocks:
    """The page, for this process's settings (SETTINGS: the handlers' OPERATOR gate is built from them too)."""
    settings = SETTINGS
    # Every result picture is a file in Gradio's cache (a live stream writes one per frame): sweep files
    # older than CACHE_MAX_AGE_SECONDS every CACHE_SWEEP_SECONDS (About says so), so a long class session cannot
    # fill the disk. The page takes the window's width (Gradio caps it at 1280 px, so a 1366-px laptop lost 86 px the identify result needs), up to
    # 1600 px (CSS).
    with gr.Blocks(title="Face Lab", analytics_enabled=False, delete_cache=(CACHE_SWEEP_SECONDS, CACHE_MAX_AGE_SECONDS),
                   fill_width=True) as demo:
        gr.Markdown("# Face Lab\nMask check, emotion, enroll & identify, verify: upload a picture or use your webcam.")
        status_line, timer = gr.Markdown(), gr.Timer(2)
        # A visitor's gallery expires an hour after its last change, also for API clients, whose
        # sessions Gradio would otherwise keep until a restart.
        gallery = gr.State(_open_gallery_once(settings), time_to_live=settings.session_seconds)

        # Laid out for a laptop (1366x900): each action's button and its result are both in the first
        # viewport (benchmarks/ui.py measures it), and each tab's examples sit, labelled, under their inputs.
        with gr.Tab("Mask check", id="mask"):
            _off_note("mask")
            inputs, outputs, still, button, live, message, result = _picture_and_result("mask", settings)
            with outputs:
                table = gr.Dataframe(headers=["face", "result", "box"], label="Faces", interactive=False,
                                     elem_classes="facelab-faces", wrap=True)
            with inputs:
                examples = _examples([["astronaut_mask.jpg"], ["astronaut.jpg"]], still,
                                     label="Examples: click one to check it")
            _run(button, for_this_screen(mask_check), still, [result, table], "mask", message, examples=examples)
            tracker = gr.State(None, time_to_live=settings.session_seconds)  # one tracker per visitor and stream
            live.stream(for_this_screen(mask_live), [live, tracker], [result, tracker, table], api_name="mask_live", **LIVE)
            with gr.Accordion("Why?", open=False, elem_classes="facelab-why"):  # issue 18
                _why(mask_why, still, "mask_why", ("Where the evidence lies", "Each face"), "mask")

        with gr.Tab("Emotion", id="emotion"):
            _off_note("emotion")
            faces = gr.State([], time_to_live=settings.session_seconds)  # it holds small pictures of the faces
            inputs, outputs, still, button, live, message, result = _picture_and_result("emotion", settings)
            with outputs:
                # No heading: a bare top word ("surprise") would drop the doubt and the caveat that the table and
                # the boxes show ("surprise? 51 % (mouth covered)"); the bars carry the numbers.
                with gr.Row(equal_height=False):
                    # The face the bars are about, beside them (hidden until there is one).
                    picked = gr.Image(label="Face 1", format="jpeg", interactive=False, visible=False, height=140,
                                      buttons=[], scale=0, min_width=110, elem_id="picked-face")
                    bars = gr.Label(num_top_classes=7, show_heading=False, label=LARGEST_FACE_BARS, scale=1)
                table = gr.Dataframe(headers=["face", "emotion", "confidence", "box"], label="Faces",
                                     interactive=False, elem_classes="facelab-faces", wrap=True)
            with inputs:
                examples = _examples([["astronaut.jpg"], ["astronaut_mirror.jpg"]], still,
                                     label="Examples: click one to read its emotions")
            with live.parent:  # the Live webcam sub-tab: under the webcam, beside the live result (it sat at the foot
                # of "Why?", 1,650 px down, where stream and plot could not be seen together; not in the upload
                # sub-tab, where no stream fills it); the plot shows once the box is ticked.
                timeline_on = gr.Checkbox(False, label="Plot the live webcam's emotions (largest face, last 30 s)")
                plot = gr.LinePlot(x="seconds", y="probability", color="emotion", color_map=EMOTION_COLOURS, x_lim=[-30, 0],
                                   y_lim=[0, 1], label="Emotions over the last 30 s", elem_id="emotion-timeline",
                                   visible=False)
            timeline_on.change(lambda on: gr.LinePlot(visible=on is True), timeline_on, plot, queue=False,
                               api_visibility="private")
            _run(button, for_this_screen(emotion), still, [result, bars, table, faces], "emotion", message,
                 empties=[result, bars, table, faces, picked], examples=examples,
                 emptied={bars: largest_face_bars(None), picked: picked_face(None, 1)},
                 then_show=(first_face_picture, faces, picked))
            result.select(emotion_pick, faces, [bars, picked], api_visibility="private")
            tracker = gr.State(None, time_to_live=settings.session_seconds)
            timeline = gr.State(None, time_to_live=settings.session_seconds)
            gr.Button("timeline", visible=False).click(emotion_timeline, [tracker, timeline], [plot, timeline],
                                                       api_name="emotion_timeline", **UPLOAD)
            with gr.Accordion("Why?", open=False, elem_classes="facelab-why"):  # issue 18
                _why(emotion_why, still, "emotion_why", ("Where the evidence lies", "Each face"), "emotion")
            live.stream(for_this_screen(emotion_live_with_timeline), [live, tracker, timeline_on, timeline],
                        [result, tracker, table, bars, plot, timeline, faces, picked], api_name="emotion_live", **LIVE)

        # Identify's result gets the width, for a group photo's names (browser pass: its tags were 6-7 px tall and
        # its table cut, below the fold): enroll keeps what its photo's label needs on one line, the picture to
        # identify 240 px with the operating point under it, and the table of faces sits under the result.
        with gr.Tab("Enroll & identify", id="identify"):
            _off_note("identify")
            with gr.Row():
                with gr.Column(scale=1, min_width=470):
                    gr.Markdown("### 1. Enroll someone", elem_classes="facelab-step")
                    with gr.Row(equal_height=False):
                        # No max_length: the browser would cut a longer name without a word; enroll refuses it, saying why.
                        with gr.Column(scale=2, min_width=180):
                            name = gr.Textbox(label="Name", placeholder="e.g. Ada Lovelace",
                                              info=f"up to {MAX_NAME_LENGTH} characters")
                            anyway = gr.Checkbox(False, label="Enroll anyway",
                                                 info="even if this face already matches someone else in the gallery")
                        enroll_image = gr.Image(type="filepath", sources=["upload", "webcam", "clipboard"],
                                                label="Photo (one face)", height=210, min_width=180, scale=3)
                    _examples([["Eileen Collins", "astronaut.jpg"]], [name, enroll_image],
                              label="Example: fills the name and photo, then press Enroll")
                    enroll_button = gr.Button("Enroll", variant="primary")
                    gallery_message = _message_line()
                    grid = gr.Gallery(label="Enrolled people", columns=4, height=170, allow_preview=False,
                                      fit_columns=False, object_fit="contain", elem_id="enrolled")
                    if not settings.gallery:  # a visitor's own gallery: say how easily it is lost
                        gr.Markdown(f"Your enrolled people stay in this browser tab only: **reloading or closing "
                                    f"the page empties the gallery** (and it is forgotten "
                                    f"{duration(settings.session_seconds)} after your last change).")
                    with gr.Row() as manage_row:
                        who = gr.Dropdown([], label="Person", scale=2)
                        delete_button = gr.Button("Delete", scale=1)
                        clear_button = gr.Button("Clear all", variant="stop", scale=1)
                    # Clearing cannot be undone: "Clear all" only asks; the API's "clear" is the answer's button.
                    with gr.Row(visible=False, elem_id="confirm-clear") as confirm_row:
                        gr.Markdown("**Remove everyone from the gallery?** This cannot be undone.")
                        confirm_clear = gr.Button("Yes, clear all", variant="stop", scale=0)
                        cancel_clear = gr.Button("Cancel", scale=0)
                    # Shared gallery only: deleting and clearing (and enrolling, if the operator says so)
                    # need the operator's token (serving/access.py).
                    token = gr.Textbox(label="Operator token (shared gallery)", type="password", value="",
                                       visible=OPERATOR.shared)
                with gr.Column(scale=2):
                    gr.Markdown("### 2. Identify the people in a picture", elem_classes="facelab-step")
                    with gr.Row(equal_height=False):
                        with gr.Column(scale=1, min_width=240):
                            still, button, live = _image_inputs(
                                "Picture to identify", settings, height=210, examples=lambda picture: _examples(
                                    [["astronaut_mirror.jpg"], ["two_people.jpg"]], picture,
                                    label="Examples: a click fills the picture, then press Analyse"))
                            point = gr.Radio(list(identity.OPERATING_POINTS), value="balanced", label="Operating point",
                                             info=OPERATING_POINT_INFO)
                        with gr.Column(scale=3, min_width=300):
                            message = _message_line()
                            result = _result_picture(height=IDENTIFY_RESULT_HEIGHT)
                            table = gr.Dataframe(headers=IDENTIFY_HEADERS,
                                                 label="Faces", interactive=False, elem_id="identify-faces",
                                                 elem_classes="facelab-faces", wrap=True)
                    TAB_BUTTONS["identify"] += [enroll_button, delete_button, clear_button, confirm_clear, button]
            # After an enroll the form empties: a photo left in it would be enrolled again under the next name.
            people_outputs = [grid, who, gallery]  # the gallery's view is never emptied before a change
            enrolled = _run(enroll_button, enroll, [name, enroll_image, token, anyway, gallery],
                            [*people_outputs, gallery_message], "enroll", gallery_message, empties=[])
            enrolled.success(lambda: ("", None, False), None, [name, enroll_image, anyway], queue=False,
                             api_visibility="private")
            deleted = _run(delete_button, delete, [who, token, gallery], people_outputs, "delete", gallery_message,
                           empties=[])
            # "Clear all" asks in its own place: the buttons' row gives way to the question (below it, the question
            # fell off the bottom of a laptop's window and the button seemed to do nothing).
            clear_button.click(lambda: (gr.Row(visible=False), gr.Row(visible=True)), None, [manage_row, confirm_row],
                               queue=False, api_visibility="private").then(
                None, None, None, js="() => { requestAnimationFrame(() => document.getElementById('confirm-clear')"
                                     "?.scrollIntoView({block: 'nearest'})); }", queue=False)
            asked_back = lambda: (gr.Row(visible=True), gr.Row(visible=False))  # noqa: E731
            cancel_clear.click(asked_back, None, [manage_row, confirm_row], queue=False, api_visibility="private")
            cleared = _run(confirm_clear, clear, [token, gallery], people_outputs, "clear", gallery_message, empties=[])
            cleared.then(asked_back, None, [manage_row, confirm_row], queue=False, api_visibility="private")
            gr.Button("List enrolled people", visible=False).click(people, gallery, gr.JSON(visible=False),
                                                                  api_name="people", **UPLOAD)
            _run(button, for_this_screen(identify, LAPTOP_IDENTIFY_BOX), [still, point, gallery], [result, table], "identify", message)
            tracker = gr.State(None, time_to_live=settings.session_seconds)
            live.stream(for_this_screen(identify_live, LAPTOP_IDENTIFY_BOX), [live, tracker, point, gallery], [result, tracker, table, message],
                        api_name="identify_live", **LIVE)
            with gr.Accordion("Why?", open=False, elem_classes="facelab-why"):  # issue 18
                why_outputs = _why(identify_why, [still, point, gallery], "identify_why",
                                   ("Similarity to each enrolled person (top 10) and the thresholds",), "identify")
            # Names shown for the gallery as it was are taken down when it changes: a deleted person's name
            # stayed on the faces, and a face enrolled since stayed "unknown".
            identified = [result, table, *why_outputs]
            for changed in (enrolled, deleted, cleared):
                changed.success(enrolled_heading, gallery, grid, queue=False, api_visibility="private")
                changed.success(functools.partial(gallery_changed, outputs=len(identified)), result, [*identified, message],
                                queue=False, api_visibility="private")

        with gr.Tab("Verify", id="verify"):
            _off_note("verify")
            with gr.Row():
                with gr.Column(scale=3):
                    with gr.Row():
                        first = gr.Image(type="filepath", sources=["upload", "webcam", "clipboard"], label="First photo",
                                         height=250, min_width=200)
                        second = gr.Image(type="filepath", sources=["upload", "webcam", "clipboard"], label="Second photo",
                                          height=250, min_width=200)
                    verify_point = gr.Radio(list(identity.OPERATING_POINTS), value="balanced", label="Operating point",
                                            info=VERIFY_POINT_INFO)
                    verify_button = gr.Button("Verify", variant="primary")
                    TAB_BUTTONS["verify"].append(verify_button)
                    examples_here = gr.Column()
                with gr.Column(scale=2):
                    message = _message_line()
                    verdict = gr.Markdown(elem_id="verdict")
                    # For API clients only: on the page the verdict and the ruler show it (an empty Number reads "0").
                    similarity = gr.Number(label="Similarity (cosine)", interactive=False, visible=False)
                    # No label and no buttons: either would hide the marker's value when the similarity is high.
                    scale = gr.Image(label="Similarity and the operating points' thresholds", format="png",
                                     interactive=False, height=120, show_label=False, buttons=[])
                    # Its label and buttons above the faces, as a result's (the badge covered the first face).
                    crops = gr.Image(label="Aligned faces", format="jpeg", interactive=False, height=170,
                                     buttons=["fullscreen", "download"], elem_classes="facelab-result")
            outputs = [verdict, similarity, scale, crops]
            with examples_here:
                # One pair of the same person, one of two people: what each answer looks like.
                examples = _examples([["astronaut.jpg", "astronaut_mirror.jpg", "balanced"],
                                      ["astronaut.jpg", "grace_hopper.jpg", "balanced"]], [first, second, verify_point],
                                     label="Examples: click one to verify its two photos")
            _run(verify_button, verify, [first, second, verify_point], outputs, "verify", message, examples=examples)
            with gr.Accordion("Why?", open=False, elem_classes="facelab-why"):  # issue 18
                _why(verify_why, [first, second], "verify_why",
                     ("What makes them similar", "The two embeddings and their product"), "verify")

        with gr.Tab("About", id="about"):
            running = gr.Markdown()  # status() fills it: the backbone that actually loaded, its precision
            gr.Markdown(about(settings))

        shown = [status_line, timer, running, *(TAB_NOTES[tab] for tab in TABS),
                 *(b for tab in TABS for b in TAB_BUTTONS[tab])]
        timer.tick(status, None, shown, api_visibility="private", show_progress="hidden", queue=False)
        demo.load(status, None, shown, api_visibility="private", queue=False)
    # Tabs that do not fit the width wrap onto another row instead of hiding behind a "..." menu: on a
    # phone every tab is one tap away (issue 17).
    for block in demo.blocks.values():
        if isinstance(block, gr.Tabs):
            block.overflow_behavior = "wrap"
    return demo.queue(max_size=settings.queue_size)


demo = build_demo()

if __name__ == "__main__":
    threading.Thread(target=_warm_up, name="facelab-warm-up", daemon=True).start()
    demo.launch(
        server_name=SETTINGS.server_name,
        server_port=SETTINGS.server_port,
        theme=gr.themes.Soft(),
        css=CSS,
        max_file_size=max_file_bytes(),
        show_error=False,
        # Every request body but an upload's is bounded before it is read (a data: URL is at most
        # MAX_INLINE_CHARS long): serving/http_limits.py.
        app_kwargs={"middleware": [Middleware(RequestBodyLimit, max_bytes=MAX_INLINE_CHARS + 1024 * 1024)]},
    )
