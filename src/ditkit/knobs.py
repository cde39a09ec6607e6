"""``knob``: a dataclass field that carries its command-line help (and flag settings) in its metadata.

The configs whose fields are flags declare them with it: ``training.TrainConfig`` (``ditkit train``) and
``pipelines.SamplingConfig`` (the sampling commands and the app). Metadata keys: ``help``; optional ``group``
(help section), ``flag`` (the flag's name when it is not the field's), ``aliases`` (older spellings it still
accepts), ``choices``, ``metavar``, ``cli`` (False: not a flag), ``nested`` (a dataclass field: its sub-fields
that are flags, with help). Torch-free, so anything may read it.
"""

from __future__ import annotations

from dataclasses import Field, field, is_dataclass, replace


def knob(default, help: str, **meta):
    """A config field with its command-line help (and optional flag settings) in the metadata."""
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: type(default)(default), metadata=dict(meta, help=help))
    if is_dataclass(default):
        return field(default_factory=lambda: replace(default), metadata=dict(meta, help=help))
    return field(default=default, metadata=dict(meta, help=help))


def flag_name(f: Field) -> str:
    """The flag a knob is set with: ``meta["flag"]``, else ``--`` and the field's name with dashes."""
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def flag_names(f: Field) -> list[str]:
    """The flag and its older spellings (``meta["aliases"]``), all accepted."""
    return [flag_name(f), *f.metadata.get("aliases", ())]
