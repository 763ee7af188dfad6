"""Settings that persist between napari sessions: widget values and reader defaults, in one JSON file.

The file is ``<user config dir>/lungtrack-napari/settings.json`` (``$LUNGTRACK_NAPARI_SETTINGS``
overrides the path, e.g. in tests). Only plain values (numbers, text, paths, booleans) are
kept: magicgui's own ``persist=True`` pickles every widget value, layers and their pixels
included, so it is not used here.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

_PLAIN = (bool, int, float, str, type(None))


def settings_path() -> Path:
    """Where the settings live (``$LUNGTRACK_NAPARI_SETTINGS`` or the platform's user config dir)."""
    env = os.environ.get("LUNGTRACK_NAPARI_SETTINGS")
    if env:
        return Path(env)
    from platformdirs import user_config_dir

    return Path(user_config_dir("lungtrack-napari")) / "settings.json"


def load_settings() -> dict:
    """All saved settings (an empty dict when there are none or the file is unreadable)."""
    p = settings_path()
    try:
        data = json.loads(p.read_text())
        return data if isinstance(data, dict) else {}
    except FileNotFoundError:
        return {}
    except Exception as exc:  # a broken settings file must never stop the plugin
        log.warning("ignoring unreadable lungtrack-napari settings %s: %s", p, exc)
        return {}


def get_section(section: str) -> dict:
    """One section of the settings, e.g. ``get_section("reader")``."""
    value = load_settings().get(section, {})
    return value if isinstance(value, dict) else {}


def save_section(section: str, values: dict) -> None:
    """Merge ``values`` (plain values only) into ``section`` and write the file."""
    data = load_settings()
    current = data.get(section, {}) if isinstance(data.get(section), dict) else {}
    current.update({k: v for k, v in values.items() if isinstance(v, _PLAIN)})
    data[section] = current
    p = settings_path()
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        os.replace(tmp, p)
    except OSError as exc:
        log.warning("cannot save lungtrack-napari settings to %s: %s", p, exc)


_SKIP = object()


def _plain_value(widget):
    v = getattr(widget, "value", None)
    if isinstance(v, os.PathLike):
        return os.fspath(v)
    return v if isinstance(v, _PLAIN) else _SKIP


def persist(widget, section: str, names=None) -> None:
    """Restore ``widget``'s plain values from ``section`` and save them whenever they change.

    ``names``: the sub-widgets to keep (default: every one whose value is a number, text,
    path or boolean; layer choices are never kept).
    """
    saved = get_section(section)
    subs = [w for w in widget if names is None or w.name in names]
    for w in subs:
        if w.name in saved and _plain_value(w) is not _SKIP:
            try:
                w.value = saved[w.name]
            except Exception:  # a value from an older version that no longer fits: keep the default
                pass

    def save(*_args):
        values = {w.name: _plain_value(w) for w in subs}
        save_section(section, {k: v for k, v in values.items() if v is not _SKIP})

    widget.changed.connect(save)
