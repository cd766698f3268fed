"""One module per group of CLI verbs; each function returns an exit code."""
