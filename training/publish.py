"""Add or refresh the entries of the project's own weights in weights/manifest.json (sha256 of the files
in weights/): the two heads, the embedding centre and the int8 activation ranges.

    python -m training.publish

Only the entries below are written; other entries are left as they are.
"""
from __future__ import annotations

import json

from pipeline.weights import MANIFEST_PATH, REPO_WEIGHTS_DIR, file_sha256

HUB_REPO = "facelab/face-lab-weights"  # the project's own Hub repo; FACELAB_HUB_REPO overrides it
ENTRIES = {
    "emotion_head": {
        "description": "Face Lab's own 7-class emotion head (EmotionNet, compact VGG-style CNN, gray 44x44), "
                       "trained by training/train_emotion.py on FER2013; temperature stored in the file.",
        "filename": "emotion_head.safetensors",
        "license": "Weights: same terms as the project code. Trained on FER2013 (Kaggle; research use only, "
                   "no licence stated by the source), see weights/emotion_head.md.",
        "labels": ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"],
        "metrics": "weights/emotion_head.metrics.json",
    },
    "mask_head": {
        "description": "Face Lab's own mask / no-mask head (MaskNet, compact VGG-style CNN, RGB 64x64), "
                       "trained by training/train_mask.py on the Face Mask ~12K subset, with a third class, not a face "
                       "(LFW background squares), that screens the relaxed detector's boxes; temperature stored in the file.",
        "filename": "mask_head.safetensors",
        "license": "Weights: same terms as the project code. Training images: web-scraped masked faces and "
                   "CelebA (non-commercial research use only), see weights/mask_head.md.",
        "labels": ["mask", "no_mask", "not_a_face"],
        "metrics": "weights/mask_head.metrics.json",
    },
    "facenet-casia-webface-centre": {
        "description": "Mean casia-webface embedding over one picture per LFW person (512 float32); "
                       "pipeline.embedding centres embeddings on it. Made by training/embedding_centre.py.",
        "filename": "facenet-casia-webface_centre.safetensors",
        "license": "Same terms as the project code; derived from LFW pictures (research use) and Sandberg's MIT model.",
        "metrics": "weights/facenet-casia-webface_centre.metrics.json",
    },
    "facenet-casia-webface-int8": {
        "description": "Activation ranges (a scale and zero point per int8 step) of the casia-webface embedder's "
                       "int8 CPU path (pipeline.models.int8). Made by training/calibrate_int8.py on face crops "
                       "from the mask training set (not LFW).",
        "filename": "facenet-casia-webface_int8.safetensors",
        "license": "Same terms as the project code; derived from Sandberg's MIT model and Face Mask ~12K "
                   "training crops (non-commercial research use), see weights/mask_head.md.",
        "metrics": "weights/facenet-casia-webface_int8.metrics.json",
    },
}


def main() -> None:
    manifest = json.loads(MANIFEST_PATH.read_text(encoding="utf-8"))
    for name, entry in ENTRIES.items():
        path = REPO_WEIGHTS_DIR / entry["filename"]
        if not path.exists():
            print(f"{name}: {path} not trained yet, entry left as it is")
            continue
        manifest["models"][name] = {
            **entry,
            "repo_id": HUB_REPO,
            "project_hosted": True,
            "revision": "main",
            "revision_note": "The project's own Hub copy; pin the commit sha here once it is published.",
            "sha256": file_sha256(path),
            "note": f"{path.stat().st_size} bytes; retrain and refresh with python -m training.publish.",
        }
        print(name, manifest["models"][name]["sha256"])
    MANIFEST_PATH.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
