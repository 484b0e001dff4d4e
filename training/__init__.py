"""Data loading and validation, the `triage` command line, train / evaluate / register / promote."""
