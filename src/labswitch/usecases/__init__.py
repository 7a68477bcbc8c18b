"""Use cases: each wires config, adapters and the planner for one command."""
