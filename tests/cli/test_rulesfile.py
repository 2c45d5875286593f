"""Rules files are read with limits: no YAML aliases (bombs), no duplicate keys, a size cap."""

from __future__ import annotations

import pytest

from brokerflow.app import rulesfile
from brokerflow.workflow.rules.as_code import RulesFileError

BOMB = """a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: [*d,*d,*d,*d,*d,*d,*d,*d,*d]
"""


@pytest.mark.parametrize(("text", "as_yaml", "problem"), [
    (BOMB, True, "aliases (*name) are not allowed"),
    ("a: {brand: x}\na: {brand: y}\n", True, "duplicate key 'a'"),
    ('{"a": {"brand": "x"}, "a": {}}', False, "duplicate key 'a'"),
    ("a: !!python/object:os.system {}\n", True, "not valid YAML"),
    ("[" * 5000 + "]" * 5000, False, "nested too deeply"),
    ("x" * (rulesfile.MAX_FILE_BYTES + 1), True, "larger than"),
])
def test_hostile_or_ambiguous_files_are_refused_with_the_files_name(text, as_yaml, problem):
    with pytest.raises(RulesFileError) as caught:
        rulesfile.parse(text, "rules.yaml", as_yaml)
    assert str(caught.value).startswith("rules.yaml: ") and problem in str(caught.value)


def test_yaml_and_json_round_trip_and_yaml_is_written_without_aliases(tmp_path):
    shared = {"type": "notify.manager", "params": {"message": "hi"}}
    doc = {"one": {"brand": "a", "actions": [shared]}, "two": {"brand": "a", "actions": [shared]}}
    for name in ("rules.yaml", "rules.json"):
        path = tmp_path / name
        text = rulesfile.dump(doc, rulesfile.is_yaml(name))
        assert "&id" not in text and "*id" not in text
        path.write_text(text)
        assert rulesfile.read(str(path)) == doc
    with pytest.raises(RulesFileError, match="cannot be read"):
        rulesfile.read(str(tmp_path / "missing.yaml"))
