"""Write the figure tables of README.md and docs/*.md from benchmarks/results/*.json, so they never drift.

Each table sits between `<!-- table:NAME -->` and `<!-- /table:NAME -->` in one of those files; NAME is a
renderer below. Run after any benchmark:  python -m benchmarks.readme_tables
"""

from __future__ import annotations

import re
from typing import Callable

from shared_data import REPO_ROOT
from benchmarks.tables import RESULTS, from_results, load, not_measured

README = REPO_ROOT / "README.md"
DOCUMENTS = (README, *sorted((REPO_ROOT / "docs").glob("*.md")))


@from_results("latency")
def latency_table(data: dict) -> str:
    rows = ["| picture | faces | pipeline ms | naive ms | speed-up |", "| --- | --- | --- | --- | --- |"]
    for name, case in data["cases"].items():
        rows.append(
            f"| {name} ({case['size']}) | {case['faces_found']} | {case['pipeline_ms']} | {case['naive_ms']} "
            f"| {case['ratio_vs_naive']}x |"
        )
    rows.append("")
    rows.append(
        f"Median of {data['runs']} warm runs each, alternating, {data['torch_threads']} torch thread(s), "
        f"{data['machine']}. Cold start (fresh interpreter to first embedding, weights on disk): "
        f"{data['cold_start_s']} s; peak RSS {data['peak_rss_mb']} MB."
    )
    return "\n".join(rows)


@from_results("speed")
def speed_table(data: dict) -> str:
    embedding = data["embedding"]
    peaks = {k: v for k, v in embedding.items() if k.startswith("matmul_peak")}
    rows = [
        "| measure | measured | target |",
        "| --- | --- | --- |",
        f"| 640x480 frame, one face, mask + emotion (warm median) | {data['mask_emotion_640_ms']} ms | <= 60 ms |",
        f"| identify on that frame: detect + embed + search a 1k gallery | {data['identify_640_ms']} ms | <= 100 ms |",
        *([f"| the same two with FACELAB_THREADS=auto ({data['all_cores']['threads']} threads for a call that runs alone; same rounds) | "
           f"{data['all_cores']['mask_emotion_640_ms']} ms / {data['all_cores']['identify_640_ms']} ms | |"]
          if "all_cores" in data else []),
        *([f"| naive facenet-pytorch detect + embed on that frame, same rounds (how fast the machine was) | "
           f"{data['naive_detect_embed_640_ms']} ms | |"] if "naive_detect_embed_640_ms" in data else []),
        f"| 1920x1080 frame vs naive facenet-pytorch | {data['ratio_1080_vs_naive']}x faster | >= 3x |",
        f"| live stream through the app's handler, mask | {data['stream_fps']} frames/s | >= 10 |",
        f"| live stream, emotion / identify | {data['stream_fps_emotion']} / {data['stream_fps_identify']} frames/s | |",
        f"| `python app.py` to the first answer (weights on disk; median of "
        f"{' / '.join(map(str, data.get('cold_start_samples_s', [data['cold_start_s']])))} s) | {data['cold_start_s']} s | <= 10 s |",
        f"| serving RSS after warm-up | {data['rss_mb']} MB | <= 1500 MB |",
        f"| embedder, {embedding.get('precision', 'float32')} ({embedding.get('threads', data['torch_threads'])} thread(s); "
        f"{embedding['gflops_per_face']} GFLOPs/face) | {embedding['ms_per_face']} ms/face = {embedding['achieved_gflops']} GFLOP/s"
        + (f"; float32, same rounds: {embedding['float32_ms_per_face']} ms/face = {embedding['float32_achieved_gflops']} GFLOP/s"
           if "float32_ms_per_face" in embedding else "")
        + " | float32 matmul peak here: "
        + ", ".join(f"{v} GFLOP/s ({k.split('_', 3)[-1].replace('_', ' ')})" for k, v in peaks.items())
        + " |",
    ]
    rows.append("")
    rows.append(f"FACELAB_THREADS={data['torch_threads']} (the default) unless a row says otherwise, "
                f"{data.get('machine', str(data['cores']) + ' cores')}, CPU only.")
    return "\n".join(rows)


