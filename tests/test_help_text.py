"""`--help` reads like a good CLI's (issue 21): every option described, values named by what they are."""

from __future__ import annotations

from cli import build_command
from tests.hardening_helpers import cli

COMMANDS = ("align", "invert", "factorize", "edit", "run", "sample", "ui", "train-encoder", "models info", "models fetch",
            "models list")


def _commands() -> dict:
    root = build_command()
    found = {}
    for name in COMMANDS:
        command = root
        for part in name.split():
            command = command.commands[part]  # type: ignore[attr-defined]
        found[name] = command
    return found


def test_every_option_has_a_description_and_a_value_name():
    for name, command in _commands().items():
        for param in command.params:
            if param.param_type_name == "option":
                assert param.help and param.help.strip(), f"{name} {param.opts}: no help"
                if not param.is_flag:
                    assert param.metavar, f"{name} {param.opts}: no metavar (typer would print <str>)"
                    assert "<" not in param.metavar, (name, param.opts, param.metavar)
            else:
                assert param.metavar and param.metavar == param.metavar.upper(), f"{name} {param.name}: argument unnamed"


def test_rendered_help_has_no_type_placeholders_and_no_stale_promises():
    for name in COMMANDS:
        result = cli(*name.split(), "--help")
        assert result.returncode == 0, (name, result.stderr)
        text = result.stdout
        for placeholder in ("<bool>", "<list[", "<int>", "<float>"):
            assert placeholder not in text, (name, placeholder)
        assert "(StyleGAN2)" not in text, name
    assert "NAME|FILE" in cli("invert", "--help").stdout and "SPEC" in cli("edit", "--help").stdout
    fetch = " ".join(cli("models", "fetch", "--help").stdout.split())
    assert "trust on first use" in fetch and "verified by checksum" not in fetch


def test_models_list_has_a_header_row():
    lines = cli("models", "list").stdout.splitlines()
    assert lines[0].split()[:4] == ["NAME", "KIND", "ARCHITECTURE", "SIZE"]
    assert any(line.startswith("stylegan2-ffhq-1024 ") for line in lines[1:])
    assert not cli("models", "list", "--json").stdout.startswith("NAME")
