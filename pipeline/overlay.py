"""Drawing results onto pictures, and the short texts that label them. UI-free (PIL only).

Colours follow one rule everywhere: green = mask, red = no mask, amber = a verdict not to be taken as
certain (a mask verdict the head is unsure of, a possible match: a name the similarity does not establish),
grey = unknown person, blue = any other label (an emotion, a known person's name).

Confidence is shown honestly: never "100 %" (a classifier on a picture it was not trained on is never
that sure), and a verdict below its head's `*_SURE` level reads as a question ("neutral? 38 %").
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Iterable, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .heads import MASK_SURE

GREEN = (22, 163, 74)
RED = (220, 38, 38)
GREY = (120, 120, 120)
BLUE = (37, 99, 235)
AMBER = (180, 83, 9)  # dark enough for white text
WHITE = (255, 255, 255)
FONT_PER_FACE_WIDTH = 0.22  # label text height per pixel of face width (a label spans about 1.4 faces)
# Smallest label text, as a share of the picture's longer side: the page shrinks a picture to its result box
# (a 1200-px group photo to about 550 px on a laptop), so 1/40 keeps a tag about 17 px tall there.
MIN_FONT_SHARE = 1 / 40
# Smallest tag text as seen, where the caller knows the box the page fits the picture into (a phone shows every
# picture about 358 px wide, where a 1200-px group photo's tags were 5 px tall; a laptop a webcam frame 307 px
# tall, where they were 8): tags that cannot all keep their text at this size keep their number (the table of
# faces gives the rest), rather than shrink below it.
MIN_SHOWN_FONT = 12


def min_font_to_show(size: tuple[int, int], shown_in: tuple[float, float]) -> int:
    """The smallest tag text, in picture pixels, that is MIN_SHOWN_FONT tall once a picture of `size` (width,
    height) is fitted into a box of `shown_in` (width, height; math.inf for a box as tall as the picture needs)."""
    fit = min(shown_in[0] / size[0], shown_in[1] / size[1])
    return math.ceil(MIN_SHOWN_FONT / fit)


@dataclass(frozen=True)
class Box:
    """One face to draw: (x1, y1, x2, y2) in picture pixels, the text to write above it, its colour."""

    box: Sequence[float]
    text: str
    colour: tuple[int, int, int] = BLUE


# Highest probability ever shown: the heads' calibrated softmax reaches 1.0 in float32 on easy pictures
# (63 of 596 pictures in the issue-16 review read "100 %"), which no classifier earns.
SHOWN_MAX = 0.99
# Below these probabilities a verdict is shown as a question. Emotion: the heads are calibrated, so under
# 0.5 the top emotion is more often wrong than right. Mask: MASK_SURE (pipeline.heads).
EMOTION_SURE = 0.5
MOUTH_COVERED = "mouth covered"
WHOLE_PICTURE = "whole picture judged"


def capped(probability: float) -> float:
    """A probability as it may be shown: at most SHOWN_MAX."""
    return min(float(probability), SHOWN_MAX)


def capped_all(probabilities: dict[str, float]) -> dict[str, float]:
    """A distribution as it may be shown (the emotion bars): its top capped at SHOWN_MAX, the excess
    shared among the other labels in proportion to theirs (evenly when they hold nothing), so the bars
    still sum to 1."""
    top = max(probabilities, key=probabilities.get)
    excess = probabilities[top] - capped(probabilities[top])
    if excess <= 0 or len(probabilities) < 2:
        return dict(probabilities)
    rest = sum(p for label, p in probabilities.items() if label != top)
    share = {label: (p / rest if rest > 0 else 1 / (len(probabilities) - 1)) for label, p in probabilities.items()}
    return {label: SHOWN_MAX if label == top else p + excess * share[label] for label, p in probabilities.items()}


def percent(probability: float) -> str:
    """0.9812 -> '98 %'; never '100 %' (see SHOWN_MAX)."""
    return f"{int(round(capped(probability) * 100))} %"


def mask_text(label: str, probability: float, whole_picture: bool = False) -> tuple[str, tuple[int, int, int]]:
    """('mask', 0.98) -> ('mask 98 %', green); ('no_mask', 0.91) -> ('no mask 91 %', red); an unsure
    verdict, ('mask', 0.62) -> ('mask? 62 %', amber). `whole_picture`: no face was located and the picture's
    centre was judged as one (pipeline.mask_detection's fallback), which the text says."""
    masked, sure = label == "mask", probability >= MASK_SURE
    colour = (GREEN if masked else RED) if sure else AMBER
    text = f"{'mask' if masked else 'no mask'}{'' if sure else '?'} {percent(probability)}"
    return (f"{text} ({WHOLE_PICTURE})" if whole_picture else text), colour


def emotion_word(emotion: str, probability: float, mouth_covered: bool = False) -> str:
    """'happy', 'neutral?' (under EMOTION_SURE) or, on a masked face, 'happy? (mouth covered)': the head,
    trained on uncovered faces, then reads the eyes alone, so it is always a question and says why."""
    sure = probability >= EMOTION_SURE and not mouth_covered
    return f"{emotion}{'' if sure else '?'}" + (f" ({MOUTH_COVERED})" if mouth_covered else "")


def emotion_text(emotion: str, probability: float, mouth_covered: bool = False) -> tuple[str, tuple[int, int, int]]:
    """('happy', 0.9) -> 'happy 90 %'; ('neutral', 0.38) -> 'neutral? 38 %';
    ('happy', 0.82, mouth_covered) -> 'happy? 82 % (mouth covered)'."""
    word, _, caveat = emotion_word(emotion, probability, mouth_covered).partition(" ")  # names hold no space
    return f"{word} {percent(probability)}" + (f" {caveat}" if caveat else ""), BLUE


def similarity_text(similarity: float) -> str:
    """A similarity as every picture and line of the app writes it: three decimals, so that a similarity just
    below its threshold never reads as equal to it (0.618 against 0.620 drew '0.62' on 'strict 0.62')."""
    return f"{similarity:.3f}"


def identity_text(name: str | None, similarity: float, possible: str | None = None) -> tuple[str, tuple[int, int, int]]:
    """A known name in blue with its similarity; a possible match in amber, marked as such; 'unknown' in
    grey (no similarity for an empty gallery)."""
    if not name and possible:
        return f"possible match: {possible} ({similarity_text(similarity)})", AMBER
    if not name:
        return ("unknown", GREY) if similarity != similarity else (f"unknown ({similarity_text(similarity)})", GREY)
    return f"{name} ({similarity_text(similarity)})", BLUE


@lru_cache(maxsize=16)
def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: fixed-size bitmap font
        return ImageFont.load_default()


Rect = tuple[float, float, float, float]


def _overlap(a: Rect, b: Rect) -> float:
    return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))


