"""The `triage` command: the composition root above training and serving (nothing below imports it)."""
