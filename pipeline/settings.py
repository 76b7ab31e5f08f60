"""Every setting of Face Lab, read from the environment in one place, once.

`Settings.from_env()` reads the variables below; `current()` is the process's settings (read on first use).
FaceLab and the app take a Settings; the README's configuration table is generated from these fields
(`python -m benchmarks.readme_tables`), so it lists every variable there is. No other module of
`pipeline/`, `serving/` or `app.py` reads os.environ.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from functools import lru_cache


class SettingsError(ValueError):
    """A variable holds a value the app cannot run with; the message names it and what it may be."""


def _setting(env: str, default, help: str, choices: tuple[str, ...] = (), pattern: str = "",  # noqa: A002
             low: float | None = None, high: float | None = None):
    """A setting read from `env`. `choices` (or a `pattern`, said as `choices`) are the only words it may be, matched
    without regard to case; `low` and `high` bound a number (inclusive)."""
    return field(default=default, metadata={"env": env, "help": help, "choices": choices, "pattern": pattern,
                                            "low": low, "high": high})


@dataclass(frozen=True)
class Settings:
    # Models
    weights_dirs: tuple[str, ...] = _setting(
        "FACELAB_WEIGHTS_DIR", (), "folders searched for weights before `weights/` and the Hub (`os.pathsep`-separated)")
    backbone: str = _setting(
        "FACELAB_BACKBONE", "vggface2", "embedding backbone, `vggface2` or `casia-webface`; falls back to the other "
        "when its weights cannot be had", choices=("vggface2", "casia-webface"))
    device: str = _setting("FACELAB_DEVICE", "auto", "`auto` (CUDA when present), `cpu` or `cuda` (`cuda:N`: that GPU)",
                           choices=("auto", "cpu", "cuda", "cuda:N"), pattern=r"auto|cpu|cuda(:\d+)?")
    precision: str = _setting(
        "FACELAB_PRECISION", "auto", "embedder precision: `auto` (int8 on a CPU where the backbone has calibrated int8 "
        "ranges, else float32; float16 on CUDA), `float32`, `int8`, `float16`",
        choices=("auto", "float32", "int8", "float16"))
    threads: str = _setting(
        "FACELAB_THREADS", "1", "torch threads of a model call that starts alone (`auto`: every core of this process, "
        "at most 4); one that starts while another runs gets 1. Only where the cores are the app's alone",
        choices=("auto", "a whole number from 1"), pattern=r"auto|0*[1-9]\d*")
    hub_repo: str = _setting(
        "FACELAB_HUB_REPO", "", "Hub repo of the project's own published weights (default: the manifest's, "
        "`facelab/face-lab-weights`)")
    hf_endpoint: str = _setting("HF_ENDPOINT", "", "the Hugging Face Hub's address, as huggingface_hub reads it")
    hf_offline: bool = _setting("HF_HUB_OFFLINE", False, "never contact the Hub (local folders and the HF cache only): "
                                "`1`, `true`, `yes` or `on` (`0`, `false`, `no`, `off`: contact it)")
    # Pictures
    max_pixels: int = _setting("FACELAB_MAX_PIXELS", 40_000_000, "largest picture, in pixels, checked from its header",
                               low=16 * 16)
    max_file_bytes: int = _setting("FACELAB_MAX_FILE_BYTES", 50 * 1024 * 1024, "largest upload, in bytes", low=1)
    max_faces: int = _setting("FACELAB_MAX_FACES", 40, "faces analysed per picture, largest first", low=1)
    # Galleries
    gallery: str = _setting(
        "FACELAB_GALLERY", "", "an operator's shared, persistent gallery: a file path (SQLite, one server) or a "
        "`postgresql://` URL (PostgreSQL, any number of replicas; see docs/deployment.md); unset: each visitor's gallery lives "
        "in their session only")
    admin_token: str = _setting(
        "FACELAB_ADMIN_TOKEN", "", "with a shared gallery: the operator token that **Delete** and **Clear all** need "
        "(unset: both are off)")
    shared_enroll: str = _setting(
        "FACELAB_SHARED_ENROLL", "open", "with a shared gallery: `open` (any visitor may enroll) or `token` "
        "(enrolling needs the operator token too)", choices=("open", "token"))
    session_gallery_max: int = _setting("FACELAB_SESSION_GALLERY_MAX", 2000, "embeddings in one visitor's gallery",
                                        low=1)
    session_seconds: int = _setting(
        "FACELAB_SESSION_SECONDS", 3600, "a visitor's gallery is forgotten this long after its last change", low=1)
    # Serving
    stream_seconds: int = _setting("FACELAB_STREAM_SECONDS", 60, "a live stream's turn: after this long it lets waiting streams go first, then goes on", low=1)
    live_concurrency: int = _setting("FACELAB_LIVE_CONCURRENCY", 8, "live streams served at once", low=1)
    upload_concurrency: int = _setting("FACELAB_UPLOAD_CONCURRENCY", 4, "analyses run at once", low=1)
    queue_size: int = _setting("FACELAB_QUEUE_SIZE", 100, "requests waiting at most; beyond: \"queue full\"", low=1)
    queue_poll_seconds: float = _setting(
        "FACELAB_QUEUE_POLL_SECONDS", 0.01, "how often Gradio's queue looks for new work while it has none (Gradio's "
        "own 0.001 burned CPU all the time; see docs/deployment.md)", low=0.001, high=1.0)
    server_name: str = _setting("GRADIO_SERVER_NAME", "127.0.0.1", "the address the app listens on")
    server_port: int = _setting("GRADIO_SERVER_PORT", 7860, "the port the app listens on", low=1, high=65535)

    def __post_init__(self) -> None:
        """Refuse a value the app cannot run with (a mistyped word, a number out of range), naming the variable and
        what it may be: a mistyped FACELAB_SHARED_ENROLL=tokens left enrolling open, FACELAB_MAX_FACES=0 analysed
        no face, and both went unnoticed."""
        for setting in fields(self):
            _check(getattr(self, setting.name), setting.metadata)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Settings":
        """The settings the environment names; unset or empty variables keep their defaults. A value the app
        cannot run with raises SettingsError (a ValueError) naming the variable and what it may be."""
        environ = os.environ if environ is None else environ
        values = {}
        for setting in fields(cls):
            raw = environ.get(setting.metadata["env"], "").strip()
            if raw:
                if setting.metadata["choices"]:
                    raw = raw.lower()
                values[setting.name] = _parse(raw, setting.default, setting.metadata["env"])
        return cls(**values)

    @property
    def shared_gallery(self) -> bool:
        return bool(self.gallery)


TRUE, FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _parse(raw: str, default, name: str):
    if isinstance(default, bool):
        if raw.lower() not in TRUE + FALSE:
            raise SettingsError(f"{name}={raw!r} is neither on ({', '.join(TRUE)}) nor off ({', '.join(FALSE)})")
        return raw.lower() in TRUE
    if isinstance(default, float):
        try:
            return float(raw)
        except ValueError:
            raise SettingsError(f"{name}={raw!r} is not a number") from None
    if isinstance(default, int):
        try:
            return int(raw)
        except ValueError:
            raise SettingsError(f"{name}={raw!r} is not a whole number") from None
    if isinstance(default, tuple):
        return tuple(part for part in raw.split(os.pathsep) if part.strip())
    return raw


def _check(value, meta: Mapping) -> None:
    name, choices, low, high = meta["env"], meta["choices"], meta["low"], meta["high"]
    if choices:
        allowed = re.fullmatch(meta["pattern"], value) if meta["pattern"] else value in choices
        if not allowed:
            raise SettingsError(f"{name}={value!r} is not allowed: use one of {', '.join(choices)}")
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = (f"from {low:g} to {high:g}" if low is not None and high is not None
                  else f"at least {low:g}" if low is not None else f"at most {high:g}")
        raise SettingsError(f"{name}={value!r} is out of range: it must be {bounds}")


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
