"""What the lab's command-line tests share: run ``actlab`` and expect one error line, exit 2."""

from __future__ import annotations

from actlab import cli


def one_line_error(capsys, argv: list[str]) -> str:
    """The single ``actlab: error: …`` line that ``actlab ARGV`` prints, asserting exit status 2."""
    rc = cli.main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2, err
    assert len(err) == 1 and err[0].startswith("actlab: error: "), err
    return err[0]
