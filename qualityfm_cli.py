"""The `qualityfm` console script.

`import qualityfm_hf` registers QualityFM with transformers, which imports torch (about 8 s on 2 cores). A command
line should answer `--help` and argument errors at once, so this launcher marks the import as deferred before the
parser is built; `qualityfm_hf.cli.main.main` calls `qualityfm_hf.load()` once the arguments are parsed.
"""

import sys

DEFER_PACKAGE_IMPORT = True  # read by qualityfm_hf/__init__.py


def main(argv=None) -> int:
    from qualityfm_hf.cli.main import main as run

    return run(argv)


if __name__ == "__main__":
    sys.exit(main())
