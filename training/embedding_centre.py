"""The embedding centre of a backbone: the mean unit embedding over one picture per LFW person.

    python -m training.embedding_centre [--backbone casia-webface]
    # -> weights/<model>_centre.safetensors (tensor "centre", 512 float32) + .metrics.json; then
    python -m training.publish   # refreshes its manifest entry (sha256)

pipeline.embedding centres every embedding on it (Sandberg's --subtract_mean). No labels are used: the
subject (face nearest the centre) of the first picture of each LFW person, so that people with hundreds
of pictures do not dominate the mean. Deterministic: fixed file order, CPU float32.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from types import SimpleNamespace

import numpy as np
import torch
from safetensors.torch import save_file

from shared_data import SHARED_WEIGHTS_DIR, central_face, lfw_people
from pipeline.alignment import align_faces
from pipeline.analysis import FaceLab
from pipeline.embedding import BACKBONES, CENTRES, FaceEmbedder
from pipeline.weights import REPO_WEIGHTS_DIR
from pipeline.settings import reload as reload_settings


def centre_path(backbone: str):
    return REPO_WEIGHTS_DIR / f"{BACKBONES[backbone]}_centre.safetensors"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="casia-webface", choices=sorted(CENTRES))
    args = parser.parse_args()
    os.environ.setdefault("FACELAB_WEIGHTS_DIR", str(SHARED_WEIGHTS_DIR))
    reload_settings()  # pipeline read the settings when it was imported
    lab = FaceLab(backbone=args.backbone, device="cpu")
    embedder = FaceEmbedder.from_backbone(args.backbone, centred=False)
    started = time.perf_counter()
    vectors = []
    people = lfw_people(min_images=1)
    for done, name in enumerate(sorted(people), 1):
        rgb, detections = lab.detect(people[name][0])
        subject = central_face(SimpleNamespace(faces=detections, image=rgb))
        if subject is not None:
            vectors.append(embedder.embed(align_faces(rgb, [subject], lab.alignment))[0])
        if done % 500 == 0:
            print(f"{done}/{len(people)} people, {time.perf_counter() - started:.0f} s", flush=True)
    centre = np.mean(vectors, axis=0).astype(np.float32)
    out = centre_path(args.backbone)
    save_file({"centre": torch.from_numpy(centre)}, str(out),
              metadata={"backbone": args.backbone, "alignment": lab.alignment, "people": str(len(vectors))})
    metrics = {"backbone": args.backbone, "alignment": lab.alignment, "people_embedded": len(vectors),
               "people_without_a_face": len(people) - len(vectors), "centre_norm": round(float(np.linalg.norm(centre)), 4),
               "source": "first picture of each person in ../shared/data/identity/lfw (deep-funneled)",
               "wall_s": round(time.perf_counter() - started, 1)}
    out.with_suffix(".metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(json.dumps(metrics))


if __name__ == "__main__":
    main()