def _places(size: tuple[int, int], box: Rect, tag: tuple[float, float], slide: bool = False) -> list[Rect]:
    """Where a tag of size `tag` may go for `box`, in order of preference: above the box, inside its top edge,
    under it, inside its bottom edge; at each height left-aligned with the box, right-aligned, then centred on
    it; always inside the picture. With `slide` (a number alone, in a crowd), then every half tag along those
    heights while the tag still meets the box's columns, and down the box's inner sides."""
    (width, height), (tag_w, tag_h) = size, tag
    x1, y1, x2, y2 = box
    inside_x = lambda x: min(max(0.0, x), max(0.0, width - tag_w))  # noqa: E731
    inside_y = lambda y: min(max(0.0, y), max(0.0, height - tag_h))  # noqa: E731
    xs = [x1, x2 - tag_w, (x1 + x2 - tag_w) / 2]
    ys = [y for y in (y1 - tag_h, y1, y2, y2 - tag_h) if 0 <= y <= height - tag_h] or [inside_y(y1)]
    places = [(x, y) for y in ys for x in xs]
    if slide:
        step = max(1.0, tag_w / 2)
        places += [(x1 - tag_w + step * (k + 1), y) for y in ys for k in range(int((x2 - x1 + tag_w) / step))]
        places += [(x, y1 + tag_h / 2 * k) for k in range(1, int(2 * (y2 - y1) / tag_h)) for x in (x1, x2 - tag_w)]
    rects = dict.fromkeys((inside_x(x), inside_y(y), inside_x(x) + tag_w, inside_y(y) + tag_h) for x, y in places)
    return list(rects)


def _covered(place: Rect, taken: list[Rect]) -> float:
    return sum(_overlap(place, other) for other in taken)


def _free_place(places: list[Rect], taken: list[Rect]) -> Rect | None:
    return next((place for place in places if not _covered(place, taken)), None)


@dataclass(frozen=True)
class Tag:
    """Where one box's tag goes: `rect` (x1, y1, x2, y2) in picture pixels; the number's cell is its first
    `number_width` pixels."""

    rect: Rect
    number: str
    number_width: float
    text: str
    size: int


