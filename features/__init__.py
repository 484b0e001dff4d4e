"""Text features for grievance triage: normalisation, tokenisation and sklearn transformers.

Pure functions and estimators only: no I/O beyond the package's own versioned data files.
"""