def heads_table() -> str:
    emotion, mask = load("emotion"), load("mask")
    if emotion is None or mask is None:
        return not_measured("emotion", "mask")
    baseline_emotion = emotion.get("baseline_mini_xception", {})
    baseline_mask = mask.get("baseline_mobilenetv2", {})

    def pct(value: object) -> str:
        return f"{100 * value:.1f} %" if isinstance(value, (int, float)) else "n/a"

    rows = [
        "| head | measure | ours | baseline | target |",
        "| --- | --- | --- | --- | --- |",
        f"| emotion | FER2013 test accuracy | {pct(emotion['accuracy'])} | {pct(baseline_emotion.get('accuracy'))} "
        "(mini-Xception; 66 % published) | >= 68 % (goal 73 %) |",
        f"| emotion | accuracy without the 568 test images also in train | {pct(emotion['accuracy_dedup'])} "
        f"| {pct(baseline_emotion.get('accuracy_dedup'))} | |",
        f"| emotion | macro-F1 | {emotion['macro_f1']:.3f} | {baseline_emotion.get('macro_f1', float('nan')):.3f} | |",
        f"| emotion | expected calibration error, before / after temperature scaling | {emotion['ece_before']:.3f} / "
        f"{emotion['ece_after']:.3f} | | |",
        *([f"| emotion | CK+ accuracy (posed, another source; {emotion['ckplus']['protocol']}) | "
           f"{pct(emotion['ckplus_accuracy'])} | {pct(baseline_emotion.get('ckplus_accuracy'))} | >= 85 % |",
           f"| emotion | CK+ expected calibration error (subject-disjoint) | {emotion['ckplus_ece']:.3f} | | <= 0.05 |",
           "| emotion | CK+ recall per class | "
           + ", ".join(f"{k} {100 * v:.0f} %" for k, v in emotion["ckplus_per_class_recall"].items()) + " | | |"]
          if "ckplus_accuracy" in emotion else []),
        *([f"| emotion | FER faces found and aligned by the pipeline / the same faces scored directly | "
           f"{pct(emotion['accuracy_pipeline'])} / {pct(emotion['accuracy_direct'])} | | within 1 point |"]
          if "accuracy_pipeline" in emotion else []),
        f"| emotion | ms per face (batched, with flip) | {emotion['ms_per_face']:.1f} "
        f"| {baseline_emotion.get('ms_per_face', float('nan')):.1f} | <= 5 |",
        f"| mask | Face Mask 12K test accuracy | {pct(mask['accuracy'])} | {pct(baseline_mask.get('accuracy'))} "
        "(MobileNetV2) | >= 99.5 % (goal 99.9 %) |",
        f"| mask | accuracy by distinct face (`dup_group`) | {pct(mask['accuracy_dedup'])} "
        f"| {pct(baseline_mask.get('accuracy_dedup'))} | |",
        f"| mask | LFW faces (no mask) called no mask | {pct(mask['lfw_no_mask_specificity'])} "
        f"| {pct(baseline_mask.get('lfw_no_mask_specificity'))} | |",
        f"| mask | LFW faces with a synthetic mask called mask (end to end) | {pct(mask['synthetic_mask_recall'])} "
        f"| {pct(baseline_mask.get('synthetic_mask_recall'))} | |",
        f"| mask | masked test faces on a larger photo found, before / after the masked-face search "
        f"| {pct(mask['detection_recall_before'])} / {pct(mask['detection_recall_after'])} | | |",
        *([f"| mask | masked close-ups (as they are, 1:2, 2:1, 1280 px) with no face found | "
           f"{pct(mask['no_face_rate'])} | | 0 |"] if "no_face_rate" in mask else []),
        *([f"| mask | boxes labelled on things that are not faces ({', '.join(mask['phantom_boxes'])}) | "
           f"{' / '.join(str(v) for v in mask['phantom_boxes'].values())} | | 0 each |"] if "phantom_boxes" in mask else []),
        f"| mask | ms per face (batched) | {mask['ms_per_face']:.1f} | {baseline_mask.get('ms_per_face', float('nan')):.1f} "
        "| <= 5 |",
    ]
    return "\n".join(rows)


