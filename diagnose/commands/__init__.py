"""One module per subcommand. Each defines `HELP` (one line), `add_arguments(parser)` and
`run(args) -> int`. Only `add_arguments` runs for `--help`, so modules import heavy things inside `run`.
"""

# (subcommand, module under diagnose.commands); order is the order `--help` lists them.
SUBCOMMANDS: list[tuple[str, str]] = [
    ("demo", "demo"),
    ("check", "check"),
    ("report", "report"),
    ("watch", "watch"),
    ("collect", "collect"),
    ("stress", "stress"),
    ("bypass", "bypass"),
    ("export", "export"),
    ("lab", "lab"),
]