def _line_width(size: tuple[int, int]) -> int:
    return max(2, max(size) // 250)


# Font scales tried, in turn, for a picture whose tags do not all fit without covering each other (a crowd, a
# large picture whose tags are sized from the picture): all tags a little smaller, before any loses its text.
SHRINK = (1.0, 0.8, 0.65)


def layout_tags(size: tuple[int, int], boxes: Sequence[Box], numbered: bool = True,
                min_font: int = 0) -> list[Tag | None]:
    """The tag of each box in a picture of `size` (width, height), in order: its number (its place in
    `boxes`, from 1) and text, at the first of `_places` that covers no tag placed before it.

    Tags never cover each other where there is any room: when some would, every tag is made smaller (SHRINK);
    when even the smallest would, a tag with no free place keeps only its number (the row of the app's table of
    faces, which gives its text), placed more freely along its box; largest faces' tags (first in `boxes`) keep
    their text first. Only where not even a number fits does it go where it covers least. None for a box with
    neither number nor text. No tag's text is smaller than `min_font` pixels (see MIN_SHOWN_FONT)."""
    for scale in SHRINK:
        tags = _layout(size, boxes, numbered, scale, short=False, min_font=min_font)
        if tags is not None:
            return tags
    return _layout(size, boxes, numbered, SHRINK[-1], short=True, min_font=min_font)


def _layout(size: tuple[int, int], boxes: Sequence[Box], numbered: bool, scale: float,
            short: bool, min_font: int = 0) -> list[Tag | None] | None:
    """`layout_tags` at one font scale. Without `short`: None as soon as a tag has no free place. With it, every
    number is placed first (sliding along its box), then each tag, in order, gets its text back where the whole
    tag has a free place."""
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    pad = _line_width(size) + 2
    taken: list[Rect] = []
    tags: list[Tag | None] = []
    for number, item in enumerate(boxes, start=1):
        x1, y1, x2, y2 = box = tuple(float(v) for v in item.box)
        label = f"{number}" if numbered else ""
        if not (item.text or label):
            tags.append(None)
            continue
        # Text sized from the face, not the picture: in a group photo neighbours' labels stay apart; but never
        # under MIN_FONT_SHARE of the picture, which the page shows shrunk to fit (small faces' tags were 6 px).
        font_size = max(12, min_font, int(scale * max(int(max(size) * MIN_FONT_SHARE),
                                                      min(48, max(size) // 26, int((x2 - x1) * FONT_PER_FACE_WIDTH)))))
        font = _font(font_size)
        line = measure.textbbox((0, 0), "0Ag", font=font)
        tag_h = line[3] - line[1] + 2 * pad
        number_w = (measure.textbbox((0, 0), label, font=font)[2] + 2 * pad) if label else 0
        text_w = (measure.textbbox((0, 0), item.text, font=font)[2] + 2 * pad) if item.text else 0
        if short and label:  # the number alone for now
            places = _places(size, box, (number_w, tag_h), slide=True)
        else:
            places = _places(size, box, (number_w + text_w, tag_h))
        rect = _free_place(places, taken)
        if rect is None and not short:
            return None
        rect = rect or min(places, key=lambda place: _covered(place, taken))  # the first of the least covering
        taken.append(rect)
        tags.append(Tag(rect, label, number_w, "" if short and label else item.text, font_size))
    if short:  # each tag, in order, gets its text back where the whole tag has a free place
        for k, (item, tag) in enumerate(zip(boxes, tags)):
            if tag is None or tag.text or not item.text:
                continue
            whole = (tag.number_width + measure.textbbox((0, 0), item.text, font=_font(tag.size))[2] + 2 * pad,
                     tag.rect[3] - tag.rect[1])
            others = [t.rect for t in tags if t is not None and t is not tag]
            rect = _free_place(_places(size, tuple(float(v) for v in item.box), whole), others)
            if rect is not None:
                tags[k] = replace(tag, rect=rect, text=item.text)
    return tags


# A result picture whose shorter side is below this is drawn enlarged, by a whole factor: on a 36-px face crop
# the tag read "1 ma", cut by the picture's edge.
MIN_SHOWN_SIDE = 160


def shown_scale(shape: Sequence[int]) -> int:
    """The whole factor `draw_boxes` enlarges a picture of this (height, width, ...) shape by: 1 unless its
    shorter side is under MIN_SHOWN_SIDE. Boxes to match against clicks on the result are multiplied by it."""
    shorter = max(1, min(shape[0], shape[1]))
    return -(-MIN_SHOWN_SIDE // shorter) if shorter < MIN_SHOWN_SIDE else 1


def draw_boxes(image: np.ndarray, boxes: Iterable[Box], numbered: bool = True,
               shown_in: tuple[float, float] | None = None) -> np.ndarray:
    """A copy of `image` (RGB uint8; enlarged by `shown_scale` when small) with each box outlined and a filled
    tag beside it: the box's number (its place in `boxes`, from 1: the row of the app's table of faces) on
    white, then its text, placed by `layout_tags` (above the box, else inside its top edge, else under it;
    never over an earlier tag where there is room). `shown_in`: the box the page fits the picture into, when
    known (`min_font_to_show`); tag text is then at least MIN_SHOWN_FONT tall there. Text is drawn as pixels:
    names can never be interpreted as markup."""
    picture = Image.fromarray(np.ascontiguousarray(image)).convert("RGB")
    scale = shown_scale(image.shape)
    items = list(boxes)
    if scale > 1:
        picture = picture.resize((picture.width * scale, picture.height * scale), Image.BICUBIC)
        items = [replace(item, box=[float(v) * scale for v in item.box]) for item in items]
    draw = ImageDraw.Draw(picture)
    width = _line_width(picture.size)
    pad = width + 2
    min_font = min_font_to_show(picture.size, shown_in) if shown_in else 0
    for item in items:  # every outline first: a tag is never crossed by a neighbour's outline
        draw.rectangle(tuple(float(v) for v in item.box), outline=item.colour, width=width)
    for item, tag in zip(items, layout_tags(picture.size, items, numbered, min_font)):
        if tag is None:
            continue
        font = _font(tag.size)
        top = draw.textbbox((0, 0), "0Ag", font=font)[1]
        x, y, right, bottom = tag.rect
        if tag.number:
            draw.rectangle((x, y, x + tag.number_width, bottom), fill=WHITE, outline=item.colour, width=max(1, width // 2))
            draw.text((x + pad, y + pad - top), tag.number, fill=item.colour, font=font)
        if tag.text:
            draw.rectangle((x + tag.number_width, y, right, bottom), fill=item.colour)
            draw.text((x + tag.number_width + pad, y + pad - top), tag.text, fill=WHITE, font=font)
    return np.asarray(picture)


def side_by_side(first: np.ndarray, second: np.ndarray, gap: int = 8) -> np.ndarray:
    """Two crops of equal height next to each other on a white background (verify's aligned faces)."""
    height = max(first.shape[0], second.shape[0])
    out = np.full((height, first.shape[1] + gap + second.shape[1], 3), 255, dtype=np.uint8)
    out[: first.shape[0], : first.shape[1]] = first
    out[: second.shape[0], first.shape[1] + gap :] = second
    return out


SCALE_RANGE = (-0.25, 1.0)  # different people score around 0, sometimes below it


def similarity_scale(similarity: float, thresholds: dict[str, float], chosen: str, width: int = 400) -> np.ndarray:
    """A similarity ruler from SCALE_RANGE's low end to 1 (a lower similarity sits at the left end): a
    tick per operating point (the chosen one bold, labels on alternate rows so close ones stay legible),
    and a marker at `similarity`, green when it reaches the chosen threshold, red when it does not. Narrow
    and in 16 px type: a phone shows it at about 300 px wide, where a 520 px ruler's 13 px labels were 5 px tall."""
    height, left, right = 112, 22, width - 22
    low, high = SCALE_RANGE
    picture = Image.new("RGB", (width, height), WHITE)
    draw = ImageDraw.Draw(picture)
    font = _font(16)
    x_of = lambda value: left + (right - left) * (min(max(float(value), low), high) - low) / (high - low)  # noqa: E731
    draw.rectangle((left, 40, right, 48), fill=(225, 225, 225))
    for value in (0.0, 0.5, 1.0):  # not where a threshold's line would run through the number ("0.5|")
        if all(abs(x_of(value) - x_of(limit)) > 18 for limit in thresholds.values()):
            draw.text((x_of(value), 52), f"{value:.1f}", fill=GREY, font=font, anchor="ma")
    ticks = [(row, name, value, (30, 30, 30) if name == chosen else GREY)
             for row, (name, value) in enumerate(sorted(thresholds.items(), key=lambda item: item[1]))]
    for row, name, value, shade in ticks:
        draw.line((x_of(value), 34, x_of(value), 70 + 19 * (row % 2)), fill=shade, width=3 if name == chosen else 1)
    for row, name, value, shade in ticks:  # over the lines: a close threshold's line runs down past this label
        at, text = (x_of(value), 72 + 19 * (row % 2)), f"{name} {similarity_text(value)}"
        draw.rectangle(draw.textbbox(at, text, font=font, anchor="ma"), fill=WHITE)
        draw.text(at, text, fill=shade, font=font, anchor="ma")
    same = similarity >= thresholds.get(chosen, 1.0)
    x = x_of(similarity)
    draw.polygon([(x - 8, 18), (x + 8, 18), (x, 34)], fill=GREEN if same else RED)
    draw.text((min(max(x, left + 22), right - 22), 0), similarity_text(similarity), fill=GREEN if same else RED, font=font,
              anchor="ma")
    return np.asarray(picture)
