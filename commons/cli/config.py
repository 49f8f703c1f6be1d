"""Handlers of `commons config show|set|unset` and `commons name`."""

from __future__ import annotations

import argparse

from commons.cli import Context
from commons.cli.output import print_json
from commons.config_file import KEYS, config_key, config_path, flatten, set_value
from commons.display import short_id
from commons.model.errors import CommonsError
from commons.settings import read_config


def config_show(args: argparse.Namespace, ctx: Context) -> int:
    path = config_path(ctx.settings.home)
    values = flatten(read_config(path))
    if args.json:
        print_json({"path": str(path), "values": values})
        return 0
    print(f"# {path}{'' if path.exists() else ' (not written yet)'}")
    for key in KEYS:
        value = values.get(key.name)
        shown = ", ".join(value) if isinstance(value, list) else value
        print(f"{key.name:11} = {shown if value is not None else '(not set)'}")
        print(f"{'':11}   {key.help}")
    unknown = sorted(set(values) - {k.name for k in KEYS})
    for name in unknown:
        print(f"{name:11} = {values[name]}  (not a setting this version knows)")
    print("change one with `commons config set KEY VALUE`; flags override these")
    return 0


def config_set(args: argparse.Namespace, ctx: Context) -> int:
    key = config_key(args.key)
    if key.name == "name":
        raise CommonsError(
            "your name is signed into your profile: change it with `commons name NEW`"
        )
    stored = set_value(ctx.settings.home, key.name, args.value)
    shown = ", ".join(stored) if isinstance(stored, list) else stored
    if stored is None:
        print(f"{key.name} removed from {config_path(ctx.settings.home)}")
    else:
        print(f"{key.name} = {shown}  (in {config_path(ctx.settings.home)})")
    return 0


def config_unset(args: argparse.Namespace, ctx: Context) -> int:
    key = config_key(args.key)
    set_value(ctx.settings.home, key.name, None)
    print(f"{key.name} removed from {config_path(ctx.settings.home)}")
    return 0


def name(args: argparse.Namespace, ctx: Context) -> int:
    new = " ".join(args.name).strip()
    if not new:
        raise CommonsError("give the name others should see, e.g. `commons name Ana Lima`")
    with ctx.open_api() as api:
        before = api.whoami().get("name")
        result = api.set_name(new)
    set_value(ctx.settings.home, "name", new)
    if before == result["name"]:
        print(f"your name was already {result['name']}; signed it again ({short_id(result['id'])})")
    else:
        print(
            f"your name is now {result['name']} (was {before or 'not set'}); a new signed"
            f" profile {short_id(result['id'])} spreads to your peers with the next sync"
        )
    return 0
