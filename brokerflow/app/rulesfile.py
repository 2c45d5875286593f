"""Reading and writing rules files: YAML (``.yaml``/``.yml``) or JSON, defended against hostile input.

A rules file comes from a repository anybody with a pull request can touch, so it is read
with limits: at most ``MAX_FILE_BYTES``, YAML through PyYAML's safe loader with aliases
refused (a "billion laughs" document expands a few aliases into gigabytes), duplicate keys
refused in both formats (the last one silently winning hides a mistake), nesting bounded.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError
from yaml.events import AliasEvent

from brokerflow.workflow.rules.as_code import RulesFileError

MAX_FILE_BYTES = 1_048_576
YAML_SUFFIXES = (".yaml", ".yml")


class _StrictLoader(yaml.SafeLoader):
    """The safe loader without aliases and without duplicate keys."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(AliasEvent):
            event = self.peek_event()
            raise ComposerError(None, None, "aliases (*name) are not allowed in a rules file", event.start_mark)
        return super().compose_node(parent, index)

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        keys = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, (str, int, float, bool)) or key is None:
                if key in keys:
                    raise ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
                keys.add(key)
        return super().construct_mapping(node, deep)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def is_yaml(path: str) -> bool:
    return Path(path).suffix.lower() in YAML_SUFFIXES


def parse(text: str, source: str, as_yaml: bool) -> Any:
    """The document in ``text``; ``RulesFileError`` naming ``source`` and the place when it is not one."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_FILE_BYTES:
        raise RulesFileError(source, [f"larger than {MAX_FILE_BYTES} bytes"])
    try:
        if as_yaml:
            return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - _StrictLoader is a SafeLoader
        return json.loads(text, object_pairs_hook=_no_duplicates)
    except yaml.YAMLError as exc:
        raise RulesFileError(source, [f"not valid YAML: {' '.join(str(exc).split())}"]) from None
    except ValueError as exc:
        raise RulesFileError(source, [f"not valid JSON: {exc}"]) from None
    except RecursionError:
        raise RulesFileError(source, ["nested too deeply"]) from None


def read(path: str) -> Any:
    """The document of the file at ``path`` (YAML by its suffix, else JSON)."""
    file = Path(path)
    try:
        if file.stat().st_size > MAX_FILE_BYTES:
            raise RulesFileError(path, [f"larger than {MAX_FILE_BYTES} bytes"])
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise RulesFileError(path, [f"cannot be read: {exc.strerror or exc}"]) from None
    except UnicodeDecodeError:
        raise RulesFileError(path, ["is not UTF-8 text"]) from None
    return parse(text, path, is_yaml(path))


class _PlainDumper(yaml.SafeDumper):
    """Never writes an alias: the reader refuses them."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump(doc: Any, as_yaml: bool) -> str:
    if as_yaml:
        return yaml.dump(doc, Dumper=_PlainDumper, sort_keys=False, allow_unicode=True, default_flow_style=False)
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
