"""README tables of the identity benchmarks (registered in benchmarks/readme_tables.py's RENDERERS).

lfw.json, identification.json, identity_domains.json, gallery_search.json, quality_thresholds.json and the
manifest's thresholds.
"""

from __future__ import annotations

import json

from pipeline.weights import MANIFEST_PATH
from benchmarks.tables import from_results


def _provisional(data: dict) -> list[str]:
    return ["", f"**Provisional:** {data['provisional']}"] if data.get("provisional") else []


@from_results("lfw")
def lfw_table(data: dict) -> str:
    rows = ["| backbone | precision | alignment | accuracy (10-fold) | TAR @ FAR 1e-3 | ROC AUC | pairs without a face |",
            "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in data["results"]:
        best = " (best here)" if r["alignment"] == data["best_alignment"] else ""
        rows.append(f"| {r['backbone']} | {r.get('precision', 'float32')} | {r['alignment']}{best} "
                    f"| {r['accuracy_mean']:.4f} ± {r['accuracy_std']:.4f} "
                    f"| {r['tar_at_far_1e-3']:.4f} | {r['roc_auc']:.5f} | {r['pairs_with_a_face_missing']} |")
    anchors = ", ".join(f"{key.replace('_', ' ')} {value:.4f}" for key, value in data["anchors"].items())
    rows += ["", f"{data['protocol']} Anchors: {anchors}. ROC curves: `{data['roc_plot']}`."]
    for alignment, change in (data.get("int8_vs_float32") or {}).items():
        rows += ["", f"int8 vs float32, {alignment} alignment: a pair's similarity moves by {change['similarity_change_mean']:.4f} "
                     f"on average (99th percentile {change['similarity_change_p99']:.4f}, at most "
                     f"{change['similarity_change_max']:.4f}); {change['decisions_changed_at_balanced_threshold']} of "
                     f"{data['results'][0]['pairs']} decisions change at the balanced threshold."]
    return "\n".join(rows + _provisional(data))


@from_results("lfw_crop_ablation")
def lfw_ablation_table(data: dict) -> str:
    rows = ["| variant (casia-webface, box crops) | accuracy (10-fold) |", "| --- | --- |"]
    rows += [f"| {v['variant']} | {v['accuracy_mean']:.4f} ± {v['accuracy_std']:.4f} |" for v in data["variants"]]
    return "\n".join(rows + ["", f"{data['protocol']}; detections: {data['detections']}."])


def thresholds_table() -> str:
    models = json.loads(MANIFEST_PATH.read_text(encoding="utf-8"))["models"]
    rows = ["| backbone | balanced | strict | how they were set |", "| --- | --- | --- | --- |"]
    for backbone, name in (("casia-webface", "facenet-casia-webface"), ("vggface2", "facenet-vggface2")):
        t = models.get(name, {}).get("thresholds")
        if not t:
            rows.append(f"| {backbone} | - | - | not calibrated yet: `python -m training.calibrate_thresholds` |")
        elif t.get("calibrated"):
            b, s = t["balanced"], t["strict"]
            rows.append(
                f"| {backbone} | {b['threshold']} (accuracy {b['accuracy']:.4f} on all pairs, 10-fold "
                f"{b['accuracy_10fold_mean']:.4f}) | {s['threshold']} (FAR {s['far']:.4f}, TAR {s['tar']:.4f}) "
                f"| calibrated on {t['pairs_used']} LFW pairs, {t['alignment']} alignment, {t['date']}; "
                f"{t['dataset']} |")
        else:
            rows.append(f"| {backbone} | {t['balanced']['threshold']} | {t['strict']['threshold']} | "
                        f"**not calibrated** (weights unavailable here): {t['source']} |")
    return "\n".join(rows)


@from_results("identification")
def identification_table(data: dict) -> str:
    rows = ["| precision | alignment | people | probes | top-1 (closed set) | open-set DIR @ FAR 1e-3 | DIR / FAR at balanced | DIR / FAR at strict |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in data["results"]:
        at = r.get("open_set_at_calibrated_thresholds", {})
        cells = [f"{at[p]['dir']:.4f} / {at[p]['far']:.4f}" if p in at else "-" for p in ("balanced", "strict")]
        rows.append(f"| {r.get('precision', 'float32')} | {r['alignment']} | {r['people']} | {r['probes_closed_set']} | {r['top1_closed_set']:.4f} "
                    f"| {r['open_set_detection_identification_rate_at_far_1e-3']:.4f} | {cells[0]} | {cells[1]} |")
    rows += ["", data["protocol"]]
    return "\n".join(rows + _provisional(data))


@from_results("gallery_search")
def gallery_search_table(data: dict) -> str:
    first = data["results"][0]
    rows = [f"| embeddings | search ms (median, {first.get('torch_threads', 1)} thread) "
            f"| on {first.get('all_cores', '')} threads (FACELAB_THREADS=auto) | streaming read of the matrix ms | ratio "
            "| add one ms | delete one person ms | index MB |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in data["results"]:
        rows.append(f"| {r['embeddings']:,} | {r['search_ms_median']} | {r.get('search_ms_median_all_cores', '')} "
                    f"| {r['streaming_read_ms_median']} "
                    f"| {r['ratio_vs_streaming_read']} | {r['add_one_embedding_ms']} | {r['delete_one_person_ms']} "
                    f"| {r['index_memory_mb']} |")
    rows += ["", f"{data['machine']}; peak RSS {data['peak_rss_mb']} MB. Target: {data['target']}."]
    return "\n".join(rows)


@from_results("quality_thresholds")
def quality_table(data: dict) -> str:
    size = ", ".join(f"{px} px {v['median']}" for px, v in data["face_width_px"].items())
    blur = ", ".join(f"σ {sigma}: {v['laplacian_variance']['median']} / {v['similarity_to_sharp']['median']}"
                     for sigma, v in data["gaussian_blur_sigma"].items())
    rows = [f"- Face width → median similarity to the full-size embedding: {size}.",
            f"- Gaussian blur → median Laplacian variance / similarity to the sharp embedding: {blur}."]
    if data.get("head_turn"):
        buckets = ", ".join(f"|yaw| {k}: {v['accepted']:.3f} of {v['pairs']}"
                            for k, v in data["head_turn"]["matched_pairs_accepted_at_balanced_by_larger_abs_yaw"].items())
        rows.append(f"- Matched LFW pairs accepted at the balanced threshold, by the larger |yaw ratio| of the two: {buckets}.")
    return "\n".join(rows)


@from_results("identity_domains")
def identity_domains_table(data: dict) -> str:
    default = data["default_operating_point"]
    rows = ["| population | enrolled | operating point | right name | wrong name | stranger named | possible match | no face | threshold (mean) |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in data["identify"]:
        point = f"**{r['operating_point']}** (default)" if r["operating_point"] == default else r["operating_point"]
        rows.append(f"| {r['domain']} | {r['gallery_size']} | {point} | {r['right_name_rate']:.3f} | {r['wrong_name_rate']:.3f} "
                    f"| {r['stranger_named_rate']:.3f} | {r['possible_match_rate']:.3f} | {r['no_face_rate']:.3f} "
                    f"| {r['mean_threshold']:.3f} |")
    rows += ["", "| verify | operating point | threshold | accuracy | FAR | FRR | possible match (same / different) | pairs |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in data["verify"]:
        rows.append(f"| {r['domain']} | {r['operating_point']} | {r['threshold']:.3f} | {r['accuracy']:.4f} | {r['far']:.4f} "
                    f"| {r['frr']:.4f} | {r['possible_match_rate_same']:.3f} / {r['possible_match_rate_different']:.3f} "
                    f"| {r['pairs_same']} + {r['pairs_different']} |")
    before = data.get("before")
    if before:
        rows += ["", "Before (" + before["rule"] + "): "
                 + "; ".join(f"identify {r['domain']}, {r['gallery_size']} enrolled: stranger named {r['stranger_named_rate']:.3f}, "
                             f"wrong name {r['wrong_name_rate']:.3f}" for r in before["identify"])
                 + "; " + "; ".join(f"verify {r['domain']} {r['operating_point']}: accuracy {r['accuracy']:.4f}, FAR {r['far']:.4f}, "
                                    f"FRR {r['frr']:.4f}" for r in before["verify"]) + "."]
    found = data["faces_found_in_tight_crops"]
    rows += ["", "Faces found in tight crops, first detection pass alone → with the border retry: "
             + "; ".join(f"{name.replace('_', ' ')} ({f['pictures']} pictures) {f['found_without_retry']:.3f} → {f['found_with_retry']:.3f}"
                         for name, f in found.items()) + ".",
             "", data["protocol"], "", f"Calibration: {data['rule']['calibration']}. Chosen on rmfd_dev: {data['rule']['chosen_on_rmfd_dev']}"]
    return "\n".join(rows)


RENDERERS = {
    "identity_domains": identity_domains_table,
    "lfw": lfw_table,
    "thresholds": thresholds_table,
    "identification": identification_table,
    "gallery_search": gallery_search_table,
    "quality": quality_table,
    "lfw_ablation": lfw_ablation_table,
}
