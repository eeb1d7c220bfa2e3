"""The pipelines a config names, found in Kommo's catalog: shared by `check`, `init` and every run
(a misspelt pipeline must stop a run, not filter out every lead)."""

from __future__ import annotations

import difflib
from collections.abc import Sequence

from kommo_sync.errors import ConfigError
from kommo_sync.model import Catalog, Pipeline


def find_pipeline(wanted: str | int, catalog: Catalog) -> Pipeline | None:
    """The pipeline a `kommo.pipelines` entry names, as the run selects it: by id or exact name."""
    return next((p for p in catalog.pipelines.values() if wanted in (p.id, p.name)), None)


def pipeline_errors(wanted: Sequence[str | int], catalog: Catalog) -> list[ConfigError]:
    """Each configured pipeline the account does not have, by its key, with the closest name: a
    misspelt pipeline would filter out every lead and strip every customer's tag."""
    return [
        _pipeline_error(f"kommo.pipelines[{n}]", value, catalog)
        for n, value in enumerate(wanted)
        if find_pipeline(value, catalog) is None
    ]


def _pipeline_error(key: str, value: str | int, catalog: Catalog) -> ConfigError:
    pipelines = sorted(catalog.pipelines.values(), key=lambda p: p.name)
    if isinstance(value, int):
        listed = ", ".join(f"{p.name!r} (id {p.id})" for p in pipelines)
        return ConfigError(key, f"no pipeline with id {value} (pipelines: {listed})")
    hint = closest(value, [p.name for p in pipelines], "pipelines")
    return ConfigError(key, f"no pipeline {value!r}{hint}")


def closest(value: str, options: Sequence[str], what: str) -> str:
    """' (did you mean 'X'?)' for a close option (case aside), else the options themselves."""
    folded = {option.casefold(): option for option in options}
    close = difflib.get_close_matches(value.casefold(), list(folded), n=1)
    if close:
        return f" (did you mean {folded[close[0]]!r}?)"
    return f" ({what}: {', '.join(map(repr, options))})" if options else f" (there are no {what})"
