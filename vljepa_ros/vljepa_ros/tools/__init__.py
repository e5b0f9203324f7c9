"""Command-line tools built on the layers below: bringup, replay, demo, selective evaluation, reports."""
