"""Face Lab: a Gradio app over the pipeline package. This file only wires the UI to `pipeline/`.

    python app.py    # http://127.0.0.1:7860 (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT to change)

Four tabs (mask check, emotion, enroll & identify, verify) and an About tab. Every action has a
stable api_name (README "API (gradio_client)"). Models load in a background thread at start-up, so
the page is usable at once; a tab whose model cannot be loaded stays visible, says why, and its
buttons are off.
"""

from __future__ import annotations

import base64
import binascii
import functools
import html
import json
import logging
import os
import re
import threading
import time
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # analytics off unless the operator opts in

import gradio as gr  # noqa: E402
import gradio_fixes  # noqa: E402,F401  (Gradio 6.31 rewrote cached result pictures in place: short downloads)
import numpy as np  # noqa: E402

from pipeline import FaceLabError, InvalidImageError, get_facelab, load_rgb, overlay  # noqa: E402
from pipeline import identity  # noqa: E402
from pipeline.analysis import MAX_FACES  # noqa: E402
from pipeline.gallery import open_gallery  # noqa: E402
from pipeline.mask_detection import is_assumed  # noqa: E402
from pipeline.tracking import FaceTracker  # noqa: E402

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
log = logging.getLogger("facelab.app")

ROOT = Path(__file__).resolve().parent
EXAMPLES = ROOT / "examples"
RESULTS = ROOT / "benchmarks" / "results"

# Live streams: a frame every 100 ms; a frame that arrives while the previous one is still being
# processed replaces the waiting one (Gradio keeps only the latest), so slow frames are dropped, never
# queued. Streams and uploads have their own bounded worker pools; the queue itself is bounded too.
LIVE = dict(stream_every=0.1, time_limit=int(os.environ.get("FACELAB_STREAM_SECONDS", 60)),
            concurrency_limit=int(os.environ.get("FACELAB_LIVE_CONCURRENCY", 8)), concurrency_id="live",
            show_progress="hidden", api_visibility="undocumented", preprocess=False)
UPLOAD = dict(concurrency_limit=int(os.environ.get("FACELAB_UPLOAD_CONCURRENCY", 4)), concurrency_id="upload",
              preprocess=False)
QUEUE_SIZE = int(os.environ.get("FACELAB_QUEUE_SIZE", 100))
SESSION_SECONDS = int(os.environ.get("FACELAB_SESSION_SECONDS", 3600))

try:  # ZeroGPU Spaces: run the model handlers on a borrowed GPU; elsewhere a no-op.
    import spaces

    gpu = spaces.GPU
except ImportError:
    def gpu(fn):
        return fn


# ----------------------------------------------------------------------------------------------
# Models: resolved at start-up with progress in the log; heads that cannot load disable their tab.

def _load_head(kind: str) -> str | None:
    """None when the head is ready, else the reason its tab is off."""
    try:
        log.info("loading the %s head (weights from weights/manifest.json, sha256 checked)...", kind)
        getattr(get_facelab(), f"{kind}_head")
        log.info("%s head ready", kind)
        return None
    except (FaceLabError, OSError, RuntimeError, KeyError) as exc:
        log.warning("%s tab disabled: %s", kind, exc)
        return f"The {kind} model could not be loaded: {exc}"


MASK_OFF = _load_head("mask")
EMOTION_OFF = _load_head("emotion")
STATUS: dict[str, str] = {"face detector": "loading", "face embedder": "loading"}


def _warm_up() -> None:
    """Load the detector and the embedder in the background, so the page is up before they are."""
    lab = get_facelab()
    for what, load in (("face detector", lambda: lab.detector), ("face embedder", lambda: lab.embedder)):
        started = time.perf_counter()
        log.info("loading the %s...", what)
        try:
            model = load(); STATUS[what] = "ready"  # noqa: E702
            log.info("%s ready in %.1f s (%s)", what, time.perf_counter() - started, getattr(model, "backbone", "MTCNN"))
        except Exception as exc:  # the tabs that need it will show this reason
            STATUS[what] = f"unavailable: {exc}"
            log.error("%s unavailable: %s", what, exc)


# ----------------------------------------------------------------------------------------------
# Handler helpers: friendly errors, picture payloads, tables.

