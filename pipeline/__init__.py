"""The newswatch pipeline: config, fetch, parse, match, scheduling and the command line."""
