"""Why?: the explanations of pipeline/explain.py on real faces (the astronaut examples, mask and FER2013
test faces, LFW people), the real MTCNN and the real weights. Asserted: what a map, a chart or a timeline
must hold for a visitor to trust it."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.app_server import EXAMPLES
from pipeline import explain
from pipeline.heads import FER_CROP, MASK_CROP, embed_in_aligned_crop
from pipeline.identity import identify_faces

pytestmark = pytest.mark.shared_data  # the heads' and the embedder's weights lie in ../shared


@pytest.fixture(scope="module")
def astronaut(lab):
    return lab.analyze(str(EXAMPLES / "astronaut.jpg"), embed=True).faces[0]


@pytest.mark.parametrize("which", ["mask_head", "emotion_head"])
def test_head_maps_have_the_crops_shape_and_name_the_class_and_runner_up(lab, astronaut, which) -> None:
    head = getattr(lab, which)
    crop = astronaut.crop_for_heads[None]  # what the heads read (landmark-aligned)
    (saliency,) = explain.explain_head(head, crop)
    assert saliency.map.shape == crop.shape[1:3] and saliency.map.dtype == np.float32
    total = float(saliency.map.sum())
    assert np.isfinite(total) and total > 0 and saliency.map.min() >= 0
    assert not saliency.map[~explain.view_mask(head)].any()  # nothing outside what the head sees
    top = explain.verdict_probabilities(head, head.predict_proba(crop))[0]  # the mask head: given a face
    assert saliency.explained == head.labels[int(top.argmax())] and saliency.runner_up != saliency.explained
    assert saliency.probability == pytest.approx(float(top.max()), abs=1e-4)
    expected = {"mask_head": "no_mask", "emotion_head": "happy"}[which]
    assert saliency.explained == expected


def test_verify_maps_have_the_crops_shape_and_the_product_sums_to_the_similarity(lab, astronaut) -> None:
    mirror = lab.analyze(str(EXAMPLES / "astronaut_mirror.jpg"), embed=True).faces[0]
    maps = explain.verify_maps(lab.embedder.embed_covered, astronaut.crop, mirror.crop)
    for heat in (maps.map_a, maps.map_b):
        assert heat.shape == (160, 160) and np.isfinite(heat.sum()) and np.maximum(heat, 0).sum() > 0
    assert maps.similarity == pytest.approx(float(astronaut.embedding @ mirror.embedding), abs=1e-4)
    assert float((maps.embedding_a * maps.embedding_b).sum()) == pytest.approx(maps.similarity, abs=1e-5)
    picture = explain.verify_panel(astronaut.crop, mirror.crop, maps)
    assert picture.ndim == 3 and picture.shape[1] > 4 * 160


def _deletion(head, crops: np.ndarray, share: float) -> tuple[float, float]:
    """Mean drop of the explained class's probability: salient pixels blurred vs as many random ones."""
    saliencies = explain.explain_head(head, crops)
    inside = explain.view_mask(head)
    rng = np.random.default_rng(0)
    salient, random = [], []
    for crop, saliency in zip(crops, saliencies):
        salient.append(explain.blur_pixels(crop, explain.top_pixels(saliency.map, share, inside)))
        random.append(explain.blur_pixels(crop, explain.top_pixels(saliency.map, share, inside, rng)))
    target = [head.labels.index(s.explained) for s in saliencies]
    rows = np.arange(len(crops))
    proba = lambda c: explain.verdict_probabilities(head, head.predict_proba(c))[rows, target]  # noqa: E731
    base = proba(crops)
    return float((base - proba(np.stack(salient))).mean()), float((base - proba(np.stack(random))).mean())


