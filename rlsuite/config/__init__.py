"""Configuration: typed config dataclasses and their fields (schema), and the agent and env cards (YAML) that fill them."""
