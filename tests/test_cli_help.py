"""The command line's help is built from what ships: every shipped config and plan, and nothing
else, is named where the command takes it; ``freecg md`` has a flag for every MDConfig setting."""

import re
from dataclasses import fields

import pytest

from freecg_plugin.cli import parser
from freecg_plugin.configs import KINDS, shipped_configs
from freecg_plugin.md import MDConfig

COMMANDS = {
    "train": ("train", "--config"),
    "compare": ("compare", "--preset"),
    "md_compare": ("md-compare", "--preset"),
    "md": ("md", "--config"),
}


def help_of(command: str, capsys) -> str:
    with pytest.raises(SystemExit) as stop:
        parser().parse_args([command, "--help"])
    assert stop.value.code == 0
    return " ".join(capsys.readouterr().out.split())  # argparse wraps lines


def test_every_kind_of_shipped_config_has_a_command():
    assert set(COMMANDS) == set(KINDS)


@pytest.mark.parametrize("kind", sorted(COMMANDS))
def test_help_lists_exactly_the_shipped_configs(kind, capsys):
    command, option = COMMANDS[kind]
    text = help_of(command, capsys)
    shipped = shipped_configs(kind)
    assert shipped, kind
    listed = re.search(
        r"Shipped (?:configs|plans|protocols) \(" + re.escape(option) + r" NAME\): (.*?)(?: positional arguments:| options:)", text
    ).group(1)
    named = [item.split(":")[0] for item in listed.split(" | ")]
    assert named == list(shipped), (kind, named)
    for name, about in shipped.items():  # whole descriptions, not cut mid-sentence
        assert " ".join(about.split()) in text and about[-1] in ".)", (name, about)
    names = re.search(r"(?:a shipped (?:plan|config|protocol))[: (]+([\w, ]+)", text).group(1)
    assert [n.strip() for n in names.split(",")] == list(shipped), names


def test_md_has_a_flag_for_every_setting(capsys):
    text = help_of("md", capsys)
    for f in fields(MDConfig):
        flag = "--keep-going" if f.name == "stop_unstable" else "--" + f.name.replace("_", "-")
        assert flag in text, flag
    args = parser().parse_args(["md", "--output", "run", "--time", "2", "--rdf-pairs", "O-O,O-H", "--keep-going", "seed=3"])
    assert (args.time, args.rdf_pairs, args.stop_unstable, args.overrides) == (2.0, ["O-O", "O-H"], False, ["seed=3"])
