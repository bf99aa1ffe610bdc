"""Placeholder: this command module is being written. It registers no sub-command yet."""


def register(subparsers) -> None:
    return None