def security_table() -> str:
    data = load("security")
    if data is None:
        return not_measured("security")
    findings: dict[int, list[dict]] = {}
    for row in data["attacks"]:
        findings.setdefault(row["item"], []).append(row)
    rows = ["| finding | attacks | blocked | what the client got (first attack) |", "| --- | --- | --- | --- |"]
    for item, attacks in sorted(findings.items()):
        names = ", ".join(a["attack"].replace("_", " ") for a in attacks)
        got = attacks[0]["client_got"].replace("|", "/")[:140]
        rows.append(f"| {item} | {names} | {sum(a['blocked'] for a in attacks)} / {len(attacks)} | {got} |")
    rows += ["", f"{data['attacks_blocked']} of {data['attacks_tried']} attacks blocked; the largest RSS growth of "
             f"the server over one request was {data['max_rss_growth_mb']} MB (budget {data['rss_budget_mb']} MB); "
             f"tracebacks in the servers' logs: {'yes' if data['tracebacks_in_logs'] else 'none'}."]
    return "\n".join(rows)


@from_results("ui")
def ui_table(data: dict) -> str:
    rows = ["| tab | action | click to result on the page (median) | result and its button on the first screen |",
            "| --- | --- | --- | --- |"]
    rows += [f"| {a['tab']} | {a['action']} | {a['ms_median']} ms | {'yes' if a['result_in_first_viewport'] else '**no**'} |"
             for a in data["actions"]]
    rows += ["", "| live tab (fake webcam) | distinct result frames per second in the page | target |", "| --- | --- | --- |"]
    rows += [f"| {row['tab']} | {row['result_fps']} ({row['frames']} in {row['seconds']} s) | >= 10 |" for row in data["live"]]
    rows += ["", f"Headless Chromium {data['browser']} at {data['viewport']}, median of {data['runs']} clicks each; "
             f"the app on the same {data['cores']}-core machine, FACELAB_THREADS={data['torch_threads']}"
             + (f"; 1-minute load average {' then '.join(map(str, data['load_average_1min']))} (other jobs share the cores)"
                if "load_average_1min" in data else "") + ". Gradio's webcam captures the next frame only once the "
             "previous answer is back, at its next 100 ms tick: 10 frames/s needs a round trip under 100 ms."]
    return "\n".join(rows)


@from_results("ui")
def ui_line(data: dict) -> str:
    """The README's one line on the browser figures (the table is in docs/benchmarks.md, "In the browser")."""
    actions, live = data["actions"], data["live"]
    ms = [a["ms_median"] for a in actions]
    fps = [row["result_fps"] for row in live]
    return (f"In the browser ({data['viewport']}): {sum(a['result_in_first_viewport'] for a in actions)} / "
            f"{len(actions)} results beside their button, {min(ms) / 1000:.2f}-{max(ms) / 1000:.2f} s a click; "
            f"live {min(fps)}-{max(fps)} frames/s (target 10).")


