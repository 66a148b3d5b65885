class QualityFMCLIError(Exception):
    """An error the CLI prints as one line (no traceback) before exiting non-zero."""
