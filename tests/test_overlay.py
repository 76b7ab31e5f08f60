"""What the result pictures show."""

from __future__ import annotations

import numpy as np

from pipeline import overlay

THRESHOLDS = {"balanced": 0.34, "strict": 0.44}


def marker_column(scale: np.ndarray) -> float:
    """Mean column of the marker (the red or green triangle under the value)."""
    band = scale[20:32].astype(int)
    coloured = (np.abs(band - overlay.RED).sum(axis=2) < 60) | (np.abs(band - overlay.GREEN).sum(axis=2) < 60)
    return float(np.nonzero(coloured)[1].mean())


def test_the_similarity_scale_places_negative_scores_below_zero() -> None:
    """Different people often score below 0: the marker must not sit on 0 as if they scored 0."""
    at_zero = marker_column(overlay.similarity_scale(0.0, THRESHOLDS, "balanced"))
    below = marker_column(overlay.similarity_scale(-0.15, THRESHOLDS, "balanced"))
    above = marker_column(overlay.similarity_scale(0.76, THRESHOLDS, "balanced"))
    width = overlay.similarity_scale(0.0, THRESHOLDS, "balanced").shape[1]
    assert below < at_zero - 20 and above - at_zero > 0.45 * width  # 0.76 of the range's 1.25, drawn apart


# ------------------------------------------------------------------------------------------------
# Honest confidence (issue 16): never "100 %", unsure verdicts as questions, masked mouths said

def test_no_label_ever_reads_100_percent() -> None:
    # The heads' softmax reaches exactly 1.0 in float32 on easy pictures.
    assert overlay.mask_text("mask", 1.0)[0] == "mask 99 %"
    assert overlay.mask_text("no_mask", 0.9999)[0] == "no mask 99 %"
    assert overlay.emotion_text("happy", 1.0)[0] == "happy 99 %"
    assert overlay.percent(0.985) == "98 %" and overlay.percent(0.42) == "42 %"


def test_emotion_bars_are_capped_and_still_sum_to_one() -> None:
    bars = overlay.capped_all({"happy": 1.0, "neutral": 0.0, "sad": 0.0})
    assert bars["happy"] == overlay.SHOWN_MAX and abs(sum(bars.values()) - 1) < 1e-9
    bars = overlay.capped_all({"happy": 0.996, "neutral": 0.003, "sad": 0.001})
    assert bars["happy"] == overlay.SHOWN_MAX and abs(bars["neutral"] - 3 * bars["sad"]) < 1e-9  # order kept
    assert overlay.capped_all({"happy": 0.6, "sad": 0.4}) == {"happy": 0.6, "sad": 0.4}


def test_an_unsure_verdict_is_a_question() -> None:
    assert overlay.emotion_text("neutral", 0.38) == ("neutral? 38 %", overlay.BLUE)
    assert overlay.emotion_text("neutral", 0.72) == ("neutral 72 %", overlay.BLUE)
    # Mask: firm verdicts keep their colour, an unsure one is amber whichever way it leans.
    assert overlay.mask_text("mask", 0.93) == ("mask 93 %", overlay.GREEN)
    assert overlay.mask_text("no_mask", 0.93) == ("no mask 93 %", overlay.RED)
    assert overlay.mask_text("mask", 0.62) == ("mask? 62 %", overlay.AMBER)
    assert overlay.mask_text("no_mask", 0.55) == ("no mask? 55 %", overlay.AMBER)


def test_an_emotion_on_a_masked_face_says_the_mouth_is_covered() -> None:
    assert overlay.emotion_text("happy", 0.82, mouth_covered=True)[0] == "happy? 82 % (mouth covered)"
    assert overlay.emotion_word("happy", 0.82, mouth_covered=True) == "happy? (mouth covered)"
    assert overlay.emotion_word("happy", 0.82) == "happy"


def test_a_face_taken_whole_says_so() -> None:
    assert overlay.mask_text("mask", 0.97, whole_picture=True) == ("mask 97 % (whole picture judged)", overlay.GREEN)


# ------------------------------------------------------------------------------------------------
# Faces matched to table rows (issue 17, item 5): a number on every box, tags that do not cover each other

