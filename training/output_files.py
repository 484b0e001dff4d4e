"""The file types `triage predict` writes, checked before any work starts (a light module: the command
checks the output path before it imports the scoring stack)."""

from __future__ import annotations

from pathlib import Path

from training.loading import DataError

__all__ = ["OUTPUT_SUFFIXES", "check_output_path"]

OUTPUT_SUFFIXES = (".csv", ".parquet")


def check_output_path(output: Path) -> None:
    if output.suffix.lower() not in OUTPUT_SUFFIXES:
        raise DataError(output, f"unsupported output type '{output.suffix}'; use one of {', '.join(OUTPUT_SUFFIXES)}")
