"""One module per verb: each has `register(verbs)`, which adds its parser and sets `run(args) -> exit code`."""