def crowd() -> list[overlay.Box]:
    """Six faces in two touching rows, as on a group photo, with labels wider than the faces."""
    return [overlay.Box((60 + 70 * (i % 3) + 20 * (i // 3), 50 + 64 * (i // 3), 120 + 70 * (i % 3) + 20 * (i // 3),
                         110 + 64 * (i // 3)), f"no mask {90 + i} %", overlay.RED) for i in range(6)]


def test_every_box_carries_its_number_in_its_tag() -> None:
    boxes = crowd()
    tags = overlay.layout_tags((400, 300), boxes)
    assert [t.number for t in tags] == ["1", "2", "3", "4", "5", "6"]  # the rows of the table of faces
    picture = overlay.draw_boxes(np.full((300, 400, 3), 90, np.uint8), boxes)
    for tag in tags:  # each number is drawn: a white cell with the box's colour inside it
        x1, y1, x2, y2 = (int(round(v)) for v in tag.rect)
        cell = picture[y1 + 3:y2 - 2, x1 + 3:x1 + int(tag.number_width) - 2].astype(int)
        white = np.all(cell > 245, axis=2).mean()
        red = (np.abs(cell - overlay.RED).sum(axis=2) < 120).sum()
        assert white > 0.4 and red > 5, (tag, white, red)
    assert overlay.layout_tags((400, 300), boxes, numbered=False)[0].number == ""


def test_neighbouring_tags_do_not_cover_each_other() -> None:
    tags = [t.rect for t in overlay.layout_tags((400, 300), crowd())]
    for i, a in enumerate(tags):
        assert 0 <= a[0] and a[2] <= 400 and 0 <= a[1] and a[3] <= 300  # inside the picture
        for b in tags[i + 1:]:
            assert min(a[2], b[2]) <= max(a[0], b[0]) or min(a[3], b[3]) <= max(a[1], b[1]), (a, b)


def test_a_tag_stays_beside_its_own_box() -> None:
    boxes = crowd()
    for box, tag in zip(boxes, overlay.layout_tags((400, 300), boxes)):
        x1, y1, x2, y2 = box.box
        assert tag.rect[0] <= x2 and tag.rect[2] >= x1  # overlaps the box's columns
        assert y1 - (tag.rect[3] - tag.rect[1]) - 1 <= tag.rect[1] <= y2 + 1  # above, inside the top or just under


def test_a_small_picture_is_drawn_enlarged_so_its_whole_tag_fits() -> None:
    # A 36-px face crop (the mask test set has such) filled by its face: the tag read "1 ma", cut by the edge.
    box = overlay.Box((2, 3, 34, 35), "mask 99 %", overlay.GREEN)
    scale = overlay.shown_scale((36, 36, 3))
    assert scale > 1 and overlay.shown_scale((300, 400, 3)) == 1
    picture = overlay.draw_boxes(np.full((36, 36, 3), 120, np.uint8), [box])
    assert picture.shape == (36 * scale, 36 * scale, 3) and 36 * scale >= overlay.MIN_SHOWN_SIDE
    tag, = overlay.layout_tags(picture.shape[1::-1], [overlay.Box([v * scale for v in box.box], box.text)])
    x1, y1, x2, y2 = tag.rect
    assert tag.text == "mask 99 %" and 0 <= x1 and x2 <= picture.shape[1] and 0 <= y1 and y2 <= picture.shape[0]
    # and the tag is drawn there: its green fill covers much of its rectangle
    fill = picture[int(y1) + 2:int(y2) - 1, int(x1 + tag.number_width) + 2:int(x2) - 1].astype(int)
    assert (np.abs(fill - overlay.GREEN).sum(axis=2) < 60).mean() > 0.5


def test_tags_on_a_large_group_picture_stay_legible_when_the_page_shrinks_it() -> None:
    # A group photo's faces are small against the picture, and the page shows the picture shrunk to its result
    # box (about 560 px wide for identify on a laptop): the tags, sized from the faces, were 6-7 px tall there.
    faces = [(859, 439, 952, 558), (425, 134, 505, 242), (553, 48, 629, 152), (228, 251, 304, 354),
             (623, 197, 695, 297), (728, 471, 798, 574)]  # the 1200x630 group photo's faces, 70-93 px wide
    for factor in (1, 4):  # and the same picture at 4800x2520
        size = (1200 * factor, 630 * factor)
        boxes = [overlay.Box([v * factor for v in face], f"unknown (0.{i}2)", overlay.GREY) for i, face in enumerate(faces)]
        shown = 560 / size[0]
        heights = [(tag.rect[3] - tag.rect[1]) * shown for tag in overlay.layout_tags(size, boxes)]
        assert min(heights) >= 14, (size, heights)
    # a small picture's tags keep the size their faces give them (the floor is a share of the picture)
    assert {tag.size for tag in overlay.layout_tags((400, 300), crowd())} == {int(60 * overlay.FONT_PER_FACE_WIDTH)}


def tiled_group(copies: int) -> np.ndarray:
    """The real group photo tiled `copies` x `copies` and resized to 4800 px wide: many small faces under tags sized
    from the picture (1/40 of 4800 px: 120 px text), as a large crowd photo has."""
    from PIL import Image

    from shared_data import MISC_DIR

    group = Image.open(MISC_DIR / "multiple_faces_group_photo.jpg").convert("RGB")
    tiled = Image.new("RGB", (group.width * copies, group.height * copies))
    for i in range(copies * copies):
        tiled.paste(group, (group.width * (i % copies), group.height * (i // copies)))
    return np.asarray(tiled.resize((4800, 4800 * tiled.height // tiled.width), Image.BICUBIC))


def test_tags_on_a_large_crowded_picture_never_cover_each_other(lab) -> None:
    # Before: the 2x2 picture's 24 faces with identify's longest labels had 18 pairs of tags over each other, the
    # 3x3 one's 40 faces 21 pairs with mask labels alone. Now tags shrink, then crowded ones keep only their number.
    for copies in (2, 3):
        picture = tiled_group(copies)
        faces = lab.analyze(picture).faces
        assert len(faces) >= 20, len(faces)
        for texts in ([overlay.mask_text("no_mask", 0.99)[0]] * len(faces),
                      [f"possible match: Maria Magdalena ({0.40 + i / 100:.2f})" for i in range(len(faces))]):
            boxes = [overlay.Box(f.box, text, overlay.AMBER) for f, text in zip(faces, texts)]
            tags = overlay.layout_tags(picture.shape[1::-1], boxes)
            assert [t.number for t in tags] == [str(i + 1) for i in range(len(faces))]  # every face keeps its number
            for i, (box, a) in enumerate(zip(boxes, tags)):
                x1, y1, x2, y2 = box.box
                assert 0 <= a.rect[0] and a.rect[2] <= picture.shape[1] and 0 <= a.rect[1] and a.rect[3] <= picture.shape[0]
                assert a.rect[0] <= x2 and a.rect[2] >= x1 and y1 - (a.rect[3] - a.rect[1]) - 1 <= a.rect[1] <= y2 + 1, (a, box)
                for b in tags[i + 1:]:
                    assert overlay._overlap(a.rect, b.rect) == 0, (copies, texts[0], a, b)
            assert sum(bool(t.text) for t in tags) >= len(tags) // 3  # most with their text still
            assert min(t.size for t in tags) >= 4800 * overlay.MIN_FONT_SHARE * overlay.SHRINK[-1] - 1
    # and the picture as drawn: the same tags, each number on white in its cell
    drawn = overlay.draw_boxes(picture, boxes)
    for tag in tags:
        x1, y1 = (int(v) for v in tag.rect[:2])
        cell = drawn[y1 + 8:int(tag.rect[3]) - 8, x1 + 8:x1 + int(tag.number_width) - 8].astype(int)
        assert np.all(cell > 200, axis=2).mean() > 0.4, tag


def test_tags_are_legible_in_the_box_the_page_shows_the_picture_in(lab) -> None:
    """The group photo (1200 px wide) shown 358 px wide on a phone: its tags, drawn for no box, were 5 px tall
    there; a webcam frame (640x480) in a laptop's 643 x 307 box: 8 px. Drawn for the box, every tag's text is at
    least MIN_SHOWN_FONT px as shown; tags that do not fit at that size keep their number (the table gives the
    rest), and none covers another."""
    import math

    from PIL import Image

    from shared_data import MISC_DIR

    group = np.asarray(Image.open(MISC_DIR / "multiple_faces_group_photo.jpg").convert("RGB"))
    frame = np.asarray(Image.fromarray(group[:, 150:990]).resize((640, 480)))
    for picture, box in ((group, (358, math.inf)), (frame, (643, 307))):
        faces = lab.analyze(picture).faces
        boxes = [overlay.Box(f.box, overlay.emotion_text("neutral", 0.71)[0]) for f in faces]
        size = picture.shape[1::-1]
        shown = min(box[0] / size[0], box[1] / size[1])
        assert min(t.size for t in overlay.layout_tags(size, boxes)) * shown < overlay.MIN_SHOWN_FONT  # the defect
        tags = overlay.layout_tags(size, boxes, min_font=overlay.min_font_to_show(size, box))
        assert len(faces) >= 4 and [t.number for t in tags] == [str(i + 1) for i in range(len(faces))]
        assert min(t.size for t in tags) * shown >= overlay.MIN_SHOWN_FONT, (box, [t.size for t in tags])
        for i, a in enumerate(tags):
            assert all(overlay._overlap(a.rect, b.rect) == 0 for b in tags[i + 1:]), (a, tags)
        assert tags[0].text  # the largest face keeps its words
        assert not np.array_equal(overlay.draw_boxes(picture, boxes, shown_in=box), overlay.draw_boxes(picture, boxes))
