"""Every setting of Face Lab, read from the environment in one place, once.

`Settings.from_env()` reads the variables below; `current()` is the process's settings (read on first use).
FaceLab and the app take a Settings; the README's configuration table is generated from these fields
(`python -m benchmarks.readme_tables`), so it lists every variable there is. No other module of
`pipeline/`, `serving/` or `app.py` reads os.environ.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from functools import lru_cache


def _setting(env: str, default, help: str):  # noqa: A002 - the field's help text
    return field(default=default, metadata={"env": env, "help": help})


@dataclass(frozen=True)
class Settings:
    # Models
    weights_dirs: tuple[str, ...] = _setting(
        "FACELAB_WEIGHTS_DIR", (), "folders searched for weights before `weights/` and the Hub (`os.pathsep`-separated)")
    backbone: str = _setting(
        "FACELAB_BACKBONE", "vggface2", "embedding backbone; falls back to `casia-webface` when its weights cannot be had")
    device: str = _setting("FACELAB_DEVICE", "auto", "`auto` (CUDA when present), `cpu` or `cuda`")
    precision: str = _setting(
        "FACELAB_PRECISION", "auto", "embedder precision: `auto` (int8 on a CPU where the backbone has calibrated int8 "
        "ranges, else float32; float16 on CUDA), `float32`, `int8`, `float16`")
    threads: str = _setting(
        "FACELAB_THREADS", "1", "torch threads of a model call that starts alone (`auto`: every core of this process, "
        "at most 4); one that starts while another runs gets 1. Only where the cores are the app's alone")
    hub_repo: str = _setting(
        "FACELAB_HUB_REPO", "", "Hub repo of the project's own published weights (default: the manifest's, "
        "`facelab/face-lab-weights`)")
    hf_endpoint: str = _setting("HF_ENDPOINT", "", "the Hugging Face Hub's address, as huggingface_hub reads it")
    hf_offline: bool = _setting("HF_HUB_OFFLINE", False, "never contact the Hub (local folders and the HF cache only)")
    # Pictures
    max_pixels: int = _setting("FACELAB_MAX_PIXELS", 40_000_000, "largest picture, in pixels, checked from its header")
    max_file_bytes: int = _setting("FACELAB_MAX_FILE_BYTES", 50 * 1024 * 1024, "largest upload, in bytes")
    max_faces: int = _setting("FACELAB_MAX_FACES", 40, "faces analysed per picture, largest first")
    # Galleries
    gallery: str = _setting(
        "FACELAB_GALLERY", "", "an operator's shared, persistent gallery: a file path (SQLite, one server) or a "
        "`postgresql://` URL (PostgreSQL, any number of replicas; see docs/deployment.md); unset: each visitor's gallery lives "
        "in their session only")
    admin_token: str = _setting(
        "FACELAB_ADMIN_TOKEN", "", "with a shared gallery: the operator token that **Delete** and **Clear all** need "
        "(unset: both are off)")
    shared_enroll: str = _setting(
        "FACELAB_SHARED_ENROLL", "open", "with a shared gallery: `token` makes enrolling need the operator token too")
    session_gallery_max: int = _setting("FACELAB_SESSION_GALLERY_MAX", 2000, "embeddings in one visitor's gallery")
    session_seconds: int = _setting(
        "FACELAB_SESSION_SECONDS", 3600, "a visitor's gallery is forgotten this long after its last change")
    # Serving
    stream_seconds: int = _setting("FACELAB_STREAM_SECONDS", 60, "a live stream stops after this long")
    live_concurrency: int = _setting("FACELAB_LIVE_CONCURRENCY", 8, "live streams served at once")
    upload_concurrency: int = _setting("FACELAB_UPLOAD_CONCURRENCY", 4, "analyses run at once")
    queue_size: int = _setting("FACELAB_QUEUE_SIZE", 100, "requests waiting at most; beyond: \"queue full\"")
    queue_poll_seconds: float = _setting(
        "FACELAB_QUEUE_POLL_SECONDS", 0.01, "how often Gradio's queue looks for new work while it has none (Gradio's "
        "own 0.001 burned CPU all the time; see docs/deployment.md)")
    server_name: str = _setting("GRADIO_SERVER_NAME", "127.0.0.1", "the address the app listens on")
    server_port: int = _setting("GRADIO_SERVER_PORT", 7860, "the port the app listens on")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Settings":
        """The settings the environment names; unset or empty variables keep their defaults."""
        environ = os.environ if environ is None else environ
        values = {}
        for setting in fields(cls):
            raw = environ.get(setting.metadata["env"], "").strip()
            if raw:
                values[setting.name] = _parse(raw, setting.default, setting.metadata["env"])
        return cls(**values)

    @property
    def shared_gallery(self) -> bool:
        return bool(self.gallery)


def _parse(raw: str, default, name: str):
    if isinstance(default, bool):
        return raw.lower() in {"1", "true", "yes", "on"}
    if isinstance(default, float):
        try:
            return float(raw)
        except ValueError:
            raise ValueError(f"{name}={raw!r} is not a number") from None
    if isinstance(default, int):
        try:
            return int(raw)
        except ValueError:
            raise ValueError(f"{name}={raw!r} is not a whole number") from None
    if isinstance(default, tuple):
        return tuple(part for part in raw.split(os.pathsep) if part.strip())
    return raw


@lru_cache(maxsize=1)
def current() -> Settings:
    """This process's settings, read from the environment on first use (tests: `current.cache_clear()`)."""
    return Settings.from_env()


def reload() -> Settings:
    """Read the environment again: for scripts that set variables for themselves (and for the app processes
    they start) after pipeline was imported, which read the settings once already."""
    current.cache_clear()
    return current()


def documented() -> list[tuple[str, str, str]]:
    """(variable, default, meaning) of every setting, for the README's configuration table."""
    rows = []
    for setting in fields(Settings):
        default = setting.default
        shown = ("(none)" if default in ("", ()) else "off" if default is False else f"`{default}`")
        rows.append((setting.metadata["env"], shown, setting.metadata["help"]))
    return rows