def test_blurring_the_salient_pixels_lowers_the_explained_class_more_than_random_ones(lab) -> None:
    """The deletion test on a handful of faces per head: 12 mask test faces (6 of each class), 12 FER test faces."""
    from training.datasets import load_fer, load_mask

    masks = load_mask("test", 72)
    picked = np.r_[np.flatnonzero(masks.labels == 0)[:60:10], np.flatnonzero(masks.labels == 1)[:60:10]]
    mask_crops = np.stack([embed_in_aligned_crop(masks.images[i], MASK_CROP) for i in picked])
    fer = load_fer("test")
    fer_crops = np.stack([embed_in_aligned_crop(fer.images[i], FER_CROP) for i in range(0, 7000, 600)])
    for head, crops in ((lab.mask_head, mask_crops), (lab.emotion_head, fer_crops)):
        salient, random = _deletion(head, crops, 0.2)
        assert salient > random and salient > 0, (type(head).__name__, salient, random)


@pytest.mark.slow
def test_covering_the_salient_parts_of_a_matched_pair_lowers_the_similarity_more_than_random_ones(lab) -> None:
    from shared_data import lfw_pairs

    pairs = [p for p in lfw_pairs() if p.same][:3]
    rng = np.random.default_rng(0)
    everywhere = np.ones((160, 160), bool)
    salient, random = [], []
    for pair in pairs:
        a, b = (lab.analyze(str(path), embed=True, max_faces=1).faces[0] for path in (pair.first, pair.second))
        maps = explain.verify_maps(lab.embedder.embed_covered, a.crop, b.crop)
        cut = [explain.blur_pixels(c, explain.top_pixels(m, 0.2, everywhere)) for c, m in
               ((a.crop, maps.map_a), (b.crop, maps.map_b))]
        noise = [explain.blur_pixels(c, explain.top_pixels(m, 0.2, everywhere, rng)) for c, m in
                 ((a.crop, maps.map_a), (b.crop, maps.map_b))]
        for store, crops in ((salient, cut), (random, noise)):
            va, vb = lab.embedder.embed(np.stack(crops))
            store.append(maps.similarity - float(va @ vb))
    assert np.mean(salient) > np.mean(random) > -0.05


def test_the_similarity_chart_lists_every_enrolled_person_best_first_with_the_thresholds(lab) -> None:
    from pipeline.gallery import InMemoryGallery
    from shared_data import distinct_people

    gallery = InMemoryGallery()
    people = distinct_people(4)
    for name, first, _ in people:
        face = lab.analyze(str(first), embed=True, max_faces=1).faces[0]
        gallery.add(name, face.embedding, None, backbone=lab.embedder.backbone)
    name, _, second = people[2]
    probe = lab.analyze(str(second), embed=True, max_faces=1).faces
    (chart,) = explain.similarity_charts(identify_faces(lab, gallery, probe, "balanced", k=explain.CHART_PEOPLE))
    names = [n for n, _ in chart.people]
    similarities = [s for _, s in chart.people]
    assert sorted(names) == sorted(n for n, _, _ in people)  # every enrolled person, once
    assert similarities == sorted(similarities, reverse=True) and names[0] == name
    assert chart.possible < chart.named and chart.decision == name and similarities[0] >= chart.named
    assert all(s < chart.possible for s in similarities[1:])  # the others are visibly below "possible match"
    picture = explain.similarity_chart_picture(chart, 1)
    assert picture.ndim == 3 and picture.shape[0] > 4 * 20