@from_results("explain")
def explain_table(data: dict) -> str:
    """Issue 18's figures: are the "Why?" maps faithful, fast, and about what the model learnt?"""
    deletion, ms, sanity, targets = data["deletion"], data["ms"], data["sanity"], data["targets"]
    words = {"grad-cam": "Grad-CAM", "occlusion": "occlusion", "feature occlusion": "occlusion of the similarity, feature maps",
             "pixel occlusion": "occlusion of the similarity, pixels"}
    chosen = {name: row.get("method", "") for name, row in data["samples"]["sanity"].items()}  # the app's method
    what = {name: (name, words.get(chosen[name], chosen[name]), f"{name}_map") for name in ("mask", "emotion", "verify")}
    rows = ["| map | method | drop, 10 % most salient / 10 % random | 20 % salient / random | salient / random at 10 % "
            "(target >= 2) | ms per face (target) | rank correlation with a random model (target < 0.3) |",
            "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, (label, method, timing) in what.items():
        row = deletion[name]
        ratio = (f"{row['salient_drop_10'] / row['random_drop_10']:.0f}x" if row["random_drop_10"] > 0
                 else "random: no drop")
        rows.append(f"| {label} | {method} | {row['salient_drop_10']:.3f} / {row['random_drop_10']:.4f} | "
                    f"{row['salient_drop_20']:.3f} / {row['random_drop_20']:.4f} | {ratio} | {ms[timing]:.0f} "
                    f"(<= {targets[timing + '_ms']}) | {sanity[name]['rank_correlation']:.2f} |")
    rows.append(f"| identify bar chart / emotion timeline | | | | | {ms['identify_chart']:.1f} / {ms['timeline']:.1f} "
                f"(<= {targets['identify_chart_ms']}) | |")
    methods = data.get("methods", {})
    alternative = "; ".join(f"{name}: " + ", ".join(
        f"{words[method]} {row['salient_drop_10']:.3f} vs {row['random_drop_10']:.4f}, {row['ms']:.0f} ms, sanity "
        f"{row['rank_correlation']:.2f}" for method, row in by.items()) for name, by in methods.items())
    samples = data["samples"]
    rows += ["", f"Drop: of the explained class's probability (verify: of the similarity) when those pixels of the "
             f"aligned crop are blurred. Faces: {samples['mask']}; {samples['emotion']}; {samples['verify']}. "
             f"Sanity: {', '.join(f'{k} {next(iter(v.values()))}' for k, v in samples['sanity'].items())} "
             f"faces/pairs. Every candidate method (drop at 10 %, salient vs random; ms; sanity): {alternative}. Times: median, one thread, "
             f"{data['timing']['note']} (load average {data['timing']['load_avg_1min']})."]
    return "\n".join(rows)


@from_results("explain")
def explain_line(data: dict) -> str:
    """The README's one line on the "Why?" maps (the table is in docs/benchmarks.md)."""
    ratios = [row["salient_drop_10"] / row["random_drop_10"] if row["random_drop_10"] > 0 else float("inf")
              for row in data["deletion"].values()]
    ms = data["ms"]
    return (f"Why? maps: their top 10 % blurred costs >= {min(ratios):.0f}x what random pixels do; a random "
            f"model's rank-correlate <= {max(r['rank_correlation'] for r in data['sanity'].values()):.2f}; "
            f"{max(ms['mask_map'], ms['emotion_map']):.0f} ms a face, verify {ms['verify_map']:.0f} ms a pair.")


def headline_table() -> str:
    """The same plain-words figures the About tab shows (serving/figures.py)."""
    from serving.figures import headline_figures, markdown_table

    return markdown_table(headline_figures(RESULTS))


def configuration_table() -> str:
    from pipeline.settings import documented

    rows = ["| variable | default | meaning |", "| --- | --- | --- |"]
    rows += [f"| `{variable}` | {default} | {meaning} |" for variable, default, meaning in documented()]
    return "\n".join(rows)


RENDERERS: dict[str, Callable[[], str]] = {"latency": latency_table, "speed": speed_table, "heads": heads_table,
                                           "security": security_table, "configuration": configuration_table,
                                           "headline": headline_table, "ui": ui_table, "ui_line": ui_line, "explain": explain_table,
                                           "explain_line": explain_line}
RENDERERS.update(__import__("benchmarks.identity_tables", fromlist=["RENDERERS"]).RENDERERS)  # lfw, identification, ...
RENDERERS["scale"] = __import__("benchmarks.scale", fromlist=["scale_table"]).scale_table


def render(readme: str) -> str:
    for name, renderer in RENDERERS.items():
        pattern = re.compile(rf"(<!-- table:{name} -->\n).*?(<!-- /table:{name} -->)", re.S)
        readme = pattern.sub(lambda match: match.group(1) + renderer() + "\n" + match.group(2), readme)
    return readme


def main() -> None:
    for document in DOCUMENTS:
        before = document.read_text(encoding="utf-8")
        after = render(before)
        if after != before:  # say only what changed
            document.write_text(after, encoding="utf-8")
        print(f"{'updated' if after != before else 'unchanged'} {document.relative_to(REPO_ROOT)}")


if __name__ == "__main__":
    main()
