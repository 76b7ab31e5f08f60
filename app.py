"""Face Lab: a Gradio app over the pipeline package. This file only wires the UI to `pipeline/`."""

from __future__ import annotations

import logging
import os

import gradio as gr

from pipeline import FaceLabError, get_facelab

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def count_faces(image):
    if image is None:
        raise gr.Error("Upload a photo or take a webcam snapshot first.")
    try:
        analysis = get_facelab().analyze(image)
    except FaceLabError as exc:
        raise gr.Error(str(exc)) from None
    return f"{len(analysis.faces)} face(s) found."


def build_demo() -> gr.Blocks:
    with gr.Blocks(title="Face Lab") as demo:
        gr.Markdown("# Face Lab")
        image = gr.Image(type="numpy", sources=["upload", "webcam"], label="Picture")
        result = gr.Textbox(label="Result")
        gr.Button("Find faces").click(count_faces, image, result, api_name="count_faces")
    return demo


if __name__ == "__main__":
    build_demo().launch(
        server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        server_port=int(os.environ.get("GRADIO_SERVER_PORT", 7860)),
    )