def test_a_thumbnail_sized_pictures_map_is_enlarged_and_its_legend_readable(lab) -> None:
    """A 36x36 masked face from the mask set (browser pass): its Why? overview was drawn 36 px wide, and the colour
    bar's "more evidence" and "less" were printed over each other. Now the map is enlarged in whole pixels and the
    legend keeps room for both words."""
    from shared_data import DATA_DIR

    analysis = lab.analyze(str(DATA_DIR / "mask" / "test" / "with_mask" / "1163.jpg"), mask=True)
    assert analysis.image.shape[:2] == (36, 36) and analysis.faces
    (saliency,) = explain.explain_head(lab.mask_head, analysis.faces[0].crop_for_heads[None])
    overview = explain.maps_on_picture(analysis.image, [analysis.faces[0].landmarks], [explain.normalised(saliency.map)],
                                       [saliency.view])
    assert overview.shape[0] >= explain.MIN_OVERVIEW_SIDE and overview.shape[1] >= explain.MIN_OVERVIEW_SIDE + 150
    blocks = overview[:36 * 7, :36 * 7].reshape(36, 7, 36, 7, 3)  # 7x: 252 px, each pixel a 7x7 block (no blur)
    assert (blocks == blocks[:, :1, :, :1]).all()
    bar = overview[:, -150:]  # the legend: ink (dark text) near its top and near its foot, apart
    inked_rows = np.flatnonzero((bar[:, 26:] < 100).all(axis=2).any(axis=1))
    assert inked_rows.min() < 30 and inked_rows.max() > explain.LEGEND_MIN_HEIGHT - 30


def test_the_similarity_bars_start_at_zero() -> None:
    """A bar's length is its similarity: drawn from the scale's left end (-0.2), 0.01 looked a third as long as
    0.42 and -0.16 looked like a short positive bar (browser pass). Now they start at 0 on a labelled axis."""
    chart = explain.SimilarityChart(people=[("Ada", 0.42), ("Grace", 0.01), ("Alan", -0.16)], named=0.45,
                                    possible=0.38, operating_point="balanced", decision="possible match: Ada?")
    picture = explain.similarity_chart_picture(chart, 1).astype(int)
    runs = []
    for row, colour in zip((34 + 10, 34 + 26 + 10, 34 + 52 + 10), (explain.OI_ORANGE, explain.GREY, explain.GREY)):
        columns = np.flatnonzero((np.abs(picture[row] - colour) < 8).all(axis=1))
        pieces = np.split(columns, np.flatnonzero(np.diff(columns) > 1) + 1)  # the bar: the longest unbroken run
        bar = max(pieces, key=len)
        runs.append((bar.min(), bar.max()))
    (ada_start, ada_end), (grace_start, grace_end), (alan_start, alan_end) = runs
    per_unit = (ada_end - ada_start) / 0.42
    assert abs(ada_start - grace_start) <= 1 and abs(alan_end - ada_start) <= 1  # one zero; Alan's bar ends there
    assert grace_end - grace_start <= 0.02 * per_unit + 2  # 0.01: a sliver, not a third of Ada's
    assert abs((alan_end - alan_start) / per_unit - 0.16) < 0.02  # to the left of zero, as long as 0.16


def test_the_timeline_keeps_the_last_30_seconds_in_long_format() -> None:
    timeline = explain.EmotionTimeline()
    probabilities = {"happy": 0.7, "neutral": 0.3}
    for t in range(0, 41):
        timeline.add(probabilities, now=float(t))
    rows = timeline.rows(now=40.0)
    assert len(rows) == 2 * 31 and rows[0] == (-30.0, "happy", 0.7) and rows[-1] == (0.0, "neutral", 0.3)


def test_viridis_runs_dark_to_light_and_the_legend_is_drawn() -> None:
    shades = explain.viridis(np.linspace(0, 1, 5)).astype(int).sum(1)
    assert list(shades) == sorted(shades)  # brighter with the value: readable in grey and with colour-blindness
    assert explain.legend(160).shape == (160, 150, 3)


def test_names_never_enter_the_process_wide_text_cache() -> None:
    """A chart caches single glyphs for speed, never a whole label: a visitor's names must die with the session."""
    def chart(names):
        return explain.SimilarityChart(people=[(n, 0.8 - 0.1 * i) for i, n in enumerate(names)], named=0.5,
                                       possible=0.4, operating_point="balanced", decision=names[0])

    explain.similarity_chart_picture(chart(["Ada Lovelace", "Alan Turing"]), 1)
    cached = explain._glyph.cache_info().currsize
    explain.similarity_chart_picture(chart(["Alan Lovelace", "Ada Turing"]), 1)  # new names, no new letter
    assert explain._glyph.cache_info().currsize == cached
