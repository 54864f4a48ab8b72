"""The config: checked against ``config/config.schema.yaml``, its defaults filled in, and hashed.

Config defaults live in the schema and are filled in by :func:`load_config` (Snakemake's ``validate``), so the plan
reads ``config[...]`` and never repeats a default.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

__all__ = ["SCHEMA", "load_config", "config_hash"]

SCHEMA = Path(__file__).resolve().parents[1] / "config" / "config.schema.yaml"


def load_config(config) -> dict:
    """Validate a config (a dict, or a YAML file's path) against the schema and fill in its defaults.

    The same as the workflow's ``validate(config, schema=...)`` in ``rules/common.smk``; for tests and tools
    that plan without Snakemake. Returns the config (a dict given is filled in place).

    Raises
    ------
    simulate.plumbing.InputError
        A file that is missing, not YAML, or fails the schema (the schema's message, first line).
    """
    import yaml
    from snakemake.utils import validate

    from simulate.plumbing import InputError

    where = "config"
    if not isinstance(config, dict):
        where = config
        try:
            config = yaml.safe_load(Path(config).read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise InputError(where, f"not a readable YAML config: {str(exc).splitlines()[0]}") from None
    try:
        validate(config, schema=str(SCHEMA))
    except Exception as exc:  # snakemake's WorkflowError, with the schema's message on a later line
        lines = str(exc).splitlines()
        why = next((line for line in lines if line.startswith("ValidationError")), lines[0])
        raise InputError(where, f"fails config/config.schema.yaml: {why}") from None
    return config


def config_hash(config: dict) -> str:
    """A short hash of the resolved config: every table row records which config made it."""
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:12]