def friendly(fn):
    """Show pipeline errors as their message and anything unexpected as a short apology: never a traceback."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except FaceLabError as exc:  # toasts render HTML: escape, since messages may quote what a visitor typed
            raise gr.Error(html.escape(str(exc), quote=False), print_exception=False) from None
        except Exception:
            log.exception("unexpected error in %s", fn.__name__)
            raise gr.Error("Something went wrong while analysing this picture. Please try another one.",
                           print_exception=False) from None
    return wrapper


def picture(payload, what: str = "a photo") -> np.ndarray:
    """The RGB array of an uploaded file, webcam snapshot or example (the pipeline's limits apply)."""
    if payload is None:
        raise gr.Error(f"Upload {what} or take a webcam snapshot first.", print_exception=False)
    if isinstance(payload, dict):  # the events run with preprocess=False: our limits, our messages
        url = payload.get("url") or ""
        if not payload.get("path") and url.startswith("data:"):
            try:
                return load_rgb(base64.b64decode(url.split(",", 1)[-1], validate=True))
            except binascii.Error:
                raise InvalidImageError("The picture could not be read (its data is not valid base64).") from None
        payload = payload.get("path")
    if not isinstance(payload, str):
        raise InvalidImageError("Send the picture as a file (gradio_client: handle_file(path)).")
    return load_rgb(payload)


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
        gr.Warning(f"Only the {MAX_FACES} largest faces were analysed; {skipped} more were skipped.")


def box_text(box) -> str:
    return ", ".join(str(int(round(v))) for v in box)


# ----------------------------------------------------------------------------------------------
# Mask check

NO_FACE = "No face found. Try a picture where the face is larger, well lit and facing the camera."


def _mask_label(face) -> tuple[str, tuple]:
    return overlay.mask_text(face.mask.label, face.mask.probability, whole_picture=is_assumed(face))


def _emotion_label(face) -> tuple[str, tuple]:
    return overlay.emotion_text(face.emotion.top, face.emotion.confidence, bool(face.emotion.mouth_covered))


@gpu
@friendly
def mask_check(image):
    require(MASK_OFF)
    analysis = analysed(image, mask=True)
    labels = [_mask_label(f) for f in analysis.faces]
    boxes = [overlay.Box(f.box, text, colour) for f, (text, colour) in zip(analysis.faces, labels)]
    rows = [[i + 1, text, box_text(f.box)] for i, (f, (text, _)) in enumerate(zip(analysis.faces, labels))]
    return overlay.draw_boxes(analysis.image, boxes), rows


def _live(label_faces, reuse: bool = True):
    """A stream handler: follow faces with the session's tracker, label them, draw. With `reuse`, a face
    keeps its label while it is tracked (recomputed at each full detection); without, every frame is
    labelled afresh (expressions change). Never raises: a bad frame comes back empty, the stream goes on."""
    @gpu
    def handler(frame, tracker, *extra):
        if frame is None:
            return None, tracker
        try:
            rgb = picture(frame)
        except FaceLabError:
            return None, tracker
        try:
            tracker = tracker or FaceTracker(get_facelab())
            tracks = tracker.update(rgb)
            fresh = [t for t in tracks if "label" not in t.memo or not reuse]
            for track, label in zip(fresh, label_faces([t.face for t in fresh], *extra)):
                track.memo["label"] = label
            return overlay.draw_boxes(rgb, [overlay.Box(t.face.box, *t.memo["label"]) for t in tracks]), tracker
        except Exception:
            log.exception("live frame failed")
            return rgb, tracker
    return handler


def _describe(label, **heads):
    def label_faces(faces):
        get_facelab().describe(faces, **heads)
        return [label(f) for f in faces]
    return label_faces


mask_live = _live(_describe(_mask_label, mask=True))


# ----------------------------------------------------------------------------------------------
# Emotion

@gpu
@friendly
def emotion(image):
    require(EMOTION_OFF)
    analysis = analysed(image, emotion=True)
    boxes = [overlay.Box(f.box, *_emotion_label(f)) for f in analysis.faces]
    rows = [[i + 1, overlay.emotion_word(f.emotion.top, f.emotion.confidence, bool(f.emotion.mouth_covered)),
             overlay.percent(f.emotion.confidence), box_text(f.box)] for i, f in enumerate(analysis.faces)]
    faces = [(f.box.tolist(), overlay.capped_all(f.emotion.probabilities)) for f in analysis.faces]
    return overlay.draw_boxes(analysis.image, boxes), faces[0][1], rows, faces


def emotion_pick(faces, evt: gr.SelectData):
    """Clicking a face in the result shows that face's probabilities."""
    x, y = evt.index
    for box, probabilities in faces or []:
        if box[0] <= x <= box[2] and box[1] <= y <= box[3]:
            return probabilities
    return gr.skip()


emotion_live = _live(_describe(_emotion_label, emotion=True), reuse=False)


# ----------------------------------------------------------------------------------------------
# Enroll & identify, verify (pipeline.identity)

def _people(gallery) -> tuple[list, dict]:
    """The gallery grid (thumbnail, name) and the choices of the delete menu."""
    import io
    from PIL import Image

    people = gallery.people()
    grid = [(np.asarray(Image.open(io.BytesIO(p.thumbnail)).convert("RGB")) if p.thumbnail else np.full((64, 64, 3), 200, np.uint8),
             p.name) for p in people]
    return grid, gr.update(choices=[p.name for p in people], value=None)


@gpu
@friendly
def enroll(name, image, gallery):
    if not isinstance(name, str) or not name.strip():
        raise gr.Error("Type the person's name first.", print_exception=False)
    result = identity.enroll(get_facelab(), gallery, name, picture(image, "a photo of the person"))
    for note in [*result.notes, *result.warnings]:
        gr.Warning(html.escape(note, quote=False))
    photos = f" ({result.person.embeddings} photos)" if result.person.embeddings > 1 else ""
    gr.Info(f"Enrolled {html.escape(result.person.name, quote=False)}{photos}.")
    return (*_people(gallery), gallery)


@friendly
def people(gallery):
    return [{"name": p.name, "photos": p.embeddings} for p in gallery.people()]


@friendly
def delete(name, gallery):
    if not name:
        raise gr.Error("Choose whom to delete first.", print_exception=False)
    if not gallery.delete(name):
        raise gr.Error("No one by that name is enrolled.", print_exception=False)
    return (*_people(gallery), gallery)


@friendly
def clear(gallery):
    gallery.clear()
    return (*_people(gallery), gallery)


@gpu
@friendly
def identify(image, operating_point, gallery):
    rgb = picture(image)
    if not len(gallery):
        gr.Warning("No one is enrolled yet: every face will be unknown. Enroll someone first.")
    matches = identity.identify(get_facelab(), gallery, rgb, operating_point_of(operating_point))
    if not matches:
        raise gr.Error(NO_FACE, print_exception=False)
    boxes = [overlay.Box(m.box, *overlay.identity_text(m.name, m.similarity)) for m in matches]
    rows = [[i + 1, m.label, None if np.isnan(m.similarity) else round(float(m.similarity), 3),
             round(float(m.threshold), 3), box_text(m.box)] for i, m in enumerate(matches)]
    return overlay.draw_boxes(rgb, boxes), rows


def _identify_faces(faces, operating_point, gallery):
    if not faces:
        return []
    lab = get_facelab()
    threshold = identity.identification_threshold(lab.embedder.backbone, operating_point_of(operating_point),
                                                 gallery.embedding_count)
    lab.describe(faces, embed=True)
    hits = gallery.search_many(np.stack([f.embedding for f in faces]), 1, lab.embedder.backbone)
    return [overlay.identity_text(best[0].name if best and best[0].similarity >= threshold else None,
                                  best[0].similarity if best else float("nan")) for best in hits]


identify_live = _live(_identify_faces)


@gpu
@friendly
def verify(image_a, image_b, operating_point):
    result = identity.verify(get_facelab(), picture(image_a, "the first photo"), picture(image_b, "the second photo"),
                             operating_point_of(operating_point))
    verdict = "Same person" if result.same_person else "Different people"
    notes = "".join(f"\n- {html.escape(note)}" for note in result.notes)
    text = (f"## {verdict}\nSimilarity **{result.similarity:.3f}**, threshold {result.threshold:.3f} "
            f"({html.escape(result.operating_point)} operating point: {'at or above' if result.same_person else 'below'} "
            f"the threshold means {'same person' if result.same_person else 'different people'}).{notes}")
    scale = overlay.similarity_scale(result.similarity, identity.thresholds(get_facelab().embedder.backbone),
                                     result.operating_point)
    return text, round(float(result.similarity), 3), scale, overlay.side_by_side(result.crop_a, result.crop_b)


# ----------------------------------------------------------------------------------------------
# About

ACCURACY_KEYS = ("accuracy", "auc", "f1", "tar", "eer", "recall", "precision")


def _metrics(data, prefix: str = ""):
    """(path, value) of every accuracy-like number in a benchmark JSON (nested dicts and lists flattened)."""
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else []
    for key, value in items:
        if isinstance(value, dict):  # name list entries by what they are ("casia-webface"), not their index
            key = " ".join(str(value[k]) for k in ("backbone", "alignment", "name", "model") if isinstance(value.get(k), str)) or key
        path = f"{prefix}{key}".removeprefix("results / ")
        if isinstance(value, (dict, list)):
            yield from _metrics(value, path + " / ")
        elif isinstance(value, float) and (set(re.split(r"[^a-z0-9]+", str(key).lower())) & set(ACCURACY_KEYS)
                                           and "std" not in str(key)):
            yield path, value


def accuracy_lines(limit: int = 8) -> list[str]:
    """One line per benchmark result file (benchmarks/results/*.json, weights/*.metrics.json)."""
    lines = []
    for path in sorted(RESULTS.glob("*.json")) + sorted((ROOT / "weights").glob("*.metrics.json")):
        try:
            found = list(_metrics(json.loads(path.read_text())))
        except ValueError:
            continue
        if found:
            shown = ", ".join(f"{html.escape(k)} = {v:.3f}" for k, v in found[:limit])
            lines.append(f"- **{path.name}**: {shown}" + (f" (and {len(found) - limit} more)" if len(found) > limit else ""))
    return lines or ["No accuracy results yet (run the scripts in `benchmarks/`)."]


def travel_lines() -> list[str]:
    """How the mask and emotion checks do on pictures unlike their training sets (issue 16's figures, read from
    benchmarks/results/mask.json and emotion.json; nothing when those figures are not there)."""
    lines = []
    try:
        mask = json.loads((RESULTS / "mask.json").read_text())
        lines.append(f"- Masked close-ups (any aspect, up to 1280 px) with no face found: {mask['no_face_rate']:.1%}; "
                     "boxes labelled on things that are not faces: "
                     + ", ".join(f"{n} in {k.replace('_', ' ')}" for k, n in mask["phantom_boxes"].items()) + ".")
    except (OSError, ValueError, KeyError):
        pass
    try:
        emotion = json.loads((RESULTS / "emotion.json").read_text())
        lines.append(f"- Emotion on posed faces from another dataset (CK+, {emotion['ckplus']['protocol']}): "
                     f"{emotion['ckplus_accuracy']:.1%} right, calibration error {emotion['ckplus_ece']:.3f}; "
                     f"FER faces found by the pipeline {emotion['accuracy_pipeline']:.1%} vs "
                     f"{emotion['accuracy_direct']:.1%} scored directly.")
    except (OSError, ValueError, KeyError):
        pass
    return lines


def about() -> str:
    models = json.loads((ROOT / "weights" / "manifest.json").read_text())["models"]
    lines = ["## Models", "| model | weights | licence |", "|---|---|---|",
             "| MTCNN face detector | shipped in the facenet-pytorch wheel | MIT |"]
    lines += [f"| {html.escape(m.get('description', name), quote=False)} | `{m.get('repo_id', '')}` / "
              f"`{m.get('filename', '')}` | {html.escape(m.get('license', '?'), quote=False)} |" for name, m in models.items()]
    lines += ["", "## Measured accuracy", *accuracy_lines()]
    lines += [
        "", "## Limits",
        "- **No liveness check**: a printed photo or a screen held up to the camera can fool it.",
        "- Accuracy drops for children and for groups under-represented in the training data.",
        "- A webcam (blur, low light, angles) is harder than the LFW benchmark photos the accuracy is measured on.",
        "- Emotion labels are what a face looks like, not what a person feels; on a masked face the emotion is "
        "read from the eyes alone and says \"mouth covered\".",
        "- Percentages are the models' calibrated confidence, never shown above 99 %; a word with \"?\" is a guess.",
        "- Mask check: a face that no detection step finds gets no verdict; where the picture's centre was taken "
        "as the face, the label says \"whole picture judged\".",
        *travel_lines(),
        "", "## Privacy",
        "By default nothing is stored beyond your session: enrolled people (a name, face embeddings and a small "
        "thumbnail, never the photo) live in this browser tab's session and are gone when you close it. "
        "Only when the operator sets `FACELAB_GALLERY` is a shared gallery kept on the server.",
    ]
    return "\n".join(lines)


# No threshold numbers here: they belong to the backbone that ends up loaded (the preferred one may be
# unavailable), which is known only after start-up; every result states the threshold it used.
OPERATING_POINT_INFO = ("strict: fewer false matches; balanced: fewer missed matches. "
                        "Each result shows the similarity threshold it was compared with.")


def status():
    """The loading line at the top, refreshed until every model is ready (then the timer stops)."""
    loading = any(state == "loading" for state in STATUS.values())
    problems = [f"{name}: {state}" for name, state in STATUS.items() if state != "ready"]
    text = ("Loading models... " if loading else "") + "; ".join(html.escape(p) for p in problems)
    return text, gr.Timer(active=loading)


# ----------------------------------------------------------------------------------------------
# Layout

def _image_inputs(label: str, off: str | None):
    """An upload/snapshot picture and a live webcam stream, in two sub-tabs."""
    with gr.Tab("Upload or snapshot"):
        still = gr.Image(type="filepath", sources=["upload", "webcam", "clipboard"], label=label,
                         webcam_options=gr.WebcamOptions(mirror=True), height=360)
        button = gr.Button("Analyse", variant="primary", interactive=off is None)
    with gr.Tab("Live webcam"):
        live = gr.Image(sources=["webcam"], streaming=True, type="filepath", label="Webcam (live)", height=360)
    return still, button, live


def _off(reason: str | None) -> None:
    if reason:
        gr.Markdown(f"**Not available:** {html.escape(reason)}")


def _run(button, fn, inputs, outputs, api_name: str) -> None:
    """`fn` on a click, once the previous result is cleared: when `fn` fails, the page shows its message
    and never the last picture's result beside it (a stale "Same person" next to a faceless photo)."""
    button.click(lambda: [None] * len(outputs), None, outputs, queue=False, api_visibility="private").then(
        fn, inputs, outputs, api_name=api_name, **UPLOAD)


def _examples(rows, inputs, fn=None, outputs=None):
    """Clickable examples from examples/; with `fn` a click also runs the tab (the gallery tabs need the
    visitor's state, so there a click only fills the inputs)."""
    rows = [[str(EXAMPLES / v) if str(v).endswith(".jpg") else v for v in row] for row in rows]
    gr.Examples(rows, inputs, outputs, fn=fn, run_on_click=fn is not None, cache_examples=False, preprocess=False)


def build_demo() -> gr.Blocks:
    # Every result picture is a file in Gradio's cache (a live stream writes one per frame): sweep files
    # older than 15 minutes every 5 minutes so a long class session cannot fill the disk.
    with gr.Blocks(title="Face Lab", analytics_enabled=False, delete_cache=(300, 900)) as demo:
        gr.Markdown("# Face Lab\nMask check, emotion, enroll & identify, verify: upload a picture or use your webcam.")
        status_line, timer = gr.Markdown(), gr.Timer(2)
        timer.tick(status, None, [status_line, timer], api_visibility="private", show_progress="hidden", queue=False)
        demo.load(status, None, [status_line, timer], api_visibility="private", queue=False)
        # A visitor's gallery expires an hour after its last change, also for API clients, whose
        # sessions Gradio would otherwise keep until a restart.
        gallery = gr.State(open_gallery(), time_to_live=SESSION_SECONDS)

        with gr.Tab("Mask check", id="mask"):
            _off(MASK_OFF)
            with gr.Row():
                with gr.Column():
                    still, button, live = _image_inputs("Picture", MASK_OFF)
                with gr.Column():
                    result = gr.Image(label="Result", format="jpeg", interactive=False, height=360)
                    table = gr.Dataframe(headers=["face", "result", "box"], label="Faces", interactive=False)
            _run(button, mask_check, still, [result, table], "mask")
            tracker = gr.State(None, time_to_live=SESSION_SECONDS)  # one tracker per visitor and stream
            live.stream(mask_live, [live, tracker], [result, tracker], api_name="mask_live", **LIVE)
            _examples([["astronaut_mask.jpg"], ["astronaut.jpg"]], still, mask_check, [result, table])

        with gr.Tab("Emotion", id="emotion"):
            _off(EMOTION_OFF)
            faces = gr.State([])
            with gr.Row():
                with gr.Column():
                    still, button, live = _image_inputs("Picture", EMOTION_OFF)
                with gr.Column():
                    result = gr.Image(label="Result (click a face for its emotions)", format="jpeg", interactive=False,
                                      height=360)
                    bars = gr.Label(num_top_classes=7, label="Emotions of the largest (or clicked) face")
                    table = gr.Dataframe(headers=["face", "emotion", "confidence", "box"], label="Faces",
                                         interactive=False)
            _run(button, emotion, still, [result, bars, table, faces], "emotion")
            result.select(emotion_pick, faces, bars, api_visibility="private")
            tracker = gr.State(None, time_to_live=SESSION_SECONDS)
            live.stream(emotion_live, [live, tracker], [result, tracker], api_name="emotion_live", **LIVE)
            _examples([["astronaut.jpg"], ["astronaut_mirror.jpg"]], still, emotion, [result, bars, table, faces])

        with gr.Tab("Enroll & identify", id="identify"):
            point = gr.Radio(list(identity.OPERATING_POINTS), value="balanced", label="Operating point",
                             info=OPERATING_POINT_INFO)
            with gr.Row():
                with gr.Column():
                    gr.Markdown("### Enroll")
                    name = gr.Textbox(label="Name", max_length=64, placeholder="e.g. Ada Lovelace")
                    enroll_image = gr.Image(type="filepath", sources=["upload", "webcam", "clipboard"],
                                            label="Photo of this person (one face)", height=260)
                    enroll_button = gr.Button("Enroll", variant="primary")
                    grid = gr.Gallery(label="Enrolled people", columns=6, height=200, allow_preview=False,
                                      fit_columns=False, object_fit="contain")
                    with gr.Row():
                        who = gr.Dropdown([], label="Person", scale=2)
                        delete_button = gr.Button("Delete", scale=1)
                        clear_button = gr.Button("Clear all", variant="stop", scale=1)
                with gr.Column():
                    gr.Markdown("### Identify")
                    still, button, live = _image_inputs("Picture to identify", None)
                    result = gr.Image(label="Result", format="jpeg", interactive=False, height=360)
                    table = gr.Dataframe(headers=["face", "name", "similarity", "threshold", "box"], label="Faces",
                                         interactive=False)
            enroll_button.click(enroll, [name, enroll_image, gallery], [grid, who, gallery], api_name="enroll", **UPLOAD)
            delete_button.click(delete, [who, gallery], [grid, who, gallery], api_name="delete", **UPLOAD)
            clear_button.click(clear, gallery, [grid, who, gallery], api_name="clear", **UPLOAD)
            gr.Button("List enrolled people", visible=False).click(people, gallery, gr.JSON(visible=False),
                                                                  api_name="people", **UPLOAD)
            _run(button, identify, [still, point, gallery], [result, table], "identify")
            tracker = gr.State(None, time_to_live=SESSION_SECONDS)
            live.stream(identify_live, [live, tracker, point, gallery], [result, tracker], api_name="identify_live", **LIVE)
            _examples([["Eileen Collins", "astronaut.jpg"]], [name, enroll_image])  # then press Enroll
            _examples([["astronaut_mirror.jpg"]], still)

        with gr.Tab("Verify", id="verify"):
            with gr.Row():
                first = gr.Image(type="filepath", sources=["upload", "webcam", "clipboard"], label="First photo", height=300)
                second = gr.Image(type="filepath", sources=["upload", "webcam", "clipboard"], label="Second photo", height=300)
            verify_point = gr.Radio(list(identity.OPERATING_POINTS), value="balanced", label="Operating point",
                                    info=OPERATING_POINT_INFO)
            verify_button = gr.Button("Verify", variant="primary")
            with gr.Row():
                verdict = gr.Markdown()
                similarity = gr.Number(label="Similarity (cosine)", interactive=False)
            with gr.Row():
                scale = gr.Image(label="Similarity and the operating points' thresholds", format="png",
                                 interactive=False, height=120, show_label=False)  # a label would hide the marker's value
                crops = gr.Image(label="Aligned faces", format="jpeg", interactive=False, height=180)
            outputs = [verdict, similarity, scale, crops]
            _run(verify_button, verify, [first, second, verify_point], outputs, "verify")
            _examples([["astronaut.jpg", "astronaut_mirror.jpg", "balanced"]], [first, second, verify_point], verify,
                      outputs)

        with gr.Tab("About", id="about"):
            gr.Markdown(about())
    return demo.queue(max_size=QUEUE_SIZE)


demo = build_demo()

if __name__ == "__main__":
    threading.Thread(target=_warm_up, name="facelab-warm-up", daemon=True).start()
    demo.launch(
        server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        server_port=int(os.environ.get("GRADIO_SERVER_PORT", 7860)),
        theme=gr.themes.Soft(),
        max_file_size="50mb",
        show_error=False,
    )
